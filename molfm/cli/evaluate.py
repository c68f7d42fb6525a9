"""``molfm evaluate``: metrics for generated molecules.

Errors a user can cause (a missing or empty file, a wrong column, an unknown training set,
hardware that is not there) are one line and exit code 1; outputs are written atomically and
a failed run leaves none behind.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from molfm.cli.errors import user_errors
from molfm.cli.options import (
    Accelerator,
    accelerator_option,
    cache_dir_option,
    devices_option,
    num_workers_option,
    output_dir_option,
    output_option,
    smiles_column_option,
)

app = typer.Typer(help="Evaluate generated molecules.", no_args_is_help=True)
console = Console()

_TRAIN_DATA_HELP = (
    "The training set: a registered data set (moses) or a CSV file{none}. "
    "Its canonical SMILES are cached after the first use."
)
_WORKERS_HELP = (
    "CPU worker processes for per-molecule work (0 = in the main process); default: every core."
)
_UNIQUE_AT = re.compile(r"Can't compute unique@(\d+): gen contains only (\d+) molecules")


def _read_samples(path: Path, smiles_column: str) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty") from None
    if smiles_column not in frame.columns:
        raise ValueError(
            f"{path} has no column {smiles_column!r} (columns: {', '.join(frame.columns)}); "
            "name it with --smiles-column"
        )
    if frame.empty:
        raise ValueError(f"{path} has a header but no rows")
    return frame[smiles_column].tolist()


def _train_canonical(train_data: str, num_workers: int | None) -> frozenset[str]:
    from molfm.eval.training_set import training_set

    return training_set(train_data, n_jobs=_jobs(num_workers))


def _jobs(num_workers: int | None) -> int:
    import os

    return (os.cpu_count() or 1) if num_workers is None else max(1, num_workers)


def _format(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) and not math.isnan(value) else str(value)


@app.command("generation")
def generation(
    samples: Path = typer.Argument(..., help="The CSV file of generated SMILES to evaluate."),
    smiles_column: str = smiles_column_option(),
    train_data: str = typer.Option(
        "moses", help=_TRAIN_DATA_HELP.format(none=", or none to skip Novelty")
    ),
    reference: str = typer.Option(
        "moses", help="The reference statistics: moses (its test and scaffold-test sets)."
    ),
    num_workers: int | None = num_workers_option(None, help=_WORKERS_HELP),
    accelerator: Accelerator = accelerator_option(),
    devices: str = devices_option(),
    output: Path | None = output_option(
        None, "The metrics JSON file to write; default: SAMPLES with the suffix .metrics.json."
    ),
    cache_dir: Path | None = cache_dir_option(),
) -> None:
    """Compute the MOSES metric suite (valid, unique@k, FCD, SNN, Frag, Scaf, IntDiv, Filters,
    ...) and count why the invalid SMILES are invalid (invalid/syntax, invalid/valence, ...).

    unique@k of fewer than k valid molecules is computed on all of them, as MOSES does, and
    marked in the table, e.g. "1.0000 (948 < 10000)".
    """
    output = output or samples.with_suffix(".metrics.json")
    with user_errors(created=[output]):
        from molfm.atomic import atomic_write_text
        from molfm.data.fetch import use_cache_dir
        from molfm.engine.hardware import inference_device
        from molfm.eval.moses import MosesReference, compute_moses_metrics
        from molfm.eval.validity import invalid_breakdown

        if reference != "moses":
            raise ValueError(
                f"--reference {reference!r}: only the MOSES reference statistics (moses) exist"
            )
        device = inference_device(str(accelerator), devices)
        generated = _read_samples(samples, smiles_column)
        jobs = _jobs(num_workers)
        with use_cache_dir(cache_dir):
            train = None if train_data == "none" else _train_canonical(train_data, num_workers)
            test = MosesReference.load("test")
            test_sf = MosesReference.load("test_scaffolds")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                metrics = compute_moses_metrics(
                    generated,
                    train=train,
                    test=test,
                    test_scaffolds=test_sf,
                    n_jobs=jobs,
                    device=str(device),
                )
        reasons = {f"invalid/{kind}": n for kind, n in invalid_breakdown(generated).items()}
        metrics = {"n_samples": len(generated)} | metrics | reasons
        atomic_write_text(output, json.dumps(metrics, indent=2))
    notes: dict[str, str] = {}
    for item in caught:
        message = " ".join(str(item.message).split())
        if match := _UNIQUE_AT.fullmatch(message):
            k, n = match.groups()
            notes[f"unique@{k}"] = f" ({n} < {k})"
            message = f"unique@{k} is computed on the {n} valid molecules (fewer than {k})"
        console.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False)
    table = Table(
        Column("metric", overflow="fold"),
        Column("value", overflow="fold"),
        title=f"MOSES metrics of {escape(str(samples))}",
    )
    for key, value in metrics.items():
        table.add_row(escape(key), _format(value) + notes.get(key, ""))
    console.print(table)
    console.print(f"wrote {escape(str(output))}", highlight=False)


@app.command("memorization")
def memorization(
    samples: Path = typer.Argument(
        ..., help="The CSV file of generated SMILES, in the order they were sampled."
    ),
    smiles_column: str = smiles_column_option(),
    train_data: str = typer.Option("moses", help=_TRAIN_DATA_HELP.format(none="")),
    num_workers: int | None = num_workers_option(
        None,
        help="CPU worker processes that canonicalize --train-data the first time it is used "
        "(0 = in the main process); default: every core.",
    ),
    output_dir: Path = output_dir_option(
        Path("memorization"), "The directory to write memorization.csv and memorization.png to."
    ),
    cache_dir: Path | None = cache_dir_option(),
) -> None:
    """Plot the fraction of generated molecules found in the training data against the number
    of samples, and write the curve as CSV."""
    with user_errors(created=[output_dir]):
        from molfm.atomic import atomic_writer
        from molfm.chem.parse import canonical_smiles
        from molfm.data.fetch import use_cache_dir
        from molfm.eval.memorization import memorization_curve, plot_memorization

        generated = _read_samples(samples, smiles_column)
        with use_cache_dir(cache_dir):
            train = _train_canonical(train_data, num_workers)
        curve = memorization_curve([canonical_smiles(s) for s in generated], train)
        output_dir.mkdir(parents=True, exist_ok=True)
        png = plot_memorization(curve, output_dir / "memorization.png", title=str(samples.name))
        with atomic_writer(output_dir / "memorization.csv") as tmp:
            curve.to_csv(tmp, index=False)
    last = curve.iloc[-1]
    console.print(
        f"n={int(last.n)}: unique valid {int(last.n_unique)}, memorized {last.memorized:.4f}, "
        f"novel unique {int(last.novel_unique)}, copies {last.copies:.4f}",
        highlight=False,
    )
    console.print(f"wrote {escape(str(output_dir / 'memorization.csv'))} and {escape(str(png))}")
