"""``molfm data``: list, prepare and inspect data sets."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from molfm.chem.featurize import get_schema
from molfm.chem.parse import InvalidMoleculeError, StandardizeOptions
from molfm.cli.config import merge_config
from molfm.data.cache import find_prepared
from molfm.data.prepare import prepare_dataset
from molfm.data.sources import get_source, list_sources

app = typer.Typer(help="List, prepare and inspect data sets.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


class OnInvalid(StrEnum):
    error = "error"
    skip = "skip"


def _user_source(
    data_path: Path, smiles_column: str, target_columns: list[str] | None, text_column
):
    if not data_path.exists():
        raise typer.BadParameter(f"{data_path} does not exist", param_hint="--data-path")
    kind = "sdf" if data_path.suffix.lower() in (".sdf", ".sd") else "csv"
    if kind == "sdf":
        return get_source("sdf", path=data_path, target_columns=target_columns)
    return get_source(
        "csv",
        path=data_path,
        smiles_column=smiles_column,
        target_columns=target_columns,
        text_column=text_column,
    )


@app.command("list")
def list_command(
    cache_dir: Path | None = typer.Option(None, help="Dataset cache root (default: molfm cache)."),
) -> None:
    """List the built-in data sets and whether they are prepared."""
    table = Table("name", "task", "subsets", "targets", "license", "prepared")
    for info in list_sources():
        prepared = find_prepared(info.name, cache_dir)
        subsets = sorted({d.manifest["subset"] for d in prepared})
        targets = ", ".join(info.targets[:6]) + (" ..." if len(info.targets) > 6 else "")
        table.add_row(
            info.name,
            info.task,
            ", ".join(info.subsets),
            targets or "-",
            info.license.split(" (")[0],
            ", ".join(subsets) or "no",
        )
    console.print(table)


@app.command("prepare")
def prepare_command(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Data set name (see `molfm data list`)."),
    subset: str | None = typer.Option(None, help="Subset, e.g. train/test for moses."),
    data_path: Path | None = typer.Option(None, help="A user CSV or SDF file instead of NAME."),
    smiles_column: str = typer.Option("smiles", help="SMILES column of --data-path CSV."),
    target_columns: list[str] | None = typer.Option(None, help="Target columns (repeatable)."),
    text_column: str | None = typer.Option(None, help="Text column of --data-path CSV."),
    on_invalid: OnInvalid = typer.Option(OnInvalid.error, help="Stop at a bad row or skip it."),
    processes: int = typer.Option(1, "--processes", "-j", help="Worker processes."),
    shard_size: int = typer.Option(10_000, help="Input rows per cache shard."),
    limit: int | None = typer.Option(None, help="Only the first N rows."),
    largest_fragment: bool = typer.Option(False, help="Keep only the largest fragment."),
    neutralize: bool = typer.Option(False, help="Neutralize charges where possible."),
    max_heavy_atoms: int | None = typer.Option(None, help="Reject larger molecules."),
    feature_schema: str = typer.Option("ogb", help="2D feature schema."),
    cache_dir: Path | None = typer.Option(None, help="Dataset cache root (default: molfm cache)."),
    config: Path | None = typer.Option(None, help="YAML file of options (flags win)."),
) -> None:
    """Featurize a data set once into the parquet cache (resumable, parallel)."""
    p = merge_config(ctx, config, {k: v for k, v in locals().items() if k != "ctx"})
    if p["data_path"] is not None:
        source = _user_source(
            Path(p["data_path"]), p["smiles_column"], p["target_columns"], p["text_column"]
        )
    elif p["name"]:
        source = get_source(p["name"])
    else:
        raise typer.BadParameter("give a data set NAME or --data-path")
    standardize = StandardizeOptions(
        largest_fragment=p["largest_fragment"], neutralize=p["neutralize"]
    )
    policy = OnInvalid(p["on_invalid"]).value
    try:
        result = prepare_dataset(
            source,
            p["subset"],
            schema=get_schema(p["feature_schema"]),
            standardize=standardize,
            max_heavy_atoms=p["max_heavy_atoms"],
            on_invalid=policy,
            processes=max(1, min(int(p["processes"]), os.cpu_count() or 1)),
            shard_size=int(p["shard_size"]),
            limit=p["limit"],
            root=p["cache_dir"],
        )
    except InvalidMoleculeError as err:
        err_console.print(f"[red]invalid input[/red]: {escape(str(err))}")
        err_console.print("Use --on-invalid skip to continue and collect rejected rows.")
        raise typer.Exit(1) from None
    manifest = result.dataset.manifest
    state = "already prepared" if result.cached else f"prepared in {manifest['seconds']} s"
    console.print(f"[bold]{manifest['name']}[/bold] ({manifest['subset']}): {state}")
    console.print(
        f"  rows {result.n_rows}, molecules {result.n_valid}, rejected {result.n_invalid}"
    )
    if result.n_invalid:
        console.print(f"  rejected rows with reasons: {result.invalid_csv}")
    console.print(f"  location: {result.dataset.path}")


@app.command("info")
def info_command(
    name: str = typer.Argument(..., help="Data set name."),
    cache_dir: Path | None = typer.Option(None, help="Dataset cache root (default: molfm cache)."),
    show_invalid: int = typer.Option(5, help="How many rejected rows to print."),
) -> None:
    """Counts, columns, rejected rows and cache location of a prepared data set."""
    prepared = find_prepared(name, cache_dir)
    if not prepared:
        try:
            info = get_source(name).info
        except KeyError:
            raise typer.BadParameter(f"no data set or prepared data named {name!r}") from None
        console.print(f"[bold]{info.name}[/bold]: {escape(info.description)}")
        console.print(f"  provenance: {escape(info.provenance)}\n  license: {escape(info.license)}")
        console.print(f"  not prepared yet: run `molfm data prepare {info.name}`")
        raise typer.Exit(0)
    import pandas as pd

    for dataset in prepared:
        m = dataset.manifest
        console.print(f"[bold]{m['name']}[/bold] ({m['subset']})  {dataset.path}")
        console.print(f"  {escape(m['source']['description'])}")
        console.print(
            f"  provenance: {escape(m['source']['provenance'])}  license: {escape(m['source']['license'])}"
        )
        console.print(
            f"  rows {m['n_rows']}, molecules {m['n_valid']}, rejected {m['n_invalid']}"
            f", shards {len(m['shards'])}, feature schema {m['feature_schema']['name']}"
            f" v{m['feature_schema']['version']}, created {m['created']}"
        )
        units = m.get("units", {})
        targets = ", ".join(f"{t} [{units.get(t, '-')}]" for t in m["targets"])
        console.print(f"  targets: {escape(targets) or '-'}")
        console.print(f"  columns: {escape(', '.join(m['columns']))}")
        if m["n_invalid"] and show_invalid:
            bad = pd.read_csv(dataset.invalid_csv, nrows=show_invalid, keep_default_na=False)
            table = Table("row", "smiles", "reason", title=f"rejected rows ({dataset.invalid_csv})")
            for r in bad.itertuples():
                table.add_row(str(r.row), escape(str(r.smiles)[:60]), escape(str(r.reason)[:80]))
            console.print(table)
