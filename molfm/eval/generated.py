"""Evaluate a CSV of generated SMILES (``molfm evaluate``): the MOSES metric suite with the
reasons of invalid SMILES, and the memorization curve.

Each function reads the samples, computes, and writes its outputs atomically; a user error (a
missing or empty file, a wrong column, an unknown training set) is one ``ValueError`` or
``FileNotFoundError`` line raised before anything is written.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from molfm.atomic import atomic_write_text, atomic_writer
from molfm.data.sources.user import read_user_table
from molfm.eval.config import GenerationEvalConfig, MemorizationConfig

__all__ = [
    "GenerationReport",
    "read_samples",
    "n_jobs",
    "evaluate_generation",
    "evaluate_memorization",
]

_UNIQUE_AT = re.compile(r"Can't compute unique@(\d+): gen contains only (\d+) molecules")


@dataclass
class GenerationReport:
    """What :func:`evaluate_generation` computed and wrote."""

    metrics: dict[str, Any]
    output: Path
    notes: dict[str, str] = field(default_factory=dict)  # metric -> mark, e.g. " (948 < 10000)"
    warnings: list[str] = field(default_factory=list)  # one line each


def read_samples(path: str | Path, smiles_column: str) -> list[str]:
    """The SMILES column of a CSV of generated molecules, in file order.

    Raises
    ------
    FileNotFoundError, ValueError
        One line: no such file, an empty file, no such column, or no rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    frame = read_user_table(path)
    if smiles_column not in frame.columns:
        raise ValueError(
            f"{path} has no column {smiles_column!r} (columns: {', '.join(frame.columns)}); "
            "name it with --smiles-column"
        )
    return frame[smiles_column].tolist()


def n_jobs(num_workers: int | None) -> int:
    """Worker processes for ``--num-workers``: every core when not given, 0 means 1."""
    return (os.cpu_count() or 1) if num_workers is None else max(1, num_workers)


def _training_set(train_data: str, num_workers: int | None) -> frozenset[str]:
    from molfm.eval.training_set import training_set

    return training_set(train_data, n_jobs=n_jobs(num_workers))


def evaluate_generation(cfg: GenerationEvalConfig, device: str = "cpu") -> GenerationReport:
    """Compute the MOSES metric suite (valid, unique@k, FCD, SNN, Frag, Scaf, IntDiv, Filters,
    ...) of ``cfg.samples`` and count why the invalid SMILES are invalid (``invalid/syntax``,
    ``invalid/valence``, ...); write them as JSON to ``cfg.output``.

    unique@k of fewer than k valid molecules is computed on all of them, as MOSES does; the
    report notes it (``notes["unique@10000"] == " (948 < 10000)"``) and says it in a warning.

    Parameters
    ----------
    device
        Where FCD's ChemNet runs (the CLI picks it from ``--accelerator``/``--devices``).
    """
    from molfm.eval.moses import MosesReference, compute_moses_metrics
    from molfm.eval.validity import invalid_breakdown

    if cfg.reference != "moses":
        raise ValueError(
            f"--reference {cfg.reference!r}: only the MOSES reference statistics (moses) exist"
        )
    generated = read_samples(cfg.samples, cfg.smiles_column)
    train = None if cfg.train_data == "none" else _training_set(cfg.train_data, cfg.num_workers)
    test = MosesReference.load("test")
    test_scaffolds = MosesReference.load("test_scaffolds")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = compute_moses_metrics(
            generated,
            train=train,
            test=test,
            test_scaffolds=test_scaffolds,
            n_jobs=n_jobs(cfg.num_workers),
            device=device,
        )
    reasons = {f"invalid/{kind}": n for kind, n in invalid_breakdown(generated).items()}
    metrics = {"n_samples": len(generated)} | metrics | reasons
    output = Path(cfg.output)
    atomic_write_text(output, json.dumps(metrics, indent=2))
    report = GenerationReport(metrics, output)
    for item in caught:
        message = " ".join(str(item.message).split())
        if match := _UNIQUE_AT.fullmatch(message):
            k, n = match.groups()
            report.notes[f"unique@{k}"] = f" ({n} < {k})"
            message = f"unique@{k} is computed on the {n} valid molecules (fewer than {k})"
        report.warnings.append(message)
    return report


def evaluate_memorization(cfg: MemorizationConfig) -> tuple[pd.DataFrame, Path]:
    """The fraction of generated molecules found in the training data against the number of
    samples (:func:`molfm.eval.memorization.memorization_curve`), written as
    ``memorization.csv`` and plotted as ``memorization.png`` in ``cfg.output_dir``.

    Returns the curve and the plot's path.
    """
    from molfm.chem.parse import canonical_smiles
    from molfm.eval.memorization import memorization_curve, plot_memorization

    generated = read_samples(cfg.samples, cfg.smiles_column)
    train = _training_set(cfg.train_data, cfg.num_workers)
    curve = memorization_curve([canonical_smiles(s) for s in generated], train)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = plot_memorization(curve, out / "memorization.png", title=Path(cfg.samples).name)
    with atomic_writer(out / "memorization.csv") as tmp:
        curve.to_csv(tmp, index=False)
    return curve, png
