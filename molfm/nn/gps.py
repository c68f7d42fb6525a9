"""A GPS graph transformer (Rampasek et al. 2022, "Recipe for a General, Powerful, Scalable
Graph Transformer"), the backbone 3D-PGT (Wang et al., KDD 2023) pretrains, built on PyG's
``GPSConv`` with the shared encoder interface.

Each layer runs a local message-passing conv (GINE, PyG's ResGatedGraphConv, or the GatedGCN
with an edge stream of GraphGPS and 3D-PGT) and global multi-head attention side by side, each with a residual and BatchNorm, sums them, then applies a residual FFN. Atoms
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
from molfm.nn.gatedgcn import GatedGCNConv

__all__ = ["GPSConfig", "GPSEncoder", "random_walk_se", "LOCALS"]

LOCALS = ("gine", "gatedgcn", "gatedgcn_edges")
"""Local convs: PyG's GINEConv; PyG's ResGatedGraphConv (no edge state, unnormalized gates; kept
so checkpoints trained with it load unchanged); GatedGCN with an edge stream, normalized gates,
BatchNorm, ReLU and residuals (:mod:`molfm.nn.gatedgcn`, the official 3D-PGT layer)."""


@dataclass
class GPSConfig:
    """Sizes of a :class:`GPSEncoder`.

    ``rwse_dim`` of the ``dim`` channels carry the RWSE projection; the atom embedding fills
    the other ``dim - rwse_dim``. ``dropout`` acts after the conv, the attention and in the FFN;
    ``attn_dropout`` on the attention weights. ``local="gatedgcn_edges"`` embeds bonds once and
    carries edge states from layer to layer; the other convs get a bond embedding per layer.
    """

    num_layers: int = 5
    dim: int = 300
    num_heads: int = 4
    local: Literal["gine", "gatedgcn", "gatedgcn_edges"] = "gatedgcn_edges"
    rwse_steps: int = 16
    rwse_dim: int = 32
    dropout: float = 0.05
    attn_dropout: float = 0.5
    pooling: Literal["mean", "sum"] = "mean"
    atom_dims: list[int] = field(default_factory=lambda: list(OGB_SCHEMA.atom_dims))
    bond_dims: list[int] = field(default_factory=lambda: list(OGB_SCHEMA.bond_dims))

    def __post_init__(self) -> None:
        if self.local not in LOCALS:
            raise ValueError(f"local must be one of {', '.join(LOCALS)}, got {self.local!r}")
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
        config is the same recipe at hidden 304, RWSE 20 channels. The local conv is the official
        GatedGCN with its edge stream (``gatedgcn_edges``, 5 dim^2 weights per layer; PyG's
        ResGatedGraphConv, ``local="gatedgcn"``, has 7 dim^2)."""
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
        # One bond embedding per layer for PyG's convs, which do not update edge features: each
        # layer gets its own bond representation for a few dozen rows x dim. The edge-stream
        # GatedGCN embeds bonds once and updates them, as GraphGPS does.
        self.edge_stream = config.local == "gatedgcn_edges"
        self.bond_embeddings = nn.ModuleList(
            FeatureEmbedding(config.bond_dims, c)
            for _ in range(1 if self.edge_stream else config.num_layers)
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
        if self.config.local == "gatedgcn_edges":
            return _EdgeStreamLocal(c, self.config.dropout)
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
            ``[B, dim]``, ``extras={"nodes": [total_nodes, dim]}``, plus ``"edges"``
            ``[total_edges, dim]`` (the last layer's edge states) with the edge stream.
        """
        graph = batch.graph
        h = self.embed(graph)
        extras = {}
        if self.edge_stream:
            edges = self.bond_embeddings[0](graph.edge_attr)
            for layer in self.layers:
                h = layer(h, graph.edge_index, graph.batch, edge_attr=edges)
                edges = layer.conv.take_edges()
            extras["edges"] = edges
        else:
            for layer, bonds in zip(self.layers, self.bond_embeddings, strict=True):
                h = layer(h, graph.edge_index, graph.batch, edge_attr=bonds(graph.edge_attr))
        pool = global_mean_pool if self.config.pooling == "mean" else global_add_pool
        # the padded width comes from the dense batch when it has one: without it PyG reads
        # the largest graph's size back from the device, a synchronization every step
        node_mask = getattr(batch, "node_mask", None)
        width = None if node_mask is None else node_mask.shape[1]
        nodes, mask = to_dense_batch(
            h, graph.batch, batch_size=graph.num_graphs, max_num_nodes=width
        )
        pooled = pool(h, graph.batch, size=graph.num_graphs)
        return EncoderOutput(nodes, mask, pooled, extras={"nodes": h, **extras})


class _EdgeStreamLocal(nn.Module):
    """:class:`GatedGCNConv` as GPSConv's local conv.

    GPSConv adds the dropout and the residual to the node update it gets back, as the official
    layer does inside, so the conv runs without them on nodes; the edge update gets its own
    dropout and residual here. GPSConv passes only node states on, so the new edge states are
    kept for the encoder to take (:meth:`take_edges`) before the next layer.
    """

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.conv = GatedGCNConv(dim, dropout=0.0, residual=False)
        self.dropout = dropout
        self._edges: torch.Tensor | None = None

    def forward(self, x, edge_index, edge_attr) -> torch.Tensor:
        x_update, e_update = self.conv(x, edge_index, edge_attr)
        self._edges = edge_attr + nn.functional.dropout(e_update, self.dropout, self.training)
        return x_update

    def take_edges(self) -> torch.Tensor:
        edges, self._edges = self._edges, None
        return edges
