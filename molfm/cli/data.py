"""``molfm data``: list, prepare and inspect data sets."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from molfm.cli.build import RunContext, config_command
from molfm.cli.errors import invalid_input, user_errors
from molfm.cli.options import INPUT_FORMATS, cache_dir_option, data_option
from molfm.data.config import PrepareConfig

app = typer.Typer(help="List, prepare and inspect data sets.", no_args_is_help=True)
console = Console()


def _out() -> Console:
    """The console for tables: the terminal's width on a terminal; when piped or redirected,
    wide enough that no cell is ever cut (``molfm data list | cat`` shows whole names)."""
    return console if console.is_terminal else Console(width=1_000, highlight=False)


def _fits(table: Table, width: int, folded: int = 10) -> bool:
    """Whether ``table`` fits ``width`` with every no-wrap column whole (folding columns get
    at least ``folded`` characters)."""
    need = 3 * len(table.columns) + 1  # borders and padding
    for column in table.columns:
        if column.no_wrap:
            lines = [str(column.header)]
            lines += [line for cell in column.cells for line in str(cell).splitlines()]
            need += max(len(line) for line in lines)
        else:
            need += folded
    return need <= width


def _name_argument(name: str | None, data: str | None) -> str | None:
    if name is not None and data is not None and name != data:
        raise ValueError(f"give the data set once: NAME {name!r} or --data {data!r}")
    return name if name is not None else data


@app.command("list")
def list_command(cache_dir: Path | None = cache_dir_option()) -> None:
    """List the registered data sets, their subsets, and which subsets are prepared."""
    from molfm.data.cache import find_prepared
    from molfm.data.fetch import use_cache_dir
    from molfm.data.sources import list_sources

    infos = [info for info in list_sources() if info.name not in INPUT_FORMATS]
    # names and subsets are typed by users: never wrapped or cut, one subset per line
    longest = max(len(s) for info in infos for s in (info.name, *info.subsets))
    table = Table()
    table.add_column("name", no_wrap=True, min_width=longest)
    table.add_column("task", no_wrap=True)
    table.add_column("subsets", no_wrap=True, min_width=longest)
    table.add_column("targets", overflow="fold")
    table.add_column("license", overflow="fold")
    table.add_column("prepared", no_wrap=True)
    with use_cache_dir(cache_dir):
        for info in infos:
            prepared = sorted({d.manifest["subset"] for d in find_prepared(info.name)})
            targets = ", ".join(info.targets[:6]) + (" ..." if len(info.targets) > 6 else "")
            table.add_row(
                info.name,
                info.task,
                "\n".join(info.subsets),
                escape(targets) or "-",
                escape(info.license.split(" (")[0]),
                "\n".join(prepared) or "no",
            )
    out = _out()
    if _fits(table, out.width):
        out.print(table)
    else:  # a terminal too narrow for the table: one plain line per data set, nothing cut
        for info, row in zip(infos, table.columns[5].cells, strict=True):
            subsets = ", ".join(info.subsets)
            out.print(
                f"{info.name}  ({info.task}; subsets: {subsets}; "
                f"prepared: {str(row).replace(chr(10), ', ')})",
                highlight=False,
            )
    out.print(
        f"Input formats (files of your own, not data sets): {', '.join(INPUT_FORMATS)}; "
        "give them with --data-path FILE, e.g. `molfm data prepare --data-path mols.csv`.",
        highlight=False,
    )


@config_command(app, "prepare", PrepareConfig)
def prepare_command(cfg: PrepareConfig, run: RunContext) -> None:
    """Featurize a data set once into the parquet cache (resumable and parallel)."""
    from molfm.chem.parse import InvalidMoleculeError
    from molfm.scale.run import prepare

    try:
        result = prepare(cfg)
    except InvalidMoleculeError as err:
        raise invalid_input(err) from None
    manifest = result.dataset.manifest
    if not result.cached:  # the options that made this data set, beside it in the cache
        run.save_config(result.dataset.path)
    state = "already prepared" if result.cached else f"prepared in {manifest['seconds']} s"
    console.print(f"[bold]{manifest['name']}[/bold] ({manifest['subset']}): {state}")
    console.print(
        f"  rows {result.n_rows}, molecules {result.n_valid}, rejected {result.n_invalid}"
    )
    if result.n_invalid:
        console.print(f"  rejected rows with reasons: {result.invalid_csv}", highlight=False)
    console.print(f"  location: {result.dataset.path}", highlight=False)


@app.command("info")
def info_command(
    name: str | None = typer.Argument(
        None, help="The data set (see `molfm data list`); the same as --data NAME."
    ),
    data: str | None = data_option(help="The data set (see `molfm data list`)."),
    cache_dir: Path | None = cache_dir_option(),
    show_invalid: int = typer.Option(5, min=0, help="How many rejected rows to print."),
) -> None:
    """Show the counts, columns, rejected rows and cache location of a prepared data set."""
    from molfm.data.cache import find_prepared
    from molfm.data.fetch import use_cache_dir
    from molfm.data.sources import get_source

    with user_errors(), use_cache_dir(cache_dir):
        chosen = _name_argument(name, data)
        if chosen is None:
            raise ValueError("give a data set NAME (see `molfm data list`)")
        prepared = find_prepared(chosen)
        if not prepared:
            if chosen.lower() in INPUT_FORMATS:
                raise ValueError(
                    f"no prepared {chosen} file in the cache; prepare one with "
                    "`molfm data prepare --data-path FILE`"
                )
            try:
                info = get_source(chosen).info
            except (KeyError, TypeError):
                raise ValueError(
                    f"no data set or prepared data named {chosen!r} (see `molfm data list`)"
                ) from None
    if not prepared:
        console.print(f"[bold]{info.name}[/bold]: {escape(info.description)}")
        console.print(f"  provenance: {escape(info.provenance)}\n  license: {escape(info.license)}")
        console.print(f"  not prepared yet: run `molfm data prepare {info.name}`")
        return
    import pandas as pd

    out = _out()
    for dataset in prepared:
        m = dataset.manifest
        out.print(f"[bold]{m['name']}[/bold] ({m['subset']})  {dataset.path}", highlight=False)
        out.print(f"  {escape(m['source']['description'])}")
        out.print(
            f"  provenance: {escape(m['source']['provenance'])}  "
            f"license: {escape(m['source']['license'])}"
        )
        out.print(
            f"  rows {m['n_rows']}, molecules {m['n_valid']}, rejected {m['n_invalid']}"
            f", shards {len(m['shards'])}, feature schema {m['feature_schema']['name']}"
            f" v{m['feature_schema']['version']}, created {m['created']}"
        )
        units = m.get("units", {})
        targets = ", ".join(f"{t} [{units.get(t, '-')}]" for t in m["targets"])
        out.print(f"  targets: {escape(targets) or '-'}")
        out.print(f"  columns: {escape(', '.join(m['columns']))}")
        if m["n_invalid"] and show_invalid:
            bad = pd.read_csv(dataset.invalid_csv, nrows=show_invalid, keep_default_na=False)
            table = Table("row", "smiles", "reason", title=f"rejected rows ({dataset.invalid_csv})")
            for r in bad.itertuples():
                table.add_row(str(r.row), escape(str(r.smiles)[:60]), escape(str(r.reason)[:80]))
            out.print(table)
