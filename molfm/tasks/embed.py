"""One vector per molecule from a graph encoder (GINE, GPS, Transformer-M, or the encoder of a
property model): its ``graph_embedding``, what the property head reads.

The SMILES encoder (GP-MoLFormer) and MolCA's Q-Former embed in their own systems; which one a
checkpoint uses is decided where the engines are (:mod:`molfm.scale.batches`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Data

from molfm.data.dense import DenseGraphDataset, collate_dense

__all__ = ["graph_encoder_of", "embed_graphs"]


def graph_encoder_of(model: nn.Module) -> nn.Module | None:
    """The graph encoder of a loaded model: the model itself when it is one (it has an
    ``embedding_dim``), a property model's ``encoder``; ``None`` for any other model."""
    if hasattr(model, "embedding_dim") and not hasattr(model, "head"):
        return model
    encoder = getattr(model, "encoder", None)
    return encoder if hasattr(encoder, "embedding_dim") else None


@torch.no_grad()
def embed_graphs(
    encoder: nn.Module,
    graphs: Sequence[Data],
    *,
    mode: str | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """``[N, C]`` float32 graph embeddings, ``batch_size`` molecules per forward (the encoder
    in eval mode on ``device``; ``mode`` picks Transformer-M's channels as in prediction)."""
    dim = encoder.embedding_dim
    out = np.zeros((len(graphs), dim), dtype=np.float32)
    structure = getattr(type(encoder), "pair_structure", None)
    dataset = DenseGraphDataset(list(graphs), pair_structure=structure)
    for start in range(0, len(graphs), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(graphs)))]
        batch = collate_dense(items).to(device)
        embedding = encoder(batch, mode=mode).graph_embedding
        out[start : start + len(items)] = embedding.float().cpu().numpy()
    return out
