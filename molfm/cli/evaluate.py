"""``molfm evaluate``: metrics for generated molecules."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Evaluate generated molecules.", no_args_is_help=True)
console = Console()


def _read_samples(path: Path, smiles_column: str) -> list[str]:
    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist", param_hint="SAMPLES")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise typer.BadParameter(f"{path} is empty", param_hint="SAMPLES") from None
    if smiles_column not in frame.columns:
        raise typer.BadParameter(
            f"{path} has no column {smiles_column!r}; columns: {list(frame.columns)}",
            param_hint="--smiles-column",
        )
    if frame.empty:
        raise typer.BadParameter(f"{path} has a header but no rows", param_hint="SAMPLES")
    return frame[smiles_column].tolist()


def _train_canonical(train_data: str) -> frozenset[str]:
    from molfm.eval.training_set import training_set

    return training_set(train_data)


@app.command("generation")
def generation(
    samples: Path = typer.Argument(..., help="CSV of generated SMILES."),
    smiles_column: str = typer.Option("smiles"),
    train_data: str | None = typer.Option("moses", help="Training set for novelty (or 'none')."),
    reference: str = typer.Option(
        "moses", help="Reference statistics: moses (test + scaffold test)."
    ),
    n_jobs: int = typer.Option(1, help="Processes for per-molecule descriptors."),
    device: str = typer.Option("cpu"),
    output: Path | None = typer.Option(None, "--output", "-o", help="metrics JSON path."),
) -> None:
    """The full MOSES metric suite (valid, unique@k, FCD, SNN, Frag, Scaf, IntDiv, Filters, ...),
    and why the invalid SMILES are invalid (invalid/syntax, invalid/kekulization, ...)."""
    from molfm.eval.moses import MosesReference, compute_moses_metrics
    from molfm.eval.validity import invalid_breakdown

    generated = _read_samples(samples, smiles_column)
    if reference != "moses":
        raise typer.BadParameter(
            "only the MOSES reference statistics are available", param_hint="--reference"
        )
    train = None if train_data in (None, "none") else _train_canonical(train_data)
    test = MosesReference.load("test")
    test_sf = MosesReference.load("test_scaffolds")
    metrics = compute_moses_metrics(
        generated, train=train, test=test, test_scaffolds=test_sf, n_jobs=n_jobs, device=device
    )
    reasons = {f"invalid/{kind}": n for kind, n in invalid_breakdown(generated).items()}
    metrics = {"n_samples": len(generated)} | metrics | reasons
    table = Table("metric", "value", title=f"MOSES metrics of {samples}")
    for key, value in metrics.items():
        table.add_row(
            key,
            f"{value:.4f}" if isinstance(value, float) and not math.isnan(value) else str(value),
        )
    console.print(table)
    output = output or samples.with_suffix(".metrics.json")
    output.write_text(json.dumps(metrics, indent=2))
    console.print(f"wrote {output}")


@app.command("memorization")
def memorization(
    samples: Path = typer.Argument(..., help="CSV of generated SMILES, in sampling order."),
    smiles_column: str = typer.Option("smiles"),
    train_data: str = typer.Option("moses", help="Training set (moses or a CSV)."),
    output_dir: Path = typer.Option(Path("memorization"), help="Writes curve CSV + PNG here."),
) -> None:
    """Fraction of generations found in the training data vs the number of samples (+ plot)."""
    from molfm.eval.memorization import memorization_curve, plot_memorization
    from molfm.systems.gp_molformer.generation import canonicalize

    generated = _read_samples(samples, smiles_column)
    train = _train_canonical(train_data)
    curve = memorization_curve([canonicalize(s) for s in generated], train)
    output_dir.mkdir(parents=True, exist_ok=True)
    curve.to_csv(output_dir / "memorization.csv", index=False)
    png = plot_memorization(curve, output_dir / "memorization.png", title=str(samples.name))
    last = curve.iloc[-1]
    console.print(
        f"n={int(last.n)}: unique valid {int(last.n_unique)}, memorized {last.memorized:.4f}, "
        f"novel unique {int(last.novel_unique)}, copies {last.copies:.4f}"
    )
    console.print(f"wrote {output_dir / 'memorization.csv'} and {png}")
