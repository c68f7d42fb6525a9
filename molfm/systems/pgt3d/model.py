"""3D-PGT's own network: the pretext heads on top of any molfm graph encoder's node embeddings.

The backbone is not here: it is a shared molfm encoder (GPS by default, :mod:`molfm.nn.gps`;
property prediction and MolCA use the same class), chosen by name and exported alone, and the
task (:mod:`.task`) puts the two together. These heads exist only for pretraining.

Every head reads the sparse node embeddings ``h`` ``[N, C]`` of a batch (atoms of all molecules
concatenated, PyG order). Bond heads see the two atoms of a bond through symmetric functions
(``h_u + h_v`` and ``h_u * h_v``), because both bond targets are symmetric in the bond's
direction. The energy head is a sum of per-atom contributions, so it is extensive like the total
energy it predicts.

``form="official"`` builds the official code's bond and dihedral heads instead: the bond head
reads ``[h_i, h_j, e_ij]`` of each directed edge and predicts the squared distance, the dihedral
head reads the edge state ``e_ij`` alone. They need an encoder that keeps edge states
(``extras["edges"]``: GPS with ``local="gatedgcn_edges"``) and predict each bond twice, once per
direction.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.utils import scatter

from molfm.systems.pgt3d.config import HEAD_FORMS

__all__ = ["mlp", "PretextHeads"]


def mlp(dim_in: int, hidden: int, dim_out: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.SiLU(), nn.Linear(hidden, dim_out))


class PretextHeads(nn.Module):
    """Bond length, angle and dihedral regressors plus a total-energy probe.

    Parameters
    ----------
    dim
        Width ``C`` of the encoder's node embeddings.
    hidden
        Width of each head's hidden layer.
    form
        ``"symmetric"`` (bond heads on ``[h_u + h_v, h_u * h_v]``) or ``"official"`` (see the
        module docstring).
    """

    def __init__(self, dim: int, hidden: int = 128, form: str = "symmetric") -> None:
        super().__init__()
        if form not in HEAD_FORMS:
            raise ValueError(f"heads must be one of {', '.join(HEAD_FORMS)}, got {form!r}")
        self.form = form
        official = form == "official"
        self.bond_length = mlp(3 * dim if official else 2 * dim, hidden)
        self.angle = mlp(dim, hidden)
        self.dihedral = mlp(dim if official else 2 * dim, hidden)
        self.energy = mlp(dim, hidden)

    @staticmethod
    def _pair(h: torch.Tensor, bonds: torch.Tensor) -> torch.Tensor:
        hu, hv = h[bonds[0]], h[bonds[1]]
        return torch.cat([hu + hv, hu * hv], dim=-1)

    def forward(
        self,
        h: torch.Tensor,
        bonds: torch.Tensor,
        edges: torch.Tensor | None = None,
        edge_index: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Standardized predictions of the three geometry targets.

        Parameters
        ----------
        h
            ``[N, C]`` node embeddings.
        bonds
            int ``[2, M]`` atom pairs, one column per bond.
        edges, edge_index
            ``[2M, C]`` edge states and int ``[2, 2M]`` directed edges (bond ``b`` at edges
            ``2b``, ``2b + 1``); read only by the official heads.

        Returns
        -------
        dict
            ``bond_length`` ``[M]`` (official: ``[2M]`` squared distances, per direction),
            ``angle_cos_sum`` ``[N]``, ``dihedral_sum`` ``[M]`` (official: ``[2M]``).
        """
        if self.form == "official":
            if edges is None or edge_index is None:
                raise ValueError(
                    "the official heads read edge states: use an encoder that keeps them "
                    "(gps with local='gatedgcn_edges', the paper preset)"
                )
            source, target = edge_index
            return {
                "bond_length": self.bond_length(
                    torch.cat([h[source], h[target], edges], dim=-1)
                ).squeeze(-1),
                "angle_cos_sum": self.angle(h).squeeze(-1),
                "dihedral_sum": self.dihedral(edges).squeeze(-1),
            }
        pair = self._pair(h, bonds)
        return {
            "bond_length": self.bond_length(pair).squeeze(-1),
            "angle_cos_sum": self.angle(h).squeeze(-1),
            "dihedral_sum": self.dihedral(pair).squeeze(-1),
        }

    def predict_energy(self, h: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        """``[B]`` standardized energy: the sum of per-atom contributions of each molecule."""
        return scatter(self.energy(h).squeeze(-1), batch, dim=0, dim_size=num_graphs, reduce="sum")
