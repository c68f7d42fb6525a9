"""The one flag vocabulary of the ``molfm`` CLI (shared/DESIGN.md, "Conventions").

Every command builds its options from these factories, so a flag means the same thing, has
the same name and the same help everywhere:

=====================================  ==================================================
meaning                                flag
=====================================  ==================================================
a registered data set / a user file    ``--data NAME`` / ``--data-path FILE``
columns                                ``--smiles-column``, ``--target-columns``, ``--text-column``
a trained model to use                 ``--model NAME_OR_DIR``
a pretrained encoder to fine-tune      ``--init NAME_OR_DIR``
one output file / a run directory      ``-o, --output FILE`` / ``--output-dir DIR``
hardware                               ``--accelerator``, ``--devices``, ``--precision``
CPU worker processes                   ``-j, --num-workers``
seeds                                  ``--seed`` (weights, sampling), ``--data-seed`` (splits)
bad input                              ``--on-invalid {error,skip}``
options file                           ``--config FILE.yaml`` (flags win)
data cache                             ``--cache-dir DIR`` (default ``$MOLFM_CACHE``)
=====================================  ==================================================

Numeric options carry their range here (``min=``/``max=``), so ``--temperature -1`` is
refused by the parser with one line, before anything is loaded.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

__all__ = [
    "OnInvalid",
    "Accelerator",
    "data_option",
    "data_path_option",
    "smiles_column_option",
    "target_columns_option",
    "text_column_option",
    "model_option",
    "init_option",
    "output_option",
    "output_dir_option",
    "accelerator_option",
    "devices_option",
    "precision_option",
    "num_workers_option",
    "seed_option",
    "data_seed_option",
    "on_invalid_option",
    "config_option",
    "cache_dir_option",
    "temperature_option",
    "top_k_option",
    "top_p_option",
    "count_option",
    "batch_size_option",
]


class OnInvalid(StrEnum):
    """What to do with a row that cannot be used: stop naming it, or skip it and report it."""

    error = "error"
    skip = "skip"


class Accelerator(StrEnum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"
    cuda = "cuda"


def data_option(default: str | None = None, help: str | None = None) -> Any:
    return typer.Option(
        default,
        "--data",
        help=help or "A registered data set (see `molfm data list`).",
        show_default=default is not None,
    )


def data_path_option(help: str | None = None) -> Any:
    return typer.Option(
        None,
        "--data-path",
        help=help or "A user file: CSV (SMILES + columns) or SDF (3D).",
        dir_okay=False,
    )


def smiles_column_option(default: str = "smiles") -> Any:
    return typer.Option(default, "--smiles-column", help="Column of the CSV that holds SMILES.")


def target_columns_option() -> Any:
    return typer.Option(
        None, "--target-columns", help="Target columns of the CSV (repeat the flag for several)."
    )


def text_column_option() -> Any:
    return typer.Option(None, "--text-column", help="Column of the CSV that holds text.")


def model_option(default: str | None, help: str | None = None) -> Any:
    return typer.Option(
        default,
        "--model",
        help=help or "A shipped model name or a checkpoint directory.",
    )


def init_option() -> Any:
    return typer.Option(
        None, "--init", help="A pretrained encoder to start from (shipped name or directory)."
    )


def output_option(default: Path | None, help: str | None = None) -> Any:
    return typer.Option(
        default, "--output", "-o", help=help or "The file to write.", dir_okay=False
    )


def output_dir_option(default: Path | None = None, help: str | None = None) -> Any:
    return typer.Option(
        ... if default is None else default,
        "--output-dir",
        help=help or "The run directory to write (checkpoints, logs, outputs).",
        file_okay=False,
    )


def accelerator_option(default: str = "auto") -> Any:
    return typer.Option(
        Accelerator(default),
        "--accelerator",
        help="Hardware to run on: auto picks a GPU when there is one.",
    )


def devices_option(default: str = "1") -> Any:
    return typer.Option(
        default,
        "--devices",
        help="How many devices (1), 'auto', or which ones (0,1).",
    )


def precision_option(default: str = "32-true") -> Any:
    return typer.Option(
        default,
        "--precision",
        help="Numeric precision: 32-true, bf16-mixed or 16-mixed (GPU).",
    )


def num_workers_option(default: int = 0, help: str | None = None) -> Any:
    return typer.Option(
        default,
        "--num-workers",
        "-j",
        min=0,
        help=help or "CPU worker processes (0 = in the main process).",
    )


def seed_option(default: int = 0) -> Any:
    return typer.Option(default, "--seed", help="Seed of the weights and of sampling.")


def data_seed_option(default: int = 0) -> Any:
    return typer.Option(default, "--data-seed", help="Seed of data splits and subsets.")


def on_invalid_option() -> Any:
    return typer.Option(
        OnInvalid.error,
        "--on-invalid",
        help="A bad row stops the run (error) or is skipped and listed in invalid.csv (skip).",
    )


def config_option() -> Any:
    return typer.Option(
        None,
        "--config",
        help="A YAML file of options; flags given on the command line win.",
        dir_okay=False,
    )


def cache_dir_option() -> Any:
    return typer.Option(
        None,
        "--cache-dir",
        envvar="MOLFM_CACHE",
        help="molfm's cache (data sets, prepared data); default $MOLFM_CACHE or ~/.cache/molfm.",
        file_okay=False,
    )


def temperature_option(default: float = 1.0) -> Any:
    return typer.Option(
        default, "--temperature", min=0.0, help="Softmax temperature (0 = greedy decoding)."
    )


def top_k_option() -> Any:
    return typer.Option(None, "--top-k", min=1, help="Sample from the k most likely tokens.")


def top_p_option() -> Any:
    return typer.Option(
        None,
        "--top-p",
        min=0.0,
        max=1.0,
        min_open=True,
        help="Sample from the smallest set of tokens whose probability reaches p (0 < p <= 1).",
    )


def count_option(default: int, help: str) -> Any:
    return typer.Option(default, "-n", min=1, help=help)


def batch_size_option(default: int) -> Any:
    return typer.Option(default, "--batch-size", min=1, help="Rows per batch.")
