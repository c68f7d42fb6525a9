"""One matrix product for the frozen q/k/v projections and one for gate/up, in training.

A Llama layer calls ``q_proj``, ``k_proj`` and ``v_proj`` on the same input, one after the
other, and ``gate_proj`` then ``up_proj`` on the same input. When their weights are frozen (LoRA
or a frozen LM) the products can be one: :func:`fuse_frozen_projections` gives the first
projection of each group a non-persistent buffer with the group's weights stacked, makes it
compute the whole group in one ``F.linear`` and hand each later projection its slice. That
takes 2 + 1 products off each layer's forward and as many off its backward (SmolLM2's 30
layers: 180 products a step), without touching the attention code, peft's adapters (a
LoRA ``B A x`` still adds to its projection's slice) or the state dict.

The slices pass through a small holder between the calls, so the group must be called in order
on one input; a projection called out of turn raises. The stacked buffer is a copy made at
fusing time: :func:`unfuse_projections` (called by ``MolCA.merge_lora`` before peft changes
the base weights) restores the plain projections.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FUSED_GROUPS", "fuse_frozen_projections", "unfuse_projections", "fused_groups"]

FUSED_GROUPS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))
"""Projections that read one input and run one after the other in a Llama layer."""


class _Slices:
    """The outputs the group's first projection computed for the later ones."""

    __slots__ = ("input", "parts")

    def __init__(self) -> None:
        self.input: torch.Tensor | None = None
        self.parts: list[torch.Tensor | None] = []


def _base(projection: nn.Module) -> nn.Module:
    """The plain linear layer under a peft adapter, or the projection itself."""
    return getattr(projection, "base_layer", projection)


def _first(layer: nn.Linear, sizes: list[int], slices: _Slices, x: torch.Tensor) -> torch.Tensor:
    out = F.linear(x, layer.fused_weight, layer.fused_bias)
    parts = list(out.split(sizes, dim=-1))
    slices.input, slices.parts = x, parts
    return parts[0]


def _later(slices: _Slices, index: int, name: str, x: torch.Tensor) -> torch.Tensor:
    part = slices.parts[index] if index < len(slices.parts) else None
    if part is None or x is not slices.input:
        raise RuntimeError(f"fused projections: {name} called before its group's first one")
    slices.parts[index] = None  # the holder keeps no activation past the layer
    if all(p is None for p in slices.parts[1:]):
        slices.input, slices.parts = None, []
    return part


def fused_groups(model: nn.Module) -> list[tuple[nn.Module, tuple[str, ...]]]:
    """The (parent, names) of every group of :data:`FUSED_GROUPS` in ``model``."""
    return [
        (module, names)
        for module in model.modules()
        for names in FUSED_GROUPS
        if all(isinstance(getattr(module, n, None), nn.Module) for n in names)
    ]


def fuse_frozen_projections(model: nn.Module) -> int:
    """Fuse each group of frozen linear projections in ``model`` (in place); a group with a
    trainable or non-linear base layer stays as it is. Returns the groups fused."""
    fused = 0
    for parent, names in fused_groups(model):
        layers = [_base(getattr(parent, n)) for n in names]
        if not all(type(layer) is nn.Linear for layer in layers):
            continue
        if any(p.requires_grad for layer in layers for p in layer.parameters()):
            continue
        if "forward" in vars(layers[0]):  # fused already
            continue
        head = layers[0]
        with torch.no_grad():
            weight = torch.cat([layer.weight for layer in layers])
            bias = None
            if any(layer.bias is not None for layer in layers):
                zeros = [layer.weight.new_zeros(layer.out_features) for layer in layers]
                bias = torch.cat(
                    [la.bias if la.bias is not None else z for la, z in zip(layers, zeros)]
                )
        head.register_buffer("fused_weight", weight, persistent=False)
        head.register_buffer("fused_bias", bias, persistent=False)
        slices = _Slices()
        sizes = [layer.out_features for layer in layers]
        head.forward = lambda x, h=head, s=sizes, sl=slices: _first(h, s, sl, x)
        for index, (layer, name) in enumerate(zip(layers[1:], names[1:]), start=1):
            layer.forward = lambda x, sl=slices, i=index, n=name: _later(sl, i, n, x)
        fused += 1
    return fused


def unfuse_projections(model: nn.Module) -> int:
    """Undo :func:`fuse_frozen_projections` (in place). Returns the groups restored."""
    restored = 0
    for parent, names in fused_groups(model):
        layers = [_base(getattr(parent, n)) for n in names]
        if "forward" not in vars(layers[0]):
            continue
        for layer in layers:
            vars(layer).pop("forward", None)
        for buffer in ("fused_weight", "fused_bias"):
            layers[0]._buffers.pop(buffer, None)
        restored += 1
    return restored
