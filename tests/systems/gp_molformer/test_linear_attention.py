"""Tests for causal linear attention: parallel == recurrent == naive O(T^2) reference."""

from __future__ import annotations

import pytest
import torch

from molfm.systems.gp_molformer.linear_attention import (
    CausalLinearSelfAttention,
    causal_linear_attention,
    elu_feature_map,
    init_linear_attention_state,
    linear_attention_step,
    orthogonal_random_features,
)

EPS = 1e-6


def naive_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Masked kernel matrix, written out: out_t = sum_{j<=t} w_tj v_j / (sum_{j<=t} w_tj + eps)."""
    t = q.shape[2]
    weights = elu_feature_map(q) @ elu_feature_map(k).transpose(-1, -2)  # [B, H, T, T]
    allowed = torch.ones(t, t, dtype=torch.bool).tril()
    if key_mask is not None:
        allowed = allowed & key_mask.bool()[:, None, None, :]
    weights = weights * allowed
    return (weights @ v) / (weights.sum(-1, keepdim=True) + EPS)


def _qkv(b: int = 2, h: int = 3, t: int = 13, d: int = 8, dv: int = 5, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(b, h, t, d, generator=g, dtype=dtype)
    k = torch.randn(b, h, t, d, generator=g, dtype=dtype)
    v = torch.randn(b, h, t, dv, generator=g, dtype=dtype)
    return q, k, v


def test_feature_map_is_elu_plus_one_and_strictly_positive() -> None:
    x = torch.linspace(-10, 10, 101, dtype=torch.float64)
    torch.testing.assert_close(elu_feature_map(x), torch.nn.functional.elu(x) + 1)
    far = torch.linspace(-80, 80, 101, requires_grad=True)  # float32: elu(-30) + 1 rounds to 0
    phi = elu_feature_map(far)
    assert (phi > 0).all()
    phi.sum().backward()
    assert torch.isfinite(far.grad).all()


@pytest.mark.parametrize("chunk_size", [1, 4, 5, 13, 64])
def test_parallel_matches_naive_reference(chunk_size: int) -> None:
    q, k, v = _qkv()
    out = causal_linear_attention(q, k, v, eps=EPS, chunk_size=chunk_size)
    torch.testing.assert_close(out, naive_reference(q, k, v), rtol=1e-12, atol=1e-12)


def test_parallel_matches_recurrent() -> None:
    q, k, v = _qkv()
    b, h, t, d = q.shape
    parallel = causal_linear_attention(q, k, v, eps=EPS, chunk_size=4)
    state = init_linear_attention_state(b, h, d, v.shape[-1], dtype=torch.float64)
    for i in range(t):
        out_t, state = linear_attention_step(q[:, :, i], k[:, :, i], v[:, :, i], state, eps=EPS)
        torch.testing.assert_close(out_t, parallel[:, :, i], rtol=1e-12, atol=1e-12)
    s, z = state
    assert s.shape == (b, h, d, v.shape[-1]) and z.shape == (b, h, d)
    torch.testing.assert_close(z, elu_feature_map(k).sum(2))


def test_parallel_matches_recurrent_float32() -> None:
    q, k, v = (x.float() for x in _qkv(t=40))
    parallel = causal_linear_attention(q, k, v, chunk_size=16)
    state = init_linear_attention_state(2, 3, 8, 5)
    for i in range(40):
        out_t, state = linear_attention_step(q[:, :, i], k[:, :, i], v[:, :, i], state)
        torch.testing.assert_close(out_t, parallel[:, :, i], rtol=1e-5, atol=1e-5)


def test_masked_keys_contribute_nothing() -> None:
    q, k, v = _qkv(t=12)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[0, :3] = False  # left padding
    mask[1, 5] = False  # a hole
    mask[1, 9:] = False  # right padding
    out = causal_linear_attention(q, k, v, mask, eps=EPS, chunk_size=4)
    torch.testing.assert_close(out, naive_reference(q, k, v, mask), rtol=1e-12, atol=1e-12)
    # Arbitrary values at masked keys change nothing, at any query position.
    k2, v2 = k.clone(), v.clone()
    noise = ~mask[:, None, :, None]
    k2 = torch.where(noise, torch.randn_like(k) * 10, k2)
    v2 = torch.where(noise, torch.randn_like(v) * 10, v2)
    out2 = causal_linear_attention(q, k2, v2, mask, eps=EPS, chunk_size=4)
    torch.testing.assert_close(out2, out, rtol=0, atol=0)
    # ...while without the mask they would.
    assert not torch.allclose(causal_linear_attention(q, k2, v2, eps=EPS), out)


def test_causal_future_does_not_leak() -> None:
    q, k, v = _qkv(t=16)
    out = causal_linear_attention(q, k, v, chunk_size=5)
    for t0 in (0, 4, 5, 11):
        q2, k2, v2 = q.clone(), k.clone(), v.clone()
        for x in (q2, k2, v2):
            x[:, :, t0 + 1 :] = torch.randn_like(x[:, :, t0 + 1 :])
        out2 = causal_linear_attention(q2, k2, v2, chunk_size=5)
        torch.testing.assert_close(out2[:, :, : t0 + 1], out[:, :, : t0 + 1], rtol=0, atol=0)
        assert not torch.allclose(out2[:, :, t0 + 1 :], out[:, :, t0 + 1 :])


def test_step_does_not_modify_state_in_place() -> None:
    q, k, v = _qkv(t=2)
    state = init_linear_attention_state(2, 3, 8, 5, dtype=torch.float64)
    _, new = linear_attention_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], state)
    assert state[0].abs().sum() == 0 and state[1].abs().sum() == 0
    # after one token the state is exactly that token's contribution: S = phi(k) v^T, z = phi(k)
    phi_k = elu_feature_map(k[:, :, 0])
    torch.testing.assert_close(new[1], phi_k)
    torch.testing.assert_close(new[0], phi_k.unsqueeze(-1) * v[:, :, 0].unsqueeze(-2))


def test_module_parallel_equals_recurrent_with_padding() -> None:
    torch.manual_seed(0)
    attn = CausalLinearSelfAttention(16, 2, chunk_size=3).double()
    x = torch.randn(3, 9, 16, dtype=torch.float64)
    lengths = torch.tensor([9, 6, 4])
    mask = torch.arange(9) < lengths[:, None]
    parallel = attn(x, mask)
    state = attn.init_state(3, dtype=torch.float64)
    for t in range(9):
        y_t, state = attn.step(x[:, t], t, state)
        valid = mask[:, t]
        torch.testing.assert_close(y_t[valid], parallel[valid, t], rtol=1e-10, atol=1e-10)
    # Padded rows: what sits beyond each length does not affect real positions.
    x2 = torch.where(mask[..., None], x, torch.randn_like(x))
    torch.testing.assert_close(attn(x2, mask)[mask], parallel[mask], rtol=0, atol=0)


def test_module_step_per_sequence_positions() -> None:
    """A LongTensor of positions equals stepping each sequence at its own int position."""
    torch.manual_seed(1)
    attn = CausalLinearSelfAttention(16, 4).double()
    x = torch.randn(2, 16, dtype=torch.float64)
    state = attn.init_state(2, dtype=torch.float64)
    state = (torch.rand_like(state[0]), torch.rand_like(state[1]))
    y, (s, z) = attn.step(x, torch.tensor([3, 17]), state)
    for row, pos in enumerate((3, 17)):
        row_state = (state[0][row : row + 1], state[1][row : row + 1])
        y_r, (s_r, z_r) = attn.step(x[row : row + 1], pos, row_state)
        torch.testing.assert_close(y[row : row + 1], y_r)
        torch.testing.assert_close(s[row : row + 1], s_r)
    # Rotary matters: a different position gives a different output.
    y_other, _ = attn.step(x, torch.tensor([4, 17]), state)
    assert not torch.allclose(y_other[0], y[0])


def test_bf16_autocast_keeps_float32_state() -> None:
    torch.manual_seed(2)
    attn = CausalLinearSelfAttention(32, 2)
    x = torch.randn(2, 20, 32)
    reference = attn(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attn(x)
        state = attn.init_state(2)
        for t in range(20):
            y_t, state = attn.step(x[:, t], t, state)
    assert state[0].dtype == torch.float32 and state[1].dtype == torch.float32
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), reference, rtol=0.05, atol=0.02)
    torch.testing.assert_close(y_t.float(), reference[:, -1], rtol=0.05, atol=0.02)


def test_shape_validation() -> None:
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="shape"):
        causal_linear_attention(q, k[:, :, :-1], v)
    with pytest.raises(ValueError, match="key_mask"):
        causal_linear_attention(q, k, v, torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="divisible"):
        CausalLinearSelfAttention(10, 3)


# ------------------------------------------------------- ReLU random features (published map)
def naive_favor_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    w: torch.Tensor,
    key_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Loop over queries: out_i = sum_{j<=i} w_ij v_j / (sum_{j<=i} w_ij + eps) with the kernel
    w_ij = relu(q_i W) . relu(k_j W) written out."""
    b, h, t, _ = q.shape
    phi_q, phi_k = torch.relu(q @ w), torch.relu(k @ w)
    keep = torch.ones(b, t) if key_mask is None else key_mask.to(q.dtype)
    out = torch.zeros(b, h, t, v.shape[-1], dtype=q.dtype)
    for i in range(t):
        weights = (phi_q[:, :, i : i + 1] * phi_k[:, :, : i + 1]).sum(-1)  # [B, H, i + 1]
        weights = weights * keep[:, None, : i + 1]
        out[:, :, i] = (weights.unsqueeze(-1) * v[:, :, : i + 1]).sum(2) / (
            weights.sum(-1, keepdim=True) + EPS
        )
    return out


