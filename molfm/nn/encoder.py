"""The interface every graph encoder implements (GINE, GPS, Transformer-M), so property
prediction and MolCA's graph side can take any of them.

An encoder takes a :class:`~molfm.data.dense.DenseBatch` and returns an :class:`EncoderOutput`.
One that also reads per-pair inputs (Transformer-M's shortest paths) names their class as its
``pair_structure`` attribute (:class:`~molfm.data.dense.PairStructure`); whoever builds its
batches passes that to :class:`~molfm.data.dense.DenseGraphDataset`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["EncoderOutput", "FeatureEmbedding", "PRESETS", "encoder_config"]

PRESETS = ("small", "paper")
"""Sizes every encoder config offers as classmethods: ``small`` (CPU) and ``paper``."""


def encoder_config(encoder_type: str, preset: str = "small", overrides: dict | None = None):
    """The config dataclass of a registered encoder at a preset size, with field overrides."""
    from molfm.hub import get_model_class

    config_cls = get_model_class(encoder_type).config_class
    factory = getattr(config_cls, preset, None)
    if preset not in PRESETS or factory is None:
        raise ValueError(f"--preset {preset!r}: {encoder_type} has the presets small, paper")
    return factory(**(overrides or {}))


@dataclass
class EncoderOutput:
    """What a graph encoder returns for a batch of ``B`` molecules of at most ``N`` atoms.

    Attributes
    ----------
    node_embeddings : torch.Tensor
        ``[B, N, C]`` per-atom outputs (padding rows are undefined; use ``node_mask``).
    node_mask : torch.Tensor
        bool ``[B, N]``, true on real atoms.
    graph_embedding : torch.Tensor
        ``[B, C]`` one vector per molecule.
    extras : dict | None
        Encoder-specific tensors its auxiliary losses need (e.g. Transformer-M's noise).
    """

    node_embeddings: torch.Tensor
    node_mask: torch.Tensor
    graph_embedding: torch.Tensor
    extras: dict | None = None


class FeatureEmbedding(nn.Module):
    """Sum of one embedding per categorical feature column (OGB's Atom/BondEncoder layout).

    ``ids`` ``[..., F]`` with column ``f`` in ``[0, dims[f])`` -> ``[..., dim]``. With
    ``shift=1`` the ids are stored +1 and 0 is padding (an all-zero row embeds to zero).
    """

    def __init__(self, dims: list[int], dim: int, shift: int = 0) -> None:
        super().__init__()
        self.shift = shift
        offsets = torch.tensor([0, *list(torch.tensor(dims).cumsum(0)[:-1].tolist())])
        self.register_buffer("offsets", offsets * 1, persistent=False)
        self.embedding = nn.Embedding(sum(dims) + shift, dim, padding_idx=0 if shift else None)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.shift:
            index = torch.where(ids > 0, ids + self.offsets, 0)
        else:
            index = ids + self.offsets
        return self.embedding(index).sum(-2)
