"""Run options declared once: every field of a run's config dataclass carries its flag.

A run config is a dataclass whose fields are declared with :func:`option`: the default, the
help, the range (``min``/``max``, ``positive`` for an open lower bound), the choices and the
flag names live on the field. The CLI builds its flags from these fields
(:mod:`molfm.cli.build`), :func:`check_options` applies the same ranges to a config built in
Python (both are :mod:`molfm.options`'s, at the bottom of molfm so that every layer can declare
a config; they are importable from here too), and :class:`RunOptions` is the one block of
options every training run shares
(output directory, seeds, hardware, workers, bad input, progress, cache), composed into each
run config by inheritance so that ``cfg.seed`` reads the same in every system::

    @dataclass(kw_only=True)
    class MyTrainConfig(RunOptions):
        lr: float = option(3e-4, positive=True, help="The peak learning rate (> 0).")

Pure Python: no torch, no CLI library, so configs import fast and sit below every system.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from molfm.options import (
    ACCELERATOR_CHOICES,
    ON_INVALID,
    PRECISION_CHOICES,
    Option,
    cache_dir_option,
    check_options,
    option,
    options_of,
)

__all__ = [
    "ON_INVALID",
    "STRATEGY_CHOICES",
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


STRATEGY_CHOICES = ("auto", "ddp")
"""``--strategy``: ``ddp`` is Lightning's DDP (one process per device, gloo on CPUs, NCCL on
GPUs), tolerating parameters a step leaves unused (2D batches of a 2D+3D encoder)."""


def fold_data_path(
    cfg: Any,
    data: str = "data",
    data_path: str = "data_path",
    *,
    default: str | None = None,
) -> None:
    """Fold the ``--data NAME`` / ``--data-path FILE`` pair into ``cfg.<data>``: a registered
    data set's name (aliases resolved) or a file's path, ``default`` when neither is given.

    Folding twice changes nothing (``data`` then holds the file's path and ``data_path`` the
    same path), so a saved or replaced config folds again to itself.

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
    elif name is not None:  # a data set's name; a file goes to data_path, in Python as on the CLI
        value = resolve_data(name, None, flag=flag, path_flag=path_flag)
    else:
        value = default
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
    a field to change its default or help). ``strategy``/``num_nodes`` are here, not in
    :class:`HardwareOptions`: only training runs in several processes."""

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
    cache_dir: str | None = cache_dir_option()
    strategy: str = option(
        "auto",
        choices=STRATEGY_CHOICES,
        help="How training processes share the work: auto (one process per run unless "
        "--devices asks for more) or ddp (one process per device, gradients averaged).",
    )
    num_nodes: int = option(
        1, min=1, help="Machines a ddp run spans (each runs --devices processes)."
    )
