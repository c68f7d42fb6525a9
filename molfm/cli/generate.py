"""``molfm generate`` and ``molfm decorate``: sample molecules from a SMILES model.

Flags are the fields of :class:`~molfm.systems.gp_molformer.config.GenerateConfig` /
:class:`~molfm.systems.gp_molformer.config.DecorateConfig`; the jobs are
:func:`molfm.systems.gp_molformer.run.generate` / :func:`~molfm.systems.gp_molformer.run.decorate`.
The CSV is written atomically once sampling has finished (a failed run leaves no file behind),
then its resolved config beside it (``generated.csv`` -> ``generated.config.yaml``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from molfm.cli.build import RunContext, config_command
from molfm.systems.gp_molformer.config import DecorateConfig, GenerateConfig

app = typer.Typer()  # its commands join molfm's top level (molfm.cli.main)
console = Console()


@contextlib.contextmanager
def _sampling_bar(total: int) -> Iterator[Any]:
    columns = [TextColumn("sampling"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, TextColumn("{task.fields[stats]}"), console=console) as bar:
        task = bar.add_task("sampling", total=total, stats="")
        yield lambda k, stats: bar.update(task, advance=k, stats=stats.describe())


def _report(rows: int, output: str, summary: Any) -> None:
    console.print(f"wrote {rows} rows to {output}", markup=False, highlight=False)
    console.print(json.dumps(summary, indent=2), markup=False, highlight=False)


@config_command(app, "generate", GenerateConfig, outputs=lambda cfg: [cfg.output])
def generate(cfg: GenerateConfig, run: RunContext) -> None:
    """Sample new molecules (de novo) into a CSV, showing validity and uniqueness as it runs."""
    from molfm.scale.run import generate as generate_job  # torch: when needed

    rows, summary = generate_job(cfg, progress=_sampling_bar)
    run.save_config_beside(cfg.output)
    _report(rows, cfg.output, summary)


@config_command(app, "decorate", DecorateConfig, outputs=lambda cfg: [cfg.output])
def decorate(cfg: DecorateConfig, run: RunContext) -> None:
    """Decorate scaffolds: fill every [*] of each scaffold with the model, no extra training."""
    from molfm.systems.gp_molformer.run import decorate as decorate_job

    frame, reports = decorate_job(cfg)
    run.save_config_beside(cfg.output)
    _report(len(frame), cfg.output, reports)
