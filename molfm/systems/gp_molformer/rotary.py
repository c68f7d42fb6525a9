"""Rotary position embedding (RoFormer, Su et al. 2021).

Each pair of channels ``(x[i], x[i + D/2])`` of a query or key vector at position ``p`` is
rotated by the angle ``p * theta_i`` with ``theta_i = base ** (-2 i / D)``, ``i < D/2``. This is
the "half split" pairing (GPT-NeoX, MoLFormer), not the interleaved ``(x[2i], x[2i+1])``
pairing of the RoFormer paper; both are the same model up to a fixed permutation of channels.

The rotation depends only on the absolute position, so a whole sequence ``[B, H, T, D]`` and a
single decoding step at an arbitrary position ``[B, H, D]`` get exactly the same values: call
:meth:`RotaryEmbedding.cos_sin` with the positions and broadcast (see :func:`apply_rotary`).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["RotaryEmbedding", "apply_rotary", "rotate_half"]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Map ``(x1, x2)`` (the two halves of the last dim) to ``(-x2, x1)``.

    Parameters
    ----------
    x
        ``[..., D]`` with ``D`` even.
    """
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` by the angles whose cosines/sines are ``cos``/``sin``.

    Parameters
    ----------
    x
        Queries or keys, ``[..., D]``: e.g. ``[B, H, T, D]`` (full sequence) or
        ``[B, H, D]`` (one step).
    cos, sin
        From :meth:`RotaryEmbedding.cos_sin`, broadcastable to ``x``: ``[T, D]`` for a full
        sequence at positions ``0..T-1`` (shared by the batch), ``[B, 1, T, D]`` for
        per-sequence positions, ``[B, 1, D]`` for one step with per-sequence positions.
        They are cast to ``x.dtype``.

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``x``.
    """
    cos = cos.to(x.dtype)
    sin = sin.to(x.dtype)
    return x * cos + rotate_half(x) * sin


class RotaryEmbedding(nn.Module):
    """Cosines and sines of the rotary angles for given positions.

    Parameters
    ----------
    head_dim
        Channels per attention head ``D`` (even).
    base
        Frequency base (10000 in RoFormer and MoLFormer).

    Notes
    -----
    The inverse frequencies are not a buffer: they are kept in float64 and cached per
    device/dtype, so ``model.to(torch.bfloat16)`` cannot round them and checkpoints do not
    store them.
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embedding needs an even head_dim, got {head_dim}")
        self.head_dim = head_dim
        self.base = float(base)
        exponent = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim
        self._inv_freq64 = 1.0 / (self.base**exponent)  # [D/2], float64 on CPU
        self._cache: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def inv_freq(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """``theta_i = base ** (-2 i / D)``, ``[D/2]``, on ``device`` in ``dtype``."""
        key = (device, dtype)
        if key not in self._cache:
            self._cache[key] = self._inv_freq64.to(device=device, dtype=dtype)
        return self._cache[key]

    def cos_sin(
        self,
        positions: torch.Tensor | int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosines and sines for integer ``positions``.

        Parameters
        ----------
        positions
            Integer tensor of any shape ``[...]`` (e.g. ``arange(T)`` -> ``[T]``, or ``[B]``
            for one decoding step with a position per sequence), or a Python int.
        dtype
            Output dtype. The angles are computed in float32 (float64 if ``dtype`` is
            float64), so a position gives bit-identical values whether it is part of a full
            sequence or a single step.
        device
            Where to put the result (default: the device of ``positions``; CPU for an int).

        Returns
        -------
        cos, sin
            ``[..., D]`` each.
        """
        positions = torch.as_tensor(positions, device=device)
        compute = torch.float64 if dtype == torch.float64 else torch.float32
        inv_freq = self.inv_freq(positions.device, compute)
        angles = positions.to(compute).unsqueeze(-1) * inv_freq  # [..., D/2]
        angles = torch.cat((angles, angles), dim=-1)  # [..., D]
        return angles.cos().to(dtype), angles.sin().to(dtype)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Rotate ``x`` ``[B, H, T, D]`` at ``positions`` (``[T]`` or ``[B, T]``; default
        ``0..T-1``)."""
        if positions is None:
            positions = torch.arange(x.shape[-2], device=x.device)
        cos, sin = self.cos_sin(positions, dtype=x.dtype)
        if cos.dim() == 3:  # [B, T, D] -> [B, 1, T, D]
            cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        return apply_rotary(x, cos, sin)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base:g}"
