"""Configs of ``molfm evaluate generation`` and ``molfm evaluate memorization``: each field is
one flag (declared once, :mod:`molfm.options`).

Pure Python (no RDKit, no torch), so the CLI can build its flags without loading anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from molfm.options import ACCELERATOR_CHOICES, cache_dir_option, option

__all__ = ["GenerationEvalConfig", "MemorizationConfig", "metrics_path"]

_TRAIN_DATA_HELP = (
    "The training set: a registered data set (moses) or a CSV file{none}. "
    "Its canonical SMILES are cached after the first use."
)


def metrics_path(samples: str | Path, output: str | Path | None = None) -> Path:
    """Where the metrics of ``samples`` go: ``output``, else ``<samples>.metrics.json``."""
    return Path(output) if output is not None else Path(samples).with_suffix(".metrics.json")


@dataclass(kw_only=True)
class GenerationEvalConfig:
    """The MOSES metric suite of a CSV of generated SMILES
    (:func:`molfm.eval.generated.evaluate_generation`)."""

    samples: str = option(
        argument=True, path="file", help="The CSV file of generated SMILES to evaluate."
    )
    smiles_column: str = option("smiles", help="Column of the CSV that holds SMILES.")
    train_data: str = option(
        "moses", help=_TRAIN_DATA_HELP.format(none=", or none to skip Novelty")
    )
    reference: str = option(
        "moses", help="The reference statistics: moses (its test and scaffold-test sets)."
    )
    num_workers: int | None = option(
        None,
        flags=("--num-workers", "-j"),
        min=0,
        help="CPU worker processes for per-molecule work (0 = in the main process); "
        "default: every core.",
    )
    accelerator: str = option(
        "auto",
        choices=ACCELERATOR_CHOICES,
        help="Hardware to run on: auto picks a GPU when there is one.",
    )
    devices: str = option("1", help="How many devices (1), 'auto', or which ones (0,1).")
    output: str | None = option(
        None,
        flags=("--output", "-o"),
        path="file",
        help="The metrics JSON file to write; default: SAMPLES with the suffix .metrics.json.",
    )
    cache_dir: str | None = cache_dir_option()

    def __post_init__(self) -> None:
        self.output = str(metrics_path(self.samples, self.output))


@dataclass(kw_only=True)
class MemorizationConfig:
    """The memorization curve of a CSV of generated SMILES
    (:func:`molfm.eval.generated.evaluate_memorization`)."""

    samples: str = option(
        argument=True,
        path="file",
        help="The CSV file of generated SMILES, in the order they were sampled.",
    )
    smiles_column: str = option("smiles", help="Column of the CSV that holds SMILES.")
    train_data: str = option("moses", help=_TRAIN_DATA_HELP.format(none=""))
    num_workers: int | None = option(
        None,
        flags=("--num-workers", "-j"),
        min=0,
        help="CPU worker processes that canonicalize --train-data the first time it is used "
        "(0 = in the main process); default: every core.",
    )
    output_dir: str = option(
        "memorization",
        path="dir",
        help="The directory to write memorization.csv and memorization.png to.",
    )
    cache_dir: str | None = cache_dir_option()
