"""A GINE message-passing encoder (Hu et al. 2020, "Strategies for Pre-training GNNs") built on
PyG's ``GINEConv``, with the shared encoder interface: the baseline every graph transformer in
molfm is compared with, and MolCA's default graph encoder (5 layers, hidden 300)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch_geometric.nn import GINEConv, global_mean_pool
from torch_geometric.utils import to_dense_batch

from molfm.chem.schema import OGB_SCHEMA
from molfm.hub import register_model
from molfm.nn.encoder import EncoderOutput, FeatureEmbedding

__all__ = ["GINEConfig", "GINEEncoder"]


@dataclass
class GINEConfig:
    num_layers: int = 5
    dim: int = 300
    dropout: float = 0.1
    atom_dims: list[int] = field(default_factory=lambda: list(OGB_SCHEMA.atom_dims))
    bond_dims: list[int] = field(default_factory=lambda: list(OGB_SCHEMA.bond_dims))

    @classmethod
    def paper(cls, **overrides) -> GINEConfig:
        """Hu et al. (2020): 5 layers, hidden 300 (also MolCA's graph encoder)."""
        return cls(**overrides)

    @classmethod
    def small(cls, **overrides) -> GINEConfig:
        """The paper size already trains on a CPU."""
        return cls(**overrides)


@register_model("gine")
class GINEEncoder(nn.Module):
    """``num_layers`` x (GINEConv with a 2-layer MLP -> BatchNorm -> ReLU (not after the last)
    -> dropout); graph embedding = mean over atoms.

    ``forward`` takes a :class:`~molfm.data.dense.DenseBatch` (its ``graph`` field, a PyG
    ``Batch``) and returns node embeddings padded to ``[B, N, C]`` like every molfm encoder.
    """

    config_class = GINEConfig

    def __init__(self, config: GINEConfig) -> None:
        super().__init__()
        self.config = config
        c = config.dim
        self.atom_embedding = FeatureEmbedding(config.atom_dims, c)
        self.bond_embeddings = nn.ModuleList(
            FeatureEmbedding(config.bond_dims, c) for _ in range(config.num_layers)
        )
        self.convs = nn.ModuleList(
            GINEConv(
                nn.Sequential(
                    nn.Linear(c, 2 * c), nn.BatchNorm1d(2 * c), nn.ReLU(), nn.Linear(2 * c, c)
                )
            )
            for _ in range(config.num_layers)
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(c) for _ in range(config.num_layers))
        self.dropout = nn.Dropout(config.dropout)

    @property
    def embedding_dim(self) -> int:
        return self.config.dim

    def forward(self, batch, mode: str | None = None) -> EncoderOutput:
        """``mode`` is accepted for interface compatibility; GINE is a 2D model."""
        graph = batch.graph
        h = self.atom_embedding(graph.x)
        for layer, (conv, norm, bonds) in enumerate(
            zip(self.convs, self.norms, self.bond_embeddings, strict=True)
        ):
            h = norm(conv(h, graph.edge_index, bonds(graph.edge_attr)))
            if layer < self.config.num_layers - 1:
                h = torch.relu(h)
            h = self.dropout(h)
        # the padded width comes from the dense batch when it has one: without it PyG reads
        # the largest graph's size back from the device, a synchronization every step
        node_mask = getattr(batch, "node_mask", None)
        width = None if node_mask is None else node_mask.shape[1]
        nodes, mask = to_dense_batch(
            h, graph.batch, batch_size=graph.num_graphs, max_num_nodes=width
        )
        return EncoderOutput(nodes, mask, global_mean_pool(h, graph.batch, size=graph.num_graphs))
