"""Automatic weighting of the 3D-PGT pretext tasks against a total-energy surrogate.

The paper (Wang et al., KDD 2023) chooses the weights ``w`` of the bond-length, angle and dihedral
losses so that the representation they train predicts the molecule's total energy best: a
bi-level problem, the encoder ``theta`` trained on ``sum_k w_k L_k`` (inner), ``w`` chosen to
minimize the held-out energy loss ``L_E`` of the result (outer). The official code does not
contain it: it trains a fixed sum of four losses, the three geometry tasks plus the raw total
energy (``weighting="official"``, :mod:`.task`). The search here is molfm's own design.

molfm solves the outer problem with a one-step hypergradient (as DARTS does): after one inner
step ``theta' = theta - eta * sum_k w_k g_k`` with ``g_k = dL_k/dtheta``,

    dL_E(theta') / dw_k  ~=  -eta * <dL_E/dtheta, g_k>

(first order: the gradient of ``L_E`` is taken at ``theta``). A task whose gradient points the way
that lowers the held-out energy loss gains weight. Cost: every ``search_every`` steps one extra
forward/backward on a held-out batch plus one backward per task through the shared encoder
(measured: 16% slower pretraining at ``search_every=10``). A search over the weight simplex
(training a model per candidate) would cost a pretraining run per candidate instead.

The weights stay on the simplex (scaled to sum to the number of tasks, so equal weights are all
1) through an exponentiated-gradient step, which needs no projection and whose step size does not
depend on the hypergradient's scale (that changes by orders of magnitude during training, so the
alignments are divided by their largest magnitude).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["TaskWeights", "gradient_alignment"]


class TaskWeights(nn.Module):
    """Weights of ``K`` losses, fixed or searched; they sum to ``K``.

    Parameters
    ----------
    names
        The losses' names (in order).
    initial
        Starting weights (normalized to sum to ``K``); ``(1, 0, 0)`` trains one task alone.
    search
        Update the weights with :meth:`update` (else they stay fixed).
    step_size
        Exponentiated-gradient step per update (on alignments scaled to ``[-1, 1]``).
    floor
        Smallest weight a searched task keeps (as a fraction of ``K``), so a task the surrogate
        dislikes early can come back.
    """

    def __init__(
        self,
        names: Sequence[str],
        initial: Sequence[float] | None = None,
        *,
        search: bool = False,
        step_size: float = 0.05,
        floor: float = 0.02,
    ) -> None:
        super().__init__()
        self.names = list(names)
        k = len(self.names)
        start = torch.ones(k) if initial is None else torch.tensor(initial, dtype=torch.float32)
        if start.shape != (k,) or (start < 0).any() or start.sum() <= 0:
            raise ValueError(f"task weights need {k} non-negative values, got {list(initial)}")
        self.register_buffer("weights", start / start.sum() * k)
        self.search, self.step_size, self.floor = search, step_size, floor

    def as_dict(self) -> dict[str, float]:
        return {name: float(w) for name, w in zip(self.names, self.weights, strict=True)}

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """``sum_k w_k L_k`` (tasks with weight 0 still appear, so their graph is built)."""
        return sum(w * losses[name] for name, w in zip(self.names, self.weights, strict=True))

    @torch.no_grad()
    def update(self, alignment: torch.Tensor) -> None:
        """One exponentiated-gradient step from ``alignment`` ``[K]`` = ``<dL_E/dtheta, g_k>``
        (positive: task ``k``'s descent also lowers the held-out energy loss)."""
        if not self.search:
            return
        k = len(self.names)
        scaled = alignment / alignment.abs().max().clamp(min=1e-12)
        w = self.weights * torch.exp(self.step_size * scaled)
        w = w / w.sum()
        w = w.clamp(min=self.floor)
        self.weights.copy_(w / w.sum() * k)


def gradient_alignment(
    task_losses: dict[str, torch.Tensor],
    names: Sequence[str],
    surrogate_grads: Sequence[torch.Tensor],
    params: Sequence[torch.Tensor],
) -> torch.Tensor:
    """``[K]`` dot products ``<g_E, dL_k/dtheta>`` over the shared parameters ``params``.

    ``task_losses`` stay differentiable afterwards (``retain_graph``) for the training step's own
    backward.
    """
    out = []
    for name in names:
        grads = torch.autograd.grad(task_losses[name], params, retain_graph=True, allow_unused=True)
        dot = sum(
            (g * s).sum()
            for g, s in zip(grads, surrogate_grads, strict=True)
            if g is not None and s is not None
        )
        out.append(torch.as_tensor(dot))
    return torch.stack(out)
