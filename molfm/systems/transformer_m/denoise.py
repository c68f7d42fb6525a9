"""Transformer-M's 3D position-denoising head (an auxiliary objective on 3D inputs).

During training the coordinates of molecules that run with their 3D channel are perturbed with
Gaussian noise (``sigma = 0.2`` Angstrom by default); the encoder sees the noisy geometry and
this head predicts the noise per atom. The prediction is SE(3)-equivariant by construction:
invariant attention weights over atom pairs mix the unit vectors between the noisy positions::

    a[h, i, j]  = softmax_j(q_i . k_j / sqrt(d) + bias3d[h, i, j])     (invariant)
    f[i, h]     = sum_j a[h, i, j] * v[j, h] * (p_i - p_j) / |p_i - p_j|  (rotates with p)
    noise_hat_i = sum_h w_h f[i, h]

so rotating the input rotates the output, and a translation changes nothing.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PositionDenoisingHead"]


class PositionDenoisingHead(nn.Module):
    """Predict per-atom 3D noise ``[B, N, 3]`` from node features and noisy positions."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, num_heads)
        self.mix = nn.Linear(num_heads, 1, bias=False)

    def forward(
        self,
        nodes: torch.Tensor,
        pos: torch.Tensor,
        bias_3d: torch.Tensor,
        node_mask: torch.Tensor,
    ) -> torch.Tensor:
        """``nodes`` ``[B, N, C]``, ``pos`` ``[B, N, 3]``, ``bias_3d`` ``[B, H, N, N]``,
        ``node_mask`` bool ``[B, N]`` -> ``[B, N, 3]`` (zero on padding atoms)."""
        b, n, c = nodes.shape
        h = self.num_heads
        q = self.query(nodes).view(b, n, h, c // h).transpose(1, 2)
        k = self.key(nodes).view(b, n, h, c // h).transpose(1, 2)
        logits = q @ k.transpose(-1, -2) / (c // h) ** 0.5 + bias_3d
        eye = torch.eye(n, dtype=torch.bool, device=nodes.device)
        keep = node_mask[:, None, None, :] & ~eye  # an atom's own direction is undefined
        weights = torch.softmax(logits.masked_fill(~keep, float("-inf")), dim=-1)
        weights = torch.nan_to_num(weights)  # single-atom molecules: no partner, no force
        delta = pos.unsqueeze(2) - pos.unsqueeze(1)  # [B, N, N, 3]
        unit = delta / (delta.norm(dim=-1, keepdim=True) + 1e-6)
        values = self.value(nodes)  # [B, N, H]
        # f[b, i, h, :] = sum_j weights[b, h, i, j] * values[b, j, h] * unit[b, i, j, :]
        forces = torch.einsum("bhij,bjh,bijd->bihd", weights, values, unit)
        return self.mix(forces.transpose(-1, -2)).squeeze(-1) * node_mask.unsqueeze(-1)
