"""Accelerator, devices, precision and seeds: one meaning for the flags of every command.

Training passes :func:`lightning_kwargs` (of a run config: :func:`run_hardware`) to
``lightning.Trainer``; inference commands (sampling,
prediction) run on :func:`inference_device` under :func:`inference_autocast`. Both check the
request against the machine first, so ``--accelerator gpu`` on a machine without CUDA is one
clear :class:`HardwareError`, not a RuntimeError from deep inside torch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

__all__ = [
    "ACCELERATORS",
    "PRECISIONS",
    "HardwareError",
    "parse_devices",
    "check_hardware",
    "lightning_kwargs",
    "run_hardware",
    "one_process",
    "inference_device",
    "inference_autocast",
    "seed_everything",
]

ACCELERATORS = ("auto", "cpu", "gpu", "cuda")
"""``gpu`` and ``cuda`` mean the same (Lightning says gpu, torch says cuda)."""
PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true")
"""Lightning's precision names (the ones molfm's models run with)."""

Devices = int | str | list[int]


class HardwareError(ValueError):
    """The requested accelerator, devices or precision cannot run on this machine."""


def parse_devices(value: str | int | list[int]) -> Devices:
    """``"1"`` -> 1 (a count), ``"auto"``, ``"0,2"`` -> [0, 2] (device indices), ``"-1"`` -> all.

    Raises
    ------
    HardwareError
        Anything else, naming the value.
    """
    if isinstance(value, int | list):
        return value
    text = str(value).strip()
    if text == "auto":
        return text
    try:
        if "," in text:
            return [int(part) for part in text.split(",") if part.strip()]
        count = int(text)
    except ValueError:
        raise HardwareError(
            f"--devices {value!r}: expected a count (1), 'auto', or indices (0,1)"
        ) from None
    if count == 0 or count < -1:
        raise HardwareError(f"--devices {value!r}: a count must be >= 1 (or -1 for all)")
    return count


def _wants_gpu(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda")


def check_hardware(accelerator: str, devices: Devices = 1, precision: str = "32-true") -> None:
    """Raise :class:`HardwareError` when the request cannot run here (one line, with a fix)."""
    if accelerator not in ACCELERATORS:
        raise HardwareError(
            f"--accelerator {accelerator!r}: expected one of {', '.join(ACCELERATORS)}"
        )
    if str(precision) not in PRECISIONS:
        raise HardwareError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if _wants_gpu(accelerator):
        if not torch.cuda.is_available():
            raise HardwareError(
                f"--accelerator {accelerator}: no CUDA device is visible on this machine; "
                "use --accelerator cpu (or auto)"
            )
        available = torch.cuda.device_count()
        wanted = devices if isinstance(devices, list) else []
        if isinstance(devices, int) and devices > available:
            raise HardwareError(f"--devices {devices}: this machine has {available} CUDA devices")
        for index in wanted:
            if not 0 <= index < available:
                raise HardwareError(
                    f"--devices {index}: CUDA device indices here are 0..{available - 1}"
                )
    elif accelerator == "cpu" and str(precision) in ("16-mixed", "16-true"):
        raise HardwareError(f"--precision {precision} needs a GPU; on the CPU use bf16-mixed")


def lightning_kwargs(
    accelerator: str = "auto",
    devices: str | Devices = 1,
    precision: str = "32-true",
    *,
    strategy: str = "auto",
    num_nodes: int = 1,
) -> dict[str, Any]:
    """Checked ``accelerator``/``devices``/``precision`` (and, for a multi-process run,
    ``strategy``/``num_nodes``) keyword arguments for ``L.Trainer``.

    ``strategy="ddp"`` becomes Lightning's DDP with ``find_unused_parameters``: an encoder with
    2D and 3D channels leaves one channel's parameters without a gradient on a 2D batch, which
    plain DDP refuses. On CPUs the ranks talk over gloo.
    """
    parsed = parse_devices(devices)
    check_hardware(accelerator, parsed, precision)
    kwargs: dict[str, Any] = {
        "accelerator": "gpu" if _wants_gpu(accelerator) else accelerator,
        "devices": parsed,
        "precision": precision,
    }
    if strategy not in ("auto", "ddp"):
        raise HardwareError(f"--strategy {strategy!r}: expected auto or ddp")
    if int(num_nodes) < 1:
        raise HardwareError(f"--num-nodes {num_nodes}: expected a count >= 1")
    if int(num_nodes) > 1 and strategy != "ddp":
        raise HardwareError(f"--num-nodes {num_nodes} needs --strategy ddp")
    if strategy == "ddp":
        from lightning.pytorch.strategies import DDPStrategy

        kwargs["strategy"] = DDPStrategy(find_unused_parameters=True)
        kwargs["num_nodes"] = int(num_nodes)
    return kwargs


def run_hardware(cfg: Any) -> dict[str, Any]:
    """:func:`lightning_kwargs` of a run config (``molfm.engine.options.RunOptions``)."""
    return lightning_kwargs(
        cfg.accelerator,
        cfg.devices,
        cfg.precision,
        strategy=getattr(cfg, "strategy", "auto"),
        num_nodes=getattr(cfg, "num_nodes", 1),
    )


def one_process(hardware: dict[str, Any]) -> dict[str, Any]:
    """``hardware`` for a Trainer that runs in one process after a multi-process fit (e.g.
    evaluating the best checkpoint on rank 0): the first device, no strategy."""
    single = {k: v for k, v in hardware.items() if k not in ("strategy", "num_nodes")}
    devices = single.get("devices", 1)
    if isinstance(devices, list):
        single["devices"] = devices[:1]
    elif devices != 1:
        single["devices"] = 1
    return single


def inference_device(accelerator: str = "auto", devices: str | Devices = 1) -> torch.device:
    """The one torch device an inference command runs on.

    ``auto`` picks the first CUDA device when there is one, else the CPU. Inference uses one
    device: a list of indices picks its first; a count other than 1 is refused.
    """
    parsed = parse_devices(devices)
    check_hardware(accelerator, parsed)
    if isinstance(parsed, int) and parsed not in (1, -1):
        raise HardwareError(f"--devices {parsed}: inference runs on one device; give 1 or an index")
    if accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    index = parsed[0] if isinstance(parsed, list) and parsed else 0
    return torch.device("cuda", index)


@contextlib.contextmanager
def inference_autocast(device: torch.device, precision: str = "32-true") -> Iterator[None]:
    """Run a block in ``precision``: full float32 for ``32-true``/``32``, else torch autocast
    (``bf16-*`` -> bfloat16, ``16-*`` -> float16) on ``device``."""
    if str(precision) in ("32-true", "32", "64-true"):
        yield
        return
    check_hardware(device.type if device.type == "cpu" else "gpu", 1, precision)
    dtype = torch.bfloat16 if str(precision).startswith("bf16") else torch.float16
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (and DataLoader workers) the way every molfm run does."""
    import lightning as L

    L.seed_everything(seed, workers=True, verbose=False)