@pytest.mark.parametrize(("d", "m"), [(8, 32), (8, 5), (16, 16)])
def test_orthogonal_random_features(d: int, m: int) -> None:
    w = orthogonal_random_features(d, m, generator=torch.Generator().manual_seed(3))
    assert w.shape == (d, m) and w.dtype == torch.float32
    same = orthogonal_random_features(d, m, generator=torch.Generator().manual_seed(3))
    assert torch.equal(w, same)
    other = orthogonal_random_features(d, m, generator=torch.Generator().manual_seed(4))
    assert not torch.allclose(w, other)
    directions = (w / w.norm(dim=0)).double()
    for start in range(0, m, d):  # orthonormal directions within each group of D columns
        block = directions[:, start : start + d]
        torch.testing.assert_close(block.T @ block, torch.eye(block.shape[1], dtype=torch.float64))
    norms = w.norm(dim=0)  # chi_D lengths, not unit ones
    assert not torch.allclose(norms, torch.ones_like(norms))


@pytest.mark.parametrize("chunk_size", [1, 4, 13])
def test_favor_parallel_matches_naive_reference(chunk_size: int) -> None:
    q, k, v = _qkv()
    w = orthogonal_random_features(8, 32, generator=torch.Generator().manual_seed(0)).double()
    out = causal_linear_attention(q, k, v, eps=EPS, chunk_size=chunk_size, projection=w)
    torch.testing.assert_close(out, naive_favor_reference(q, k, v, w), rtol=1e-12, atol=1e-12)
    mask = torch.ones(2, 13, dtype=torch.bool)
    mask[0, :2] = False
    mask[1, 9:] = False
    out = causal_linear_attention(q, k, v, mask, eps=EPS, chunk_size=chunk_size, projection=w)
    expected = naive_favor_reference(q, k, v, w, mask)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_favor_parallel_matches_recurrent() -> None:
    q, k, v = _qkv()
    w = orthogonal_random_features(8, 12, generator=torch.Generator().manual_seed(1)).double()
    parallel = causal_linear_attention(q, k, v, eps=EPS, chunk_size=4, projection=w)
    state = init_linear_attention_state(2, 3, 12, 5, dtype=torch.float64)
    for i in range(q.shape[2]):
        out_t, state = linear_attention_step(
            q[:, :, i], k[:, :, i], v[:, :, i], state, eps=EPS, projection=w
        )
        torch.testing.assert_close(out_t, parallel[:, :, i], rtol=1e-12, atol=1e-12)
    assert state[0].shape == (2, 3, 12, 5)
    torch.testing.assert_close(state[1], torch.relu(k @ w).sum(2))


