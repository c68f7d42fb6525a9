"""Gaussian basis expansion of interatomic distances (Transformer-M's 3D channel)."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["PairGaussianBasis"]


class PairGaussianBasis(nn.Module):
    """Distances -> ``K`` Gaussian kernels, after an affine map chosen by the atom-pair type.

    For atoms i, j with types a_i, a_j: ``psi_k(i, j) = G(gamma * d_ij + beta; mu_k, sigma_k)``
    with ``gamma, beta`` looked up for the ordered pair type ``(a_i, a_j)`` (Transformer-M,
    Sec. 3.1; Shi et al. 2022's Gaussian layer) and learnable ``mu_k``, ``sigma_k``.

    Parameters
    ----------
    num_kernels
        ``K`` (the paper uses 128).
    num_atom_types
        Size of the atom-type vocabulary; pair types are ``a_i * num_atom_types + a_j``.
    """

    def __init__(self, num_kernels: int = 128, num_atom_types: int = 128) -> None:
        super().__init__()
        self.num_kernels = num_kernels
        self.num_atom_types = num_atom_types
        self.means = nn.Parameter(torch.empty(num_kernels).uniform_(0, 3))
        self.stds = nn.Parameter(torch.empty(num_kernels).uniform_(0, 3))
        self.mul = nn.Embedding(num_atom_types * num_atom_types, 1)
        self.bias = nn.Embedding(num_atom_types * num_atom_types, 1)
        nn.init.constant_(self.mul.weight, 1.0)
        nn.init.constant_(self.bias.weight, 0.0)

    def forward(self, distances: torch.Tensor, atom_types: torch.Tensor) -> torch.Tensor:
        """``distances`` ``[B, N, N]``, ``atom_types`` long ``[B, N]`` -> ``[B, N, N, K]``."""
        pair = atom_types.unsqueeze(-1) * self.num_atom_types + atom_types.unsqueeze(-2)
        x = self.mul(pair).squeeze(-1) * distances + self.bias(pair).squeeze(-1)
        std = self.stds.abs() + 1e-2
        z = (x.unsqueeze(-1) - self.means) / std
        return torch.exp(-0.5 * z * z) / (math.sqrt(2 * math.pi) * std)
