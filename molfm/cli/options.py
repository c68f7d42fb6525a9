"""The one flag vocabulary of the ``molfm`` CLI, shared by every command.

A run's flags are the fields of its config dataclass (:mod:`molfm.options`, composed with the
shared :class:`molfm.engine.options.RunOptions`; :mod:`molfm.cli.build` derives the commands),
so a flag means the same thing, has the same name and the same help everywhere:

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

Numeric options carry their range on the field (``min``/``max``/``positive``), so
``--temperature -1`` is refused by the parser with one line, before anything is loaded. This
module keeps the few hand-written options of the small display commands (``data list``,
``data info``) and ``--config`` merging.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from molfm.data.sources.resolve import INPUT_FORMATS, data_set_names, resolve_data

__all__ = [
    "INPUT_FORMATS",
    "data_set_names",
    "resolve_data",
    "data_option",
    "config_option",
    "cache_dir_option",
    "merge_typed_config",
]


def data_option(default: str | None = None, help: str | None = None) -> Any:
    return typer.Option(
        default,
        "--data",
        help=help or "A registered data set (see `molfm data list`).",
        show_default=default is not None,
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
