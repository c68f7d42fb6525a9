"""The GatedGCN layer with an edge stream (Bresson & Laurent 2017, "Residual Gated Graph
ConvNets", in the form of Dwivedi et al.'s benchmark that GraphGPS and 3D-PGT use as their
"CustomGatedGCN" local model), on PyG's ``MessagePassing``.

PyG's ``ResGatedGraphConv`` is a different layer: it keeps no edge state, does not normalize the
gates, and has no BatchNorm, activation or residual inside. This one, for an edge ``j -> i``::

    e_hat_ij = D x_i + E x_j + C e_ij                      (the new edge state, before BN)
    sigma_ij = sigmoid(e_hat_ij)
    x_hat_i  = A x_i + sum_j sigma_ij * B x_j / (sum_j sigma_ij + 1e-6)
    x_i'     = x_i + dropout(relu(BN(x_hat_i)))            (residual optional)
    e_ij'    = e_ij + dropout(relu(BN(e_hat_ij)))

Five ``dim x dim`` weights (with biases) and two BatchNorms per layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import MessagePassing

__all__ = ["GatedGCNConv"]


class GatedGCNConv(MessagePassing):
    """One GatedGCN layer that updates node and edge states.

    Parameters
    ----------
    dim
        Width of node and edge states (both in and out).
    dropout
        Dropout on both updates before the residual.
    residual
        Add the input states to the updates (off when the caller adds the node residual).
    eps
        Added to the gate sum of each node (isolated atoms get only ``A x_i``).
    """

    def __init__(
        self, dim: int, dropout: float = 0.0, residual: bool = True, eps: float = 1e-6
    ) -> None:
        super().__init__(aggr="add")
        self.A, self.B, self.C, self.D, self.E = (nn.Linear(dim, dim) for _ in range(5))
        self.node_norm = nn.BatchNorm1d(dim)
        self.edge_norm = nn.BatchNorm1d(dim)
        self.dropout, self.residual, self.eps = dropout, residual, eps

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """New node states ``[N, dim]`` and edge states ``[E, dim]``.

        Parameters
        ----------
        x
            ``[N, dim]`` node states.
        edge_index
            ``[2, E]`` directed edges ``j -> i`` (row 0 the source ``j``, row 1 the target ``i``).
        edge_attr
            ``[E, dim]`` edge states, one per directed edge.
        """
        edge_hat = self.D(x)[edge_index[1]] + self.E(x)[edge_index[0]] + self.C(edge_attr)
        # one summed scatter of [gate * B x_j | gate] gives the numerator and the gate norm
        summed = self.propagate(edge_index, bx=self.B(x), gate=torch.sigmoid(edge_hat))
        numerator, norm = summed.chunk(2, dim=-1)
        node_hat = self.A(x) + numerator / (norm + self.eps)
        x_new = F.dropout(F.relu(self.node_norm(node_hat)), self.dropout, self.training)
        e_new = F.dropout(F.relu(self.edge_norm(edge_hat)), self.dropout, self.training)
        if self.residual:
            x_new, e_new = x + x_new, edge_attr + e_new
        return x_new, e_new

    def message(self, bx_j: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return torch.cat([gate * bx_j, gate], dim=-1)
