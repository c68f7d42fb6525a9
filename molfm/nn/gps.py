"""A GPS graph transformer (Rampasek et al. 2022, "Recipe for a General, Powerful, Scalable
Graph Transformer"), the backbone 3D-PGT (Wang et al., KDD 2023) pretrains, built on PyG's
``GPSConv`` with the shared encoder interface.

Each layer runs a local message-passing conv (GINE or GatedGCN) and global multi-head attention
side by side, each with a residual and BatchNorm, sums them, then applies a residual FFN. Atoms
enter as OGB feature embeddings concatenated with random-walk structural encodings (RWSE),
computed here for the whole batch so any molfm batch works without a dataset transform.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch_geometric.nn import (
    GINEConv,
    GPSConv,
    ResGatedGraphConv,
    global_add_pool,
    global_mean_pool,
)
from torch_geometric.utils import scatter, to_dense_batch

from molfm.chem.schema import OGB_SCHEMA
from molfm.hub import register_model
from molfm.nn.encoder import EncoderOutput, FeatureEmbedding

__all__ = ["GPSConfig", "GPSEncoder", "random_walk_se"]


@dataclass
class GPSConfig:
    """Sizes of a :class:`GPSEncoder`.

    ``rwse_dim`` of the ``dim`` channels carry the RWSE projection; the atom embedding fills
    the other ``dim - rwse_dim``. ``dropout`` acts after the conv, the attention and in the FFN;
    ``attn_dropout`` on the attention weights.
    """

    num_layers: int = 5
    dim: int = 300
    num_heads: int = 4
    local: Literal["gine", "gatedgcn"] = "gatedgcn"
    rwse_steps: int = 16
    rwse_dim: int = 32
    dropout: float = 0.05
    attn_dropout: float = 0.5
    pooling: Literal["mean", "sum"] = "mean"
    atom_dims: list[int] = field(default_factory=lambda: list(OGB_SCHEMA.atom_dims))
    bond_dims: list[int] = field(default_factory=lambda: list(OGB_SCHEMA.bond_dims))

    def __post_init__(self) -> None:
        if self.local not in ("gine", "gatedgcn"):
            raise ValueError(f"local must be gine or gatedgcn, got {self.local!r}")
        if self.pooling not in ("mean", "sum"):
            raise ValueError(f"pooling must be mean or sum, got {self.pooling!r}")
        if not 0 < self.rwse_dim < self.dim:
            raise ValueError(f"rwse_dim must be in (0, dim={self.dim}), got {self.rwse_dim}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")

    @classmethod
    def paper(cls, **overrides) -> GPSConfig:
        """3D-PGT's backbone (LARS-research/3D-PGT ``configs/GPS/pre-train_Drugs.yaml``):
        GatedGCN + Transformer, 5 layers, hidden 300, 4 heads, dropout 0.05, attention dropout
        0.5, BatchNorm, RWSE steps 1..16 -> BatchNorm -> Linear -> 32 channels, mean pooling.
        Its MoleculeNet fine-tuning configs differ only in dropout 0.1; GraphGPS's PCQM4Mv2
        config is the same recipe at hidden 304, RWSE 20 channels. About 6.8M parameters
        (PyG's ResGatedGraphConv, 7 dim^2 weights, vs GraphGPS's own GatedGCN, 5 dim^2)."""
        return cls(**overrides)

    @classmethod
    def small(cls, **overrides) -> GPSConfig:
        """CPU-sized: 4 GINE+attention layers, hidden 128 (about 0.69M parameters)."""
        values = dict(
            num_layers=4, dim=128, num_heads=4, local="gine", rwse_dim=16,
            dropout=0.0, attn_dropout=0.1,
        )  # fmt: skip
        return cls(**(values | overrides))


@torch.no_grad()
def random_walk_se(
    edge_index: torch.Tensor, batch: torch.Tensor, num_graphs: int, walk_length: int
) -> torch.Tensor:
    """Return-probabilities of random walks, ``[total_nodes, walk_length]``: column ``k - 1``
    is the diagonal of ``(D^-1 A)^k``, exactly PyG's ``AddRandomWalkPE`` per molecule.

    One padded ``[B, N, N]`` transition matrix and batched matmuls replace per-molecule work;
    molecules are small, so ``O(B N^3 k)`` dense products are cheap. Degrees are out-degrees
    clamped to 1 (isolated atoms give all zeros), as in PyG.

    Parameters
    ----------
    edge_index
        ``[2, E]`` directed edges of the batch (global node ids, sorted by graph).
    batch
        ``[total_nodes]`` graph index of every node.
    """
    num_nodes = batch.numel()
    row, col = edge_index
    counts = torch.bincount(batch, minlength=num_graphs)
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)[:-1]])
    local = torch.arange(num_nodes, device=batch.device) - ptr[batch]
    degree = scatter(torch.ones_like(row, dtype=torch.float), row, dim_size=num_nodes)
    n_max = int(counts.max()) if num_nodes else 0
    transition = torch.zeros(num_graphs, n_max, n_max, device=batch.device)
    # assignment, not accumulation, like PyG's ``adj[row, col] = value``
    transition[batch[row], local[row], local[col]] = 1.0 / degree.clamp(min=1)[row]
    power, diagonals = transition, [transition.diagonal(dim1=1, dim2=2)]
    for _ in range(walk_length - 1):
        power = power @ transition
        diagonals.append(power.diagonal(dim1=1, dim2=2))
    return torch.stack(diagonals, dim=-1)[batch, local]


@register_model("gps")
class GPSEncoder(nn.Module):
    """``num_layers`` x PyG ``GPSConv`` over atoms embedded with RWSE; graph embedding = mean
    (or sum) over atoms.

    Input: ``h0 = [AtomEmbedding(x) (dim - rwse_dim) | Linear(BatchNorm(RWSE)) (rwse_dim)]``.
    Layer ``l``: ``h = GPSConv_l(h, edge_index, batch, edge_attr=BondEmbedding_l(edge_attr))``.
    No activation between layers (GPSConv ends in its FFN + BatchNorm, as in GraphGPS).

    ``forward`` takes a :class:`~molfm.data.dense.DenseBatch` (its ``graph`` field, a PyG
    ``Batch``; coordinates are ignored) and returns node embeddings padded to ``[B, N, C]``,
    with ``extras["nodes"]`` the same embeddings in the batch's sparse order
    ``[total_nodes, C]`` (so heads can index bonds via ``graph.edge_index``).
    """

    config_class = GPSConfig

    def __init__(self, config: GPSConfig) -> None:
        super().__init__()
        self.config = config
        c = config.dim
        # Concatenation, as GraphGPS/3D-PGT's "Atom+RWSE" encoder: the structural signal keeps
        # its own channels instead of being summed into the atom-type embedding; the raw
        # BatchNorm rescales return probabilities, which are small and shrink with k.
        self.atom_embedding = FeatureEmbedding(config.atom_dims, c - config.rwse_dim)
        self.rwse_norm = nn.BatchNorm1d(config.rwse_steps)
        self.rwse_linear = nn.Linear(config.rwse_steps, config.rwse_dim)
        # One bond embedding per layer: PyG's convs do not update edge features (GraphGPS's
        # GatedGCN does), so per-layer embeddings give each layer its own bond representation
        # at a cost of only a few dozen rows x dim each.
        self.bond_embeddings = nn.ModuleList(
            FeatureEmbedding(config.bond_dims, c) for _ in range(config.num_layers)
        )
        self.layers = nn.ModuleList(
            GPSConv(
                c,
                self._local_conv(),
                heads=config.num_heads,
                dropout=config.dropout,
                act="relu",
                norm="batch_norm",
                attn_type="multihead",
                attn_kwargs={"dropout": config.attn_dropout},
            )
            for _ in range(config.num_layers)
        )

    def _local_conv(self) -> nn.Module:
        c = self.config.dim
        if self.config.local == "gine":  # GraphGPS's GINE: Linear -> ReLU -> Linear
            return GINEConv(nn.Sequential(nn.Linear(c, c), nn.ReLU(), nn.Linear(c, c)))
        return ResGatedGraphConv(c, c, edge_dim=c)

    @property
    def embedding_dim(self) -> int:
        return self.config.dim

    def embed(self, graph) -> torch.Tensor:
        """Input node states ``[total_nodes, dim]``: atom embedding | projected RWSE."""
        rwse = random_walk_se(
            graph.edge_index, graph.batch, graph.num_graphs, self.config.rwse_steps
        )
        structure = self.rwse_linear(self.rwse_norm(rwse))
        return torch.cat([self.atom_embedding(graph.x), structure], dim=-1)

    def forward(self, batch, mode: str | None = None) -> EncoderOutput:
        """Encode ``batch.graph``; ``mode`` is accepted for interface compatibility (2D model).

        Returns
        -------
        EncoderOutput
            ``node_embeddings`` ``[B, N, dim]``, ``node_mask`` ``[B, N]``, ``graph_embedding``
            ``[B, dim]``, ``extras={"nodes": [total_nodes, dim]}``.
        """
        graph = batch.graph
        h = self.embed(graph)
        for layer, bonds in zip(self.layers, self.bond_embeddings, strict=True):
            h = layer(h, graph.edge_index, graph.batch, edge_attr=bonds(graph.edge_attr))
        pool = global_mean_pool if self.config.pooling == "mean" else global_add_pool
        nodes, mask = to_dense_batch(h, graph.batch, batch_size=graph.num_graphs)
        pooled = pool(h, graph.batch, size=graph.num_graphs)
        return EncoderOutput(nodes, mask, pooled, extras={"nodes": h})
