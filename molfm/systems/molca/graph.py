"""MolCA's graph side: any molfm graph encoder, fresh or pretrained.

``build_graph_encoder("gine")`` (MolCA's 5-layer GINE, hidden 300) or ``"gps"`` builds a fresh
encoder of a registered type at its ``paper`` size (``small`` with ``preset="small"``); any
other value is a shipped checkpoint name or a directory (``gps-3dpgt-small-qm9``, a 3D-PGT run,
a property model whose encoder is reused), loaded with its weights.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from molfm.hub import from_pretrained, get_model_class, resolve_checkpoint
from molfm.nn.encoder import EncoderOutput, encoder_config

__all__ = ["build_graph_encoder", "graph_encoder_spec", "graph_keys"]

FRESH = ("gine", "gps")


def build_graph_encoder(
    name_or_dir: str = "gine", *, preset: str = "paper", overrides: dict[str, Any] | None = None
) -> nn.Module:
    """A graph encoder with the shared interface (``forward(batch) -> EncoderOutput``,
    ``embedding_dim``)."""
    if name_or_dir in FRESH:
        return get_model_class(name_or_dir)(encoder_config(name_or_dir, preset, overrides))
    if overrides:
        raise ValueError(f"{name_or_dir} is a pretrained encoder: its sizes cannot be overridden")
    model = from_pretrained(resolve_checkpoint(name_or_dir))
    encoder = getattr(model, "encoder", model)  # a property model: reuse its encoder
    if not hasattr(encoder, "embedding_dim"):
        raise ValueError(f"{name_or_dir} holds a {type(model).__name__}, not a graph encoder")
    # from_pretrained returns eval mode; Lightning keeps a module's mode, so a pretrained encoder
    # would train with frozen BatchNorm statistics and no dropout
    return encoder.train()


def graph_keys(encoded: EncoderOutput, graph_token: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """What the Q-Former cross-attends to: the node embeddings ``[B, N, C]`` and mask ``[B, N]``,
    with ``graph_token`` the encoder's pooled graph embedding prepended (``[B, 1 + N, C]``), as
    MolCA's official graph encoder returns them."""
    nodes, mask = encoded.node_embeddings, encoded.node_mask
    if not graph_token:
        return nodes, mask
    nodes = torch.cat([encoded.graph_embedding[:, None].to(nodes.dtype), nodes], dim=1)
    return nodes, torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)


def graph_encoder_spec(encoder: nn.Module) -> dict[str, Any]:
    """What rebuilds ``encoder``'s architecture: its registered type and config."""
    return {"type": type(encoder).model_type, "config": dataclasses.asdict(encoder.config)}
