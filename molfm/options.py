"""Options declared once: the field of a config dataclass carries its flag.

:func:`option` declares a dataclass field with its default, help, range (``min``/``max``,
``positive`` for an open lower bound), choices and flag names; :func:`options_of` lists a
config's declared fields (the CLI builds its flags from them, :mod:`molfm.cli.build`) and
:func:`check_options` applies the same ranges and choices to a config built in Python.

Pure Python and at the bottom of molfm (it imports nothing of molfm), so a config can be
declared in any layer: the data layer's (:mod:`molfm.data.config`), evaluation's
(:mod:`molfm.eval.config`), a system's. The options every training run shares
(:class:`~molfm.engine.options.RunOptions`) are the engine's.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import MISSING, dataclass, field
from typing import Any, Literal

__all__ = [
    "ON_INVALID",
    "ACCELERATOR_CHOICES",
    "PRECISION_CHOICES",
    "Option",
    "option",
    "options_of",
    "check_options",
    "cache_dir_option",
    "ENGINES",
    "EngineOptions",
    "WorkerOptions",
    "StreamOptions",
]

ON_INVALID = ("error", "skip")
"""``--on-invalid``: a bad row stops the command (error) or is skipped and listed (skip)."""
ACCELERATOR_CHOICES = ("auto", "cpu", "gpu", "cuda")
PRECISION_CHOICES = ("32-true", "bf16-mixed", "16-mixed")


@dataclass(frozen=True)
class Option:
    """What a config field says about its flag (stored in the field's metadata)."""

    help: str
    flags: tuple[str, ...] = ()  # default: --field-name
    min: float | None = None
    max: float | None = None
    positive: bool = False  # an open lower bound: > 0
    choices: tuple[str, ...] | None = None
    path: Literal["file", "dir"] | None = None  # the flag takes a path (str in the config)
    exists: bool = False  # the path must exist (checked by the parser)
    envvar: str | None = None
    argument: bool = False  # a positional argument instead of a flag
    cli: bool = True  # False: set from Python only (derived, or a value no flag can spell)
    cli_type: Any = None  # the flag's type when it differs from the field's (e.g. a tuple)
    required: bool = False  # the CLI demands it (the library may default it)

    def names(self, name: str) -> tuple[str, ...]:
        return self.flags or ("--" + name.replace("_", "-"),)


def option(
    default: Any = MISSING,
    *,
    help: str,
    default_factory: Any = MISSING,
    **meta: Any,
) -> Any:
    """A dataclass field that declares its flag: see :class:`Option` for ``meta``."""
    return field(
        default=default,
        default_factory=default_factory,
        metadata={"molfm": Option(help=help, **meta)},
    )


def options_of(config_cls: type) -> list[tuple[dataclasses.Field, Option, Any]]:
    """``(field, option, resolved type)`` for every declared field of ``config_cls``, in
    declaration order (inherited shared options first)."""
    hints = typing.get_type_hints(config_cls)
    return [
        (f, f.metadata["molfm"], hints[f.name])
        for f in dataclasses.fields(config_cls)
        if "molfm" in f.metadata
    ]


def check_options(cfg: Any) -> None:
    """Apply the declared ranges and choices to a config built in Python (the CLI's parser
    checks the same before a config exists).

    Raises
    ------
    ValueError
        One line naming the field, the value and the rule.
    """
    for f, opt, _ in options_of(type(cfg)):
        value = getattr(cfg, f.name)
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if opt.choices is not None and str(item) not in opt.choices:
                raise ValueError(f"{f.name} {item!r}: expected one of {', '.join(opt.choices)}")
            if isinstance(item, bool) or not isinstance(item, int | float):
                continue
            if opt.positive and item <= 0:
                raise ValueError(f"{f.name} must be > 0, got {item}")
            if opt.min is not None and item < opt.min:
                raise ValueError(f"{f.name} must be >= {_num(opt.min)}, got {item}")
            if opt.max is not None and item > opt.max:
                raise ValueError(f"{f.name} must be <= {_num(opt.max)}, got {item}")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def cache_dir_option() -> Any:
    """The ``--cache-dir`` field every command that reads data declares (one help, one envvar)."""
    return option(
        None,
        path="dir",
        envvar="MOLFM_CACHE",
        help="molfm's cache (data sets, prepared data); default $MOLFM_CACHE or ~/.cache/molfm.",
    )


ENGINES = ("local", "ray")
"""``--engine``: this machine's processes, or a Ray cluster (``molfm[scale]``)."""


@dataclass(kw_only=True)
class EngineOptions:
    """Where a batch command runs: the local engine or Ray (the same batch functions)."""

    engine: str = option(
        "local",
        choices=ENGINES,
        help="Run here (local) or on a Ray cluster (ray: install molfm's 'scale' extra).",
    )
    ray_address: str | None = option(
        None,
        envvar="RAY_ADDRESS",
        help="The Ray cluster to join (e.g. 10.0.0.1:6379); default a local cluster.",
    )


@dataclass(kw_only=True)
class WorkerOptions(EngineOptions):
    """How many models work at once: local processes or Ray actors, one model each."""

    workers: int = option(
        1, min=1, help="Model workers: local processes, or Ray actors (one model each)."
    )
    gpus_per_worker: float | None = option(
        None,
        min=0,
        help="GPUs per Ray actor (default 1 when the cluster has GPUs, else 0).",
    )


@dataclass(kw_only=True)
class StreamOptions(WorkerOptions):
    """Streaming in parts: input read ``chunk_size`` rows at a time, each part written as it
    finishes (a rerun resumes), ``workers`` models at once."""

    chunk_size: int = option(
        10_000, min=1, help="Input rows per part (read, computed and written together)."
    )