def test_favor_module_parallel_equals_recurrent_and_buffer() -> None:
    torch.manual_seed(3)
    gen = torch.Generator().manual_seed(0)
    attn = CausalLinearSelfAttention(16, 2, chunk_size=3, feature_map="favor_relu", generator=gen)
    attn = attn.double()
    assert attn.feature_projection.shape == (8, 32) and attn.feature_dim == 32
    assert "feature_projection" in attn.state_dict()  # a persistent buffer, not a parameter
    assert "feature_projection" not in dict(attn.named_parameters())
    assert "feature_projection" not in CausalLinearSelfAttention(16, 2).state_dict()
    x = torch.randn(3, 9, 16, dtype=torch.float64)
    mask = torch.arange(9) < torch.tensor([9, 6, 4])[:, None]
    parallel = attn(x, mask)
    state = attn.init_state(3, dtype=torch.float64)
    assert state[0].shape == (3, 2, 32, 8) and state[1].shape == (3, 2, 32)
    for t in range(9):
        y_t, state = attn.step(x[:, t], t, state)
        valid = mask[:, t]
        torch.testing.assert_close(y_t[valid], parallel[valid, t], rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="feature_map"):
        CausalLinearSelfAttention(16, 2, feature_map="softmax")  # type: ignore[arg-type]
