"""``molfm evaluate``: metrics for generated molecules.

The flags are the fields of :mod:`molfm.eval.config`'s configs and the work is
:mod:`molfm.eval.generated`'s. Errors a user can cause (a missing or empty file, a wrong column,
an unknown training set, hardware that is not there) are one line and exit code 1; outputs are
written atomically, a failed run leaves none behind, and a finished one saves its resolved
options beside them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from molfm.cli.build import RunContext, config_command
from molfm.eval.config import GenerationEvalConfig, MemorizationConfig, metrics_path

app = typer.Typer(help="Evaluate generated molecules.", no_args_is_help=True)
console = Console()


def _format(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) and not math.isnan(value) else str(value)


@config_command(
    app,
    "generation",
    GenerationEvalConfig,
    outputs=lambda cfg: [metrics_path(cfg.samples, cfg.output)],
)
def generation(cfg: GenerationEvalConfig, run: RunContext) -> None:
    """Compute the MOSES metric suite (valid, unique@k, FCD, SNN, Frag, Scaf, IntDiv, Filters,
    ...) and count why the invalid SMILES are invalid (invalid/syntax, invalid/valence, ...).

    unique@k of fewer than k valid molecules is computed on all of them, as MOSES does, and
    marked in the table, e.g. "1.0000 (948 < 10000)".
    """
    from molfm.engine.hardware import inference_device
    from molfm.eval.generated import evaluate_generation

    device = inference_device(cfg.accelerator, cfg.devices)
    report = evaluate_generation(cfg, device=str(device))
    run.save_config_beside(report.output)
    for message in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False)
    table = Table(
        Column("metric", overflow="fold"),
        Column("value", overflow="fold"),
        title=f"MOSES metrics of {escape(cfg.samples)}",
    )
    for key, value in report.metrics.items():
        table.add_row(escape(key), _format(value) + report.notes.get(key, ""))
    console.print(table)
    console.print(f"wrote {escape(str(report.output))}", highlight=False)


@config_command(app, "memorization", MemorizationConfig)
def memorization(cfg: MemorizationConfig, run: RunContext) -> None:
    """Plot the fraction of generated molecules found in the training data against the number
    of samples, and write the curve as CSV."""
    from molfm.eval.generated import evaluate_memorization

    curve, png = evaluate_memorization(cfg)
    run.save_config(Path(cfg.output_dir))
    last = curve.iloc[-1]
    console.print(
        f"n={int(last.n)}: unique valid {int(last.n_unique)}, memorized {last.memorized:.4f}, "
        f"novel unique {int(last.novel_unique)}, copies {last.copies:.4f}",
        highlight=False,
    )
    csv = Path(cfg.output_dir) / "memorization.csv"
    console.print(f"wrote {escape(str(csv))} and {escape(str(png))}")
