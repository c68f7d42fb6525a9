"""Samplers whose order depends only on a seed and the epoch, so a resumed run continues exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["SeededSampler", "seeded_loader"]


class SeededSampler(Sampler[int]):
    """Shuffles with ``seed + epoch`` and can start part-way into an epoch; with several
    training processes, each takes its share of every global batch.

    Lightning calls :meth:`set_epoch` before every epoch. A run resumed from a mid-epoch
    checkpoint sets ``skip`` to the number of samples that epoch already consumed, so the
    resumed run sees exactly the batches the uninterrupted run would have seen.

    With ``world_size`` processes (set by :meth:`resume` from the trainer), the epoch's order
    is cut into global batches of ``world_size * batch_size`` and rank ``r`` takes positions
    ``r, r + world_size, ...`` of each: global step ``k`` of a ``world_size``-process run
    covers exactly the molecules of step ``k`` of a one-process run with that global batch,
    and every rank yields the same number of full batches.
    """

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch, self.skip = n, seed, 0, 0
        self._trainer: Any = None
        self._batch_size = 1
        self.rank, self.world_size = 0, 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _global_batch(self) -> int:
        return self._batch_size * self.world_size

    def order(self) -> np.ndarray:
        """This epoch's full order (subclasses may group it, e.g. by length)."""
        return np.random.default_rng(self.seed + self.epoch).permutation(self.n)

    def __iter__(self):
        order = self.order()
        skip, self.skip = self.skip, 0  # only the first epoch after a resume is partial
        if self._trainer is not None:  # where the trainer stands now, whenever Lightning asks
            per_epoch = self.n // self._global_batch()
            done = self._trainer.global_step - self.epoch * per_epoch
            skip = min(max(0, done), per_epoch) * self._global_batch()
        order = order[skip:]
        if self.world_size > 1:  # whole global batches only, then this rank's positions
            usable = len(order) // self._global_batch() * self._global_batch()
            order = order[:usable][self.rank :: self.world_size]
        return iter(order.tolist())

    def __len__(self) -> int:
        # the full epoch: Lightning restores its batch counter and stops at this length
        if self.world_size > 1:
            return self.n // self._global_batch() * self._batch_size
        return self.n

    def resume(self, trainer: Any, batch_size: int) -> None:
        """Position the sampler where ``trainer`` (fresh, or restored from a checkpoint)
        stands: its rank among the training processes, its epoch, and the samples that epoch
        already consumed (global batches of ``batch_size`` per process with ``drop_last``, no
        gradient accumulation). No-op without a trainer."""
        if trainer is None:
            return
        # computed at each __iter__ from the trainer's step: Lightning may restore a checkpoint
        # taken at an epoch's last batch as that epoch (nothing left) or as the next one
        self._trainer, self._batch_size = trainer, batch_size
        self.rank = int(getattr(trainer, "global_rank", 0))
        self.world_size = int(getattr(trainer, "world_size", 1))
        self.set_epoch(trainer.current_epoch)


def seeded_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    collate_fn: Any,
    seed: int,
    num_workers: int = 0,
    trainer: Any = None,
    sampler: SeededSampler | None = None,
) -> DataLoader:
    """The loader every molfm data module uses: when ``shuffle``, a :class:`SeededSampler`
    positioned where ``trainer`` stands and full batches only (exact resume); else file order.

    The DataLoader's own generator is seeded too: it draws the workers' base seed, which would
    otherwise come from the global RNG that dropout also draws from (a resumed run would drift).
    """
    if not shuffle:
        sampler = None
    else:
        sampler = sampler or SeededSampler(len(dataset), seed)
        sampler.resume(trainer, batch_size)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=shuffle,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        collate_fn=collate_fn,
        generator=torch.Generator().manual_seed(seed),
    )
