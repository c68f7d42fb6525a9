"""The one run skeleton: resume guard -> fit -> export the best checkpoint -> metrics.json.

Every training run of every system follows the same four steps, so that a reader who knows one
knows all, and each gets exact resume and a best-validation export for free:

1. :func:`molfm.engine.fit.start_or_resume` (the caller, before it writes anything of its own):
   a run directory holding another run's checkpoint is refused;
2. :func:`fit_and_export` fits through :func:`molfm.engine.fit.fit_resumable` (resuming from
   ``checkpoints/last.ckpt``), keeping the best validation checkpoint (:class:`BestCheckpoint`);
3. it reloads that best checkpoint and calls the system's ``export(task, meta)``, which writes
   the molfm checkpoint directory ``<run>/model``;
4. it writes ``<run>/metrics.json``: the system's ``evaluate(task)`` report (e.g. test metrics)
   plus the training record (steps, best validation loss, the last logged metrics).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from molfm.atomic import atomic_write_text
from molfm.engine.fit import fit_resumable

__all__ = ["BestCheckpoint", "fit_and_export"]


class BestCheckpoint(L.pytorch.callbacks.ModelCheckpoint):
    """Keeps the best validation checkpoint, and remembers it across a kill.

    ``last.ckpt`` is written after a step's training batch, before that step's validation, so
    the best score restored from it can be older than ``best.ckpt`` on disk. This callback also
    writes its best score to ``best.json`` whenever it saves, and a resumed run takes whichever
    is better, so it chooses the same best model as an uninterrupted run.
    """

    def __init__(self, dirpath: Path, monitor: str = "val/loss") -> None:
        super().__init__(
            dirpath=dirpath, filename="best", monitor=monitor, mode="min", save_top_k=1
        )

    def _record(self) -> Path:
        return Path(self.dirpath) / "best.json"

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if trainer.is_global_zero and self.best_model_score is not None:
            state = {"score": float(self.best_model_score), "path": self.best_model_path}
            atomic_write_text(self._record(), json.dumps(state))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if self.dirpath is not None and self._record().exists():
            stored = json.loads(self._record().read_text())
            if self.best_model_score is None or stored["score"] < float(self.best_model_score):
                self.best_model_score = torch.tensor(stored["score"])
                self.best_model_path = stored["path"]
                self.best_k_models = {stored["path"]: self.best_model_score}
                # the top-k bookkeeping must name the same file: a state saved before the first
                # validation has no kth path, and the next comparison would look it up
                self.kth_best_model_path = stored["path"]
                self.kth_value = self.best_model_score


def _after_distributed_fit(trainer: L.Trainer) -> bool:
    """End a multi-process fit: wait for every rank, leave the process group (rank 0 then
    exports and evaluates alone, and a later Trainer of its own must not wait on the others),
    and say whether this process is rank 0."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return trainer.is_global_zero


def fit_and_export(
    task: L.LightningModule,
    data: L.LightningDataModule,
    out: Path,
    *,
    export: Callable[[L.LightningModule, dict[str, Any]], Path],
    evaluate: Callable[[L.LightningModule], dict[str, Any]] | None = None,
    max_steps: int,
    val_every_n_steps: int,
    batches_per_epoch: int,
    hardware: dict[str, Any],
    progress: bool = True,
    callbacks: list | None = None,
    load_best: Callable[[str], L.LightningModule] | None = None,
    record: dict[str, Any] | None = None,
) -> Path:
    """Fit ``task`` (resumably), export its best validation checkpoint, write metrics.json.

    Parameters
    ----------
    export
        ``export(task, meta)`` writes the checkpoint directory and returns it; ``meta`` is the
        training record (``steps``, ``best_val_loss``, ``final_metrics``).
    evaluate
        ``evaluate(task)`` of the best task returns the report saved in ``metrics.json``.
    hardware
        Checked ``accelerator``/``devices``/``precision`` (and ``strategy``/``num_nodes``)
        (:func:`molfm.engine.hardware.lightning_kwargs`). With several processes only rank 0
        exports and evaluates, after the others have finished; they return the model path
        without writing anything, and ``evaluate`` must run in one process
        (:func:`molfm.engine.hardware.one_process`).
    load_best
        How to load the best ``.ckpt`` (default: ``type(task).load_from_checkpoint``), for
        tasks whose checkpoints hold part of their state.
    record
        The run's own entries that lead the training record (e.g. the data it trained on).
    """
    best = BestCheckpoint(out / "checkpoints")
    trainer = fit_resumable(
        task,
        data,
        out,
        max_steps=max_steps,
        val_every_n_steps=val_every_n_steps,
        batches_per_epoch=batches_per_epoch,
        progress=progress,
        callbacks=[best, *(callbacks or [])],
        **hardware,
    )
    if trainer.world_size > 1 and not _after_distributed_fit(trainer):
        return out / "model"  # rank 0 exports and evaluates, in one process
    final = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    if best.best_model_path:
        loader = load_best or (
            lambda path: type(task).load_from_checkpoint(
                path, map_location="cpu", weights_only=False
            )
        )
        task = loader(best.best_model_path)
    meta = {
        **(record or {}),
        "steps": int(trainer.global_step),
        "best_val_loss": None if best.best_model_score is None else float(best.best_model_score),
        "final_metrics": final,
    }
    model_dir = export(task, meta)
    report = evaluate(task) if evaluate is not None else {}
    if trainer.is_global_zero:
        atomic_write_text(out / "metrics.json", json.dumps(report | {"training": meta}, indent=2))
    return model_dir
