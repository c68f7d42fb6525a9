"""MolCA as a molecule encoder: one vector per molecule from the Q-Former's query outputs.

- a MolCA naming/captioning model (stage 2): the mean of the graph tokens it feeds the LM
  (the Q-Former's queries after the projector), ``[D_lm]``;
- a stage-1 model: the mean of its normalized query projections, the space retrieval
  compares texts in, ``[D]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch_geometric.data import Data

from molfm.data.dense import DenseGraphDataset, collate_dense

__all__ = ["embed_molecules"]


@torch.no_grad()
def embed_molecules(
    model, graphs: Sequence[Data], *, batch_size: int = 64, device: str | torch.device = "cpu"
) -> np.ndarray:
    """``[N, D]`` float32 embeddings of featurized molecules (model in eval mode on
    ``device``); see the module docstring for which vector each model gives."""
    stage1 = hasattr(model, "embed_molecules")
    encode = model.embed_molecules if stage1 else model.encode_graphs
    structure = getattr(type(model.graph_encoder), "pair_structure", None)
    dataset = DenseGraphDataset(list(graphs), pair_structure=structure)
    parts = []
    for start in range(0, len(graphs), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(graphs)))]
        queries = encode(collate_dense(items).to(device))  # [B, Nq, D]
        parts.append(queries.float().mean(1).cpu().numpy())
    if not parts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32, copy=False)
