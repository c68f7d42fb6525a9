"""The one optimizer of every molfm objective: AdamW, linear warm-up, cosine decay per step."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from molfm.engine.schedules import per_step, warmup_cosine

__all__ = ["adamw_warmup_cosine", "no_decay_for_biases_and_norms"]


def no_decay_for_biases_and_norms(name: str, param: torch.nn.Parameter) -> bool:
    """Biases, norm scales (1-D tensors) skip weight decay."""
    return param.ndim < 2


def adamw_warmup_cosine(
    named_parameters: Iterable[tuple[str, torch.nn.Parameter]],
    *,
    lr: float,
    weight_decay: float,
    warmup_steps: int,
    max_steps: int,
    min_lr_ratio: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.999),
    no_decay: Callable[[str, torch.nn.Parameter], bool] | None = None,
    fused_on_cpu: bool = False,
) -> dict:
    """What a LightningModule's ``configure_optimizers`` returns: AdamW over the trainable
    parameters, the learning rate warmed up linearly for ``warmup_steps`` (at least one) and
    decayed on a cosine to ``min_lr_ratio`` x ``lr`` at ``max_steps``, stepped every step.

    ``no_decay(name, param)`` true puts a parameter in a second group without weight decay.
    ``fused_on_cpu`` uses torch's fused AdamW when every parameter is on the CPU: one kernel
    for all tensors instead of the default's Python loop over them (several times faster for a
    small model; the updates differ from the loop's in the last float bit).
    """
    trainable = [(n, p) for n, p in named_parameters if p.requires_grad]
    on_cpu = all(p.device.type == "cpu" for _, p in trainable)
    fused = True if fused_on_cpu and on_cpu else None
    if no_decay is None:
        groups: list = [p for _, p in trainable]
    else:
        decayed = [p for n, p in trainable if not no_decay(n, p)]
        exempt = [p for n, p in trainable if no_decay(n, p)]
        groups = [
            g
            for g in (
                {"params": decayed, "weight_decay": weight_decay},
                {"params": exempt, "weight_decay": 0.0},
            )
            if g["params"]
        ]
    optimizer = torch.optim.AdamW(
        groups, lr=lr, weight_decay=weight_decay, betas=betas, fused=fused
    )
    schedule = warmup_cosine(
        optimizer,
        warmup_steps=max(1, warmup_steps),
        max_steps=max_steps,
        min_lr_ratio=min_lr_ratio,
    )
    return per_step(optimizer, schedule)
