"""Run options declared once: every field of a run's config dataclass carries its flag.

A run config is a dataclass whose fields are declared with :func:`option`: the default, the
help, the range (``min``/``max``, ``positive`` for an open lower bound), the choices and the
flag names live on the field. The CLI builds its flags from these fields
(:mod:`molfm.cli.build`), :func:`check_options` applies the same ranges to a config built in
Python, and :class:`RunOptions` is the one block of options every training run shares
(output directory, seeds, hardware, workers, bad input, progress, cache), composed into each
run config by inheritance so that ``cfg.seed`` reads the same in every system::

    @dataclass(kw_only=True)
    class MyTrainConfig(RunOptions):
        lr: float = option(3e-4, positive=True, help="The peak learning rate (> 0).")

Pure Python: no torch, no CLI library, so configs import fast and sit below every system.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "ON_INVALID",
    "ACCELERATOR_CHOICES",
    "PRECISION_CHOICES",
    "Option",
    "option",
    "options_of",
    "check_options",
    "HardwareOptions",
    "RunOptions",
    "fold_data_path",
]

ON_INVALID = ("error", "skip")
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


def fold_data_path(
    cfg: Any,
    data: str = "data",
    data_path: str = "data_path",
    *,
    default: str | None = None,
) -> None:
    """Fold the ``--data NAME`` / ``--data-path FILE`` pair into ``cfg.<data>``: a registered
    data set's name (aliases resolved) or a file's path, ``default`` when neither is given.

    In Python ``data`` may also be given a file's path directly (what the library always took).

    Raises
    ------
    ValueError, FileNotFoundError
        One line: both given, a name that is not a data set, or a file that does not exist.
    """
    from molfm.data.sources.resolve import resolve_data

    flag, path_flag = "--" + data.replace("_", "-"), "--" + data_path.replace("_", "-")
    name, path = getattr(cfg, data), getattr(cfg, data_path)
    if path is not None:
        if name is not None and name != str(path):
            raise ValueError(f"give {flag} NAME or {path_flag} FILE, not both")
        value = resolve_data(None, path, flag=flag, path_flag=path_flag)
    elif name is not None and not Path(name).is_file():
        value = resolve_data(name, None, flag=flag, path_flag=path_flag)
    else:
        value = name if name is not None else default
    setattr(cfg, data, value)


@dataclass(kw_only=True)
class HardwareOptions:
    """Where a command runs: ``--accelerator``, ``--devices``, ``--precision``."""

    accelerator: str = option(
        "auto",
        choices=ACCELERATOR_CHOICES,
        help="Hardware to run on: auto picks a GPU when there is one.",
    )
    devices: str | int = option(
        "1", cli_type=str, help="How many devices (1), 'auto', or which ones (0,1)."
    )
    precision: str = option(
        "32-true", help="Numeric precision: 32-true, bf16-mixed or 16-mixed (GPU)."
    )

    def __post_init__(self) -> None:
        # a count as an int (what Lightning takes); 'auto' and index lists stay text, checked
        # with the hardware (molfm.engine.hardware.parse_devices)
        if re.fullmatch(r"\s*-?\d+\s*", str(self.devices)):
            self.devices = int(self.devices)


@dataclass(kw_only=True)
class RunOptions(HardwareOptions):
    """The options every training run shares; each run config inherits them (and may redeclare
    a field to change its default or help)."""

    output_dir: str = option(
        path="dir", help="The run directory to write (checkpoints, logs, outputs)."
    )
    seed: int = option(0, help="Seed of the weights and of sampling.")
    data_seed: int = option(0, help="Seed of data splits and subsets.")
    num_workers: int = option(
        0,
        flags=("--num-workers", "-j"),
        min=0,
        help="CPU worker processes (0 = in the main process).",
    )
    on_invalid: str = option(
        "error",
        choices=ON_INVALID,
        help="A bad row stops the run (error) or is skipped and listed in invalid.csv (skip).",
    )
    progress: bool = option(True, help="Show a progress bar.")
    cache_dir: str | None = option(
        None,
        path="dir",
        envvar="MOLFM_CACHE",
        help="molfm's cache (data sets, prepared data); default $MOLFM_CACHE or ~/.cache/molfm.",
    )
