"""Lightning fit with exact resume, and the resume guard.

Every system trains through :func:`fit_resumable`: checkpoints in ``<run>/checkpoints``
(``last.ckpt`` always, one every ``val_every_n_steps``), CSV logs in ``<run>/logs`` (a new
version directory per start), and a run directory that already holds ``last.ckpt`` is resumed
from it. :func:`start_or_resume` refuses to resume a run with other settings than those it was
started with. Exactness of a resume also needs the data module to continue its epoch where the
interrupted run left it (``molfm.data.samplers.SeededSampler``) and the task to store the RNG
state it draws from (:class:`RngStateMixin`).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch

from molfm.atomic import atomic_write_text

__all__ = ["RESUMABLE_CHANGES", "RngStateMixin", "fit_resumable", "start_or_resume"]


class RngStateMixin:
    """Store the global torch RNG (dropout draws from it) in every Lightning checkpoint and
    restore it on load, so that a resumed run continues exactly. Mix into a LightningModule."""

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["molfm_rng"] = {"torch": torch.get_rng_state()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "molfm_rng" in checkpoint:
            torch.set_rng_state(checkpoint["molfm_rng"]["torch"])


def fit_resumable(
    task: L.LightningModule,
    data: L.LightningDataModule,
    out: Path,
    *,
    max_steps: int,
    val_every_n_steps: int,
    batches_per_epoch: int,
    accelerator: str = "auto",
    devices: Any = 1,
    precision: str = "32-true",
    strategy: Any = "auto",
    num_nodes: int = 1,
    progress: bool = True,
    callbacks: list | None = None,
) -> L.Trainer:
    """Fit ``task`` with checkpoints in ``out/checkpoints`` and CSV logs in ``out/logs``,
    resuming exactly from ``out/checkpoints/last.ckpt`` when it exists.

    Checkpoints every ``val_every_n_steps``; validates as often, or once per epoch when an
    epoch has fewer batches (Lightning's ``val_check_interval`` cannot exceed an epoch);
    ``batches_per_epoch`` is of one process, at the batch size of one process.

    Several processes (``strategy`` ddp): the training sampler shards itself by rank
    (``molfm.data.samplers.SeededSampler``), so Lightning does not replace the samplers, and
    every rank validates on the whole validation set: each rank logs the same validation loss
    and keeps the same best checkpoint, without a collective per logged value."""
    if strategy != "auto":  # batches_per_epoch counts batches of one process
        processes = len(devices) if isinstance(devices, list) else devices
        if isinstance(processes, int) and processes > 0:
            batches_per_epoch //= processes * num_nodes
    ckpt_dir = out / "checkpoints"
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=ckpt_dir, save_last=True, every_n_train_steps=val_every_n_steps, save_top_k=0
    )
    trainer = L.Trainer(
        max_steps=max_steps,
        accelerator=accelerator,
        devices=devices,
        precision=precision,
        strategy=strategy,
        num_nodes=num_nodes,
        use_distributed_sampler=False,
        val_check_interval=min(val_every_n_steps, max(1, batches_per_epoch)),
        check_val_every_n_epoch=None,
        callbacks=[checkpoint, *(callbacks or [])],
        # a new version directory per (re)start: a resumed run must not overwrite earlier logs
        logger=L.pytorch.loggers.CSVLogger(out, name="logs"),
        enable_progress_bar=progress,
        gradient_clip_val=1.0,
        deterministic=False,
    )
    last = ckpt_dir / "last.ckpt"
    with warnings.catch_warnings():
        # data modules resume mid-epoch themselves (a seeded sampler); Lightning cannot see that
        warnings.filterwarnings("ignore", message=".*ended before the epoch ended.*")
        # whole validation set on every rank: the logged values are equal without syncing
        warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
        trainer.fit(task, datamodule=data, ckpt_path=str(last) if last.exists() else None)
    return trainer


RESUMABLE_CHANGES = frozenset(
    {
        "max_steps",
        "val_every_n_steps",
        "progress",
        "accelerator",
        "devices",
        "num_workers",
        "cache_dir",
    }
)
"""Settings a resumed run may change (raising ``max_steps`` extends a run); any other change
means a different run, which must not silently continue an old checkpoint."""


def start_or_resume(out: Path, cfg: Any) -> None:
    """Write ``cfg`` (a dataclass) to ``out/train_config.json``, after checking that a run
    already in ``out`` (a ``checkpoints/last.ckpt``) was started with the same settings.

    Raises
    ------
    ValueError
        Naming every setting that differs from the stored run's, with both values.
    """
    out.mkdir(parents=True, exist_ok=True)
    stored_path = out / "train_config.json"
    new = dataclasses.asdict(cfg)
    if (out / "checkpoints" / "last.ckpt").exists() and stored_path.exists():
        stored = json.loads(stored_path.read_text())
        changed = {
            key: (stored.get(key), value)
            for key, value in new.items()
            if key not in RESUMABLE_CHANGES | {"output_dir"} and stored.get(key) != value
        }
        if changed:
            listed = ", ".join(f"{k}: {old!r} -> {now!r}" for k, (old, now) in changed.items())
            raise ValueError(
                f"{out} holds a run started with other settings ({listed}); resuming it would "
                f"not be this run. Use a new output directory, or the stored settings (only "
                f"{', '.join(sorted(RESUMABLE_CHANGES))} may change on resume)."
            )
    atomic_write_text(stored_path, json.dumps(new, indent=2))
