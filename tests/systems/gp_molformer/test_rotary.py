"""Tests for rotary position embeddings."""

from __future__ import annotations

import math

import pytest
import torch

from molfm.systems.gp_molformer.rotary import RotaryEmbedding, apply_rotary, rotate_half


def _reference_rotation(x: torch.Tensor, position: int, base: float) -> torch.Tensor:
    """Rotate channel pairs (i, i + D/2) of a vector [D] by position * base^(-2i/D)."""
    d = x.shape[-1]
    out = x.clone()
    for i in range(d // 2):
        angle = position * base ** (-2 * i / d)
        c, s = math.cos(angle), math.sin(angle)
        a, b = x[i].item(), x[i + d // 2].item()
        out[i] = a * c - b * s
        out[i + d // 2] = a * s + b * c
    return out


def test_matches_explicit_pairwise_rotation() -> None:
    torch.manual_seed(0)
    rope = RotaryEmbedding(8, base=100.0)
    x = torch.randn(1, 2, 5, 8, dtype=torch.float64)
    y = rope(x)
    for h in range(2):
        for t in range(5):
            expected = _reference_rotation(x[0, h, t], t, 100.0)
            torch.testing.assert_close(y[0, h, t], expected)


def test_position_zero_is_identity_and_norm_preserved() -> None:
    torch.manual_seed(1)
    rope = RotaryEmbedding(16)
    x = torch.randn(2, 3, 7, 16)
    y = rope(x)
    torch.testing.assert_close(y[:, :, 0], x[:, :, 0])
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))


def test_relative_property_of_dot_product() -> None:
    """<R_m q, R_n k> depends on m - n only (the point of rotary embeddings)."""
    torch.manual_seed(2)
    rope = RotaryEmbedding(32)
    q, k = torch.randn(32, dtype=torch.float64), torch.randn(32, dtype=torch.float64)

    def score(m: int, n: int) -> torch.Tensor:
        cq, sq = rope.cos_sin(m, dtype=torch.float64)
        ck, sk = rope.cos_sin(n, dtype=torch.float64)
        return apply_rotary(q, cq, sq) @ apply_rotary(k, ck, sk)

    torch.testing.assert_close(score(5, 2), score(13, 10))
    torch.testing.assert_close(score(0, 7), score(30, 37))
    assert not torch.allclose(score(5, 2), score(5, 3))


def test_single_step_equals_full_sequence() -> None:
    """One step at an arbitrary per-sequence position gives the full-sequence values."""
    torch.manual_seed(3)
    rope = RotaryEmbedding(8)
    b, h, t, d = 3, 2, 11, 8
    x = torch.randn(b, h, t, d)
    full = rope(x)
    positions = torch.tensor([0, 4, 10])
    cos, sin = rope.cos_sin(positions)  # [B, D]
    x_t = x[torch.arange(b), :, positions]  # [B, H, D]
    step = apply_rotary(x_t, cos.unsqueeze(1), sin.unsqueeze(1))
    torch.testing.assert_close(step, full[torch.arange(b), :, positions], rtol=0, atol=0)
    # Per-sequence positions for a full sequence: [B, T].
    shifted = rope(x, positions=torch.arange(t).expand(b, t) + 3)
    torch.testing.assert_close(shifted[:, :, 0], rope(x, torch.arange(t) + 3)[:, :, 0])


def test_rotate_half_and_validation() -> None:
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert rotate_half(x).tolist() == [-3.0, -4.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(7)


def test_dtype_cast_does_not_round_frequencies() -> None:
    rope = RotaryEmbedding(64)
    rope.to(torch.bfloat16)  # no buffer to round
    cos, _ = rope.cos_sin(torch.arange(200))
    assert cos.dtype == torch.float32
    angle = 199 * 10000 ** (-2 * 5 / 64)
    assert cos[199, 5].item() == pytest.approx(math.cos(angle), abs=1e-5)
    assert rope.state_dict() == {}
