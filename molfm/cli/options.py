"""The one flag vocabulary of the ``molfm`` CLI, shared by every command.

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
    "batch_size_option",
    "INPUT_FORMATS",
    "data_set_names",
    "resolve_data",
    "merge_typed_config",
    "must_be_positive",
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


def batch_size_option(default: int, help: str | None = None) -> Any:
    return typer.Option(default, "--batch-size", min=1, help=help or "Rows per batch.")


# --- data sets and user files: the data layer's (re-exported for the CLI modules) ---------

from molfm.data.sources.resolve import INPUT_FORMATS, data_set_names, resolve_data  # noqa: E402


# --- --config files with the flags' own types and ranges ------------------------------------


def merge_typed_config(
    ctx: typer.Context, config: Path | None, params: dict[str, Any]
) -> dict[str, Any]:
    """:func:`molfm.cli.config.merge_config`, then every value the file supplied is converted
    and checked as its flag would be (type, ``min``/``max``, enum choices), so ``lr: 1e-3``
    becomes a float and ``on-invalid: bogus`` is refused like ``--on-invalid bogus``.

    Raises
    ------
    typer.BadParameter
        Naming the key, the file and what is wrong with the value.
    """
    from molfm.cli.config import merge_config

    merged = merge_config(ctx, config, params)
    by_name = {param.name: param for param in ctx.command.params}
    for key, value in merged.items():
        param = by_name.get(key)
        if param is None or value is None or value is params.get(key):
            continue
        if getattr(param, "multiple", False) and isinstance(value, str | int | float):
            value = [value]
        try:  # the flag's own conversion: type, range, choices and callback
            merged[key] = param.process_value(ctx, value)
        except Exception as err:  # click's BadParameter (typer bundles its own click)
            message = err.format_message() if hasattr(err, "format_message") else str(err)
            raise typer.BadParameter(
                f"{key.replace('_', '-')}: {message} (in {config})", param_hint="--config"
            ) from None
    return merged


def must_be_positive(value: float | None) -> float | None:
    """Option callback for an open lower bound (typer has ``min=`` but no ``min_open``)."""
    if value is not None and value <= 0:
        raise typer.BadParameter(f"{value} is not > 0.")
    return value
