"""Learning-rate schedules, as torch ``LRScheduler`` objects stepped once per optimizer step."""

from __future__ import annotations

import math

import torch

__all__ = ["per_step", "warmup_cosine"]


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    *,
    warmup_steps: int,
    max_steps: int,
    min_lr_ratio: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the peak LR, then cosine decay to ``min_lr_ratio`` x peak.

    The factor at step ``s`` is ``(s + 1) / warmup_steps`` during warm-up (the first step
    already trains, at ``1 / warmup_steps`` of the peak), then
    ``min_lr_ratio + (1 - min_lr_ratio) * (1 + cos(pi * p)) / 2`` with ``p`` the fraction of
    the decay done, and ``min_lr_ratio`` after ``max_steps``.

    A ``LambdaLR`` rather than ``SequentialLR(LinearLR, CosineAnnealingLR)``: torch's linear
    warm-up starts at ``start_factor`` (not ``1 / warmup_steps``) and its cosine is defined
    recursively, so the chained pair gives other factors; the shipped checkpoints were trained
    with these, and runs resumed from their Lightning checkpoints must keep them.
    """
    if warmup_steps < 1 or max_steps < 1:
        raise ValueError(
            f"warmup_steps and max_steps must be >= 1, got {warmup_steps}, {max_steps}"
        )
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def per_step(
    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler
) -> dict:
    """What a LightningModule's ``configure_optimizers`` returns for a scheduler stepped after
    every optimizer step (Lightning's default is once per epoch)."""
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
