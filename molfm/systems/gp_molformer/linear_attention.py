"""Causal linear attention (Katharopoulos et al. 2020) with rotary positions.

Softmax attention ``softmax(q k^T) v`` is replaced by a kernel ``phi(q) . phi(k)`` with a
non-negative feature map ``phi: R^D -> R^M``. Two maps are provided:

* ``phi(x) = elu(x) + 1`` (``M = D``; Katharopoulos et al., the default of fast-transformers,
  the library MoLFormer was built on): deterministic, strictly positive;
* ``phi(x) = relu(x W)`` (``W`` ``[D, M]``, :func:`relu_random_features`): Performer's
  generalized random features with a ReLU kernel (FAVOR+), fast-transformers'
  ``GeneralizedRandomFeatures`` -- the map the published MoLFormer/GP-MoLFormer were trained
  with (``M = 32``). ``W`` is drawn once (:func:`orthogonal_random_features`) and kept as a
  buffer; fast-transformers instead redraws it at every forward call.

For a query at position ``t``::

    out_t = phi(q_t)^T S_t / (phi(q_t)^T z_t + eps)
    S_t = sum_{j <= t} phi(k_j) v_j^T        [M, Dv]
    z_t = sum_{j <= t} phi(k_j)              [M]

which gives two forms of the same function:

* **parallel** (:func:`causal_linear_attention`, training): all positions at once;
* **recurrent** (:func:`linear_attention_step`, sampling): carry ``(S, z)``, a constant-size
  state per sequence, and update it one token at a time in O(1).

Rotary positions and the feature map. As in MoLFormer (its ``RotateAttentionLayer`` rotates
queries and keys, then the fast-transformers linear attention applies the feature map), the
order here is **rotate, then feature map**: ``phi(R_t q_t) . phi(R_j k_j)``. The kernel is
then no longer a function of ``t - j`` alone (the RoFormer paper's linear-attention variant
rotates *after* the feature map for that), but it is what MoLFormer/GP-MoLFormer compute, the
weights stay non-negative, and the parallel and recurrent forms are exactly the same function
because a key is rotated at its own absolute position before it enters the state.

Numerics. The feature map, the state accumulation and the normalizer run in float32 (float64
if the inputs are float64) with autocast disabled, so bf16/fp16 training and sampling cannot
overflow or lose the running sums; the result is cast back to the input dtype. There is no
``1/sqrt(D)`` scaling (none in fast-transformers' linear attention either).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from molfm.systems.gp_molformer.rotary import RotaryEmbedding, apply_rotary

__all__ = [
    "LinearAttentionState",
    "FeatureMapName",
    "elu_feature_map",
    "relu_random_features",
    "orthogonal_random_features",
    "causal_linear_attention",
    "linear_attention_step",
    "init_linear_attention_state",
    "CausalLinearSelfAttention",
]

LinearAttentionState = tuple[torch.Tensor, torch.Tensor]
"""``(S, z)``: ``S`` ``[B, H, M, Dv]`` running sum of ``phi(k) v^T``; ``z`` ``[B, H, M]``
running sum of ``phi(k)`` (``M`` the feature size: ``D`` for ``elu``)."""

FeatureMapName = Literal["elu", "favor_relu"]

DEFAULT_EPS = 1e-6


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """``phi(x) = elu(x) + 1``: ``x + 1`` for ``x > 0``, ``exp(x)`` otherwise.

    Computed as ``exp(min(x, 0)) + max(x, 0)``: the same values bit for bit, with ``exp``
    directly rather than ``(exp(x) - 1) + 1`` (which rounds to exactly 0 in float32 below
    ``x ~ -17`` and would break strict positivity), and without a data-dependent select
    (``torch.where`` over both branches cost 2x more per decoding step on CPU). Gradients stay
    finite: ``exp`` only ever sees ``x <= 0``.
    """
    return torch.exp(x.clamp(max=0.0)) + x.clamp(min=0.0)


def relu_random_features(x: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """``phi(x) = relu(x W)``: ``x`` ``[..., D]``, ``projection`` ``W`` ``[D, M]`` -> ``[..., M]``.

    No input scaling and no ``1/sqrt(M)`` factor (fast-transformers' defaults); a constant
    factor cancels in the normalized attention anyway. ``phi`` can be all zeros (every
    projection negative): such a query then reads a zero output (``0 / eps``).
    """
    return torch.relu(x @ projection)


def orthogonal_random_features(
    head_dim: int, n_features: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Performer's orthogonal random projection ``W`` ``[D, M]`` (float32, on the CPU).

    Columns are orthonormal in groups of ``D`` (the Q of a Gaussian matrix's QR, sign-fixed so
    that it is Haar-distributed) and rescaled by independent ``chi_D`` norms, so each column is
    marginally ``N(0, I_D)`` -- as fast-transformers' ``orthogonal_random_matrix_``. Drawn in
    float64 from ``generator`` (the global RNG if None).
    """
    if head_dim < 1 or n_features < 1:
        raise ValueError(f"need head_dim, n_features >= 1, got {head_dim}, {n_features}")
    blocks = []
    for start in range(0, n_features, head_dim):
        g = torch.randn(head_dim, head_dim, generator=generator, dtype=torch.float64, device="cpu")
        q, r = torch.linalg.qr(g)
        q = q * torch.where(r.diagonal() < 0, -1.0, 1.0)
        blocks.append(q[:, : min(head_dim, n_features - start)])
    norms = torch.randn(
        head_dim, n_features, generator=generator, dtype=torch.float64, device="cpu"
    ).norm(dim=0)
    return (torch.cat(blocks, dim=1) * norms).float()


def _feature_map(x: torch.Tensor, projection: torch.Tensor | None) -> torch.Tensor:
    """``elu + 1`` if ``projection`` is None, else ReLU random features."""
    if projection is None:
        return elu_feature_map(x)
    return relu_random_features(x, projection.to(x.dtype))


def _compute_dtype(*dtypes: torch.dtype) -> torch.dtype:
    out = torch.float32
    for d in dtypes:
        out = torch.promote_types(out, d)
    return out


def causal_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    *,
    eps: float = DEFAULT_EPS,
    chunk_size: int = 64,
    projection: torch.Tensor | None = None,
) -> torch.Tensor:
    """Parallel (training) form of causal linear attention.

    Parameters
    ----------
    q, k
        Queries and keys *before* the feature map (already rotated), ``[B, H, T, D]``.
    v
        Values, ``[B, H, T, Dv]``.
    key_mask
        ``[B, T]``, true (or 1) for real tokens. Masked keys contribute nothing to the sums,
        neither to the numerator nor the normalizer. Outputs at masked query positions are
        meaningless (finite thanks to ``eps``) and should be ignored by the caller.
    eps
        Added to the normalizer ``phi(q_t) . z_t``.
    chunk_size
        Chunk length ``C``. The sequence is cut into ``N = ceil(T / C)`` chunks: inside a
        chunk the masked ``C x C`` kernel matrix is used, across chunks the state ``S`` summed
        over all earlier chunks. Memory per head is ``O(T C + N D Dv)`` -- linear in ``T`` for
        fixed ``C`` -- instead of ``O(T^2)`` for the masked kernel matrix or ``O(T D Dv)`` for a
        cumulative sum of per-position outer products. ``C >= T`` gives the plain
        ``O(T^2)`` form (fastest for short sequences); smaller ``C`` saves memory on long ones.
    projection
        ``[D, M]``: use the ReLU random feature map ``relu(x W)``
        (:func:`relu_random_features`) instead of ``elu + 1``.

    Returns
    -------
    torch.Tensor
        ``[B, H, T, Dv]`` in ``v.dtype``.
    """
    if q.shape != k.shape or q.shape[:3] != v.shape[:3]:
        raise ValueError(
            f"shape mismatch: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    out_dtype = v.dtype
    b, h, t, d = q.shape
    dv = v.shape[-1]
    dtype = _compute_dtype(q.dtype, k.dtype, v.dtype)
    with torch.autocast(device_type=q.device.type, enabled=False):
        phi_q = _feature_map(q.to(dtype), projection)
        phi_k = _feature_map(k.to(dtype), projection)
        d = phi_q.shape[-1]
        v = v.to(dtype)
        if key_mask is not None:
            if key_mask.shape != (b, t):
                raise ValueError(f"key_mask must be [B, T] = {(b, t)}, got {tuple(key_mask.shape)}")
            phi_k = phi_k * key_mask.to(dtype)[:, None, :, None]
        c = min(chunk_size, t)
        n = -(-t // c)
        pad = n * c - t
        if pad:  # zero keys contribute nothing; padded query rows are dropped below
            phi_q = F.pad(phi_q, (0, 0, 0, pad))
            phi_k = F.pad(phi_k, (0, 0, 0, pad))
            v = F.pad(v, (0, 0, 0, pad))
        phi_q = phi_q.view(b, h, n, c, d)
        phi_k = phi_k.view(b, h, n, c, d)
        v = v.view(b, h, n, c, dv)

        # Inside each chunk: masked kernel matrix [B, H, N, C, C].
        causal = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()
        scores = (phi_q @ phi_k.transpose(-1, -2)).masked_fill(~causal, 0.0)
        numerator = scores @ v  # [B, H, N, C, Dv]
        denominator = scores.sum(-1)  # [B, H, N, C]

        if n > 1:  # Across chunks: sums over all *earlier* chunks (exclusive prefix sum).
            kv = phi_k.transpose(-1, -2) @ v  # [B, H, N, D, Dv]
            ks = phi_k.sum(-2)  # [B, H, N, D]
            s_prev = torch.cat((torch.zeros_like(kv[:, :, :1]), kv[:, :, :-1].cumsum(2)), 2)
            z_prev = torch.cat((torch.zeros_like(ks[:, :, :1]), ks[:, :, :-1].cumsum(2)), 2)
            numerator = numerator + phi_q @ s_prev
            denominator = denominator + (phi_q @ z_prev.unsqueeze(-1)).squeeze(-1)

        out = numerator / (denominator.unsqueeze(-1) + eps)
        out = out.view(b, h, n * c, dv)[:, :, :t]
    return out.to(out_dtype)


def init_linear_attention_state(
    batch_size: int,
    n_head: int,
    head_dim: int,
    value_dim: int | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> LinearAttentionState:
    """Empty recurrent state ``(S [B, H, D, Dv], z [B, H, D])`` (zeros); ``head_dim`` is the
    feature size ``M`` (``n_features`` for random features), ``value_dim`` defaults to it."""
    value_dim = head_dim if value_dim is None else value_dim
    s = torch.zeros(batch_size, n_head, head_dim, value_dim, device=device, dtype=dtype)
    z = torch.zeros(batch_size, n_head, head_dim, device=device, dtype=dtype)
    return s, z


def linear_attention_step(
    q_t: torch.Tensor,
    k_t: torch.Tensor,
    v_t: torch.Tensor,
    state: LinearAttentionState,
    *,
    eps: float = DEFAULT_EPS,
    inplace: bool = False,
    projection: torch.Tensor | None = None,
) -> tuple[torch.Tensor, LinearAttentionState]:
    """Recurrent (sampling) form: one token per sequence, O(1) in the sequence length.

    Parameters
    ----------
    q_t, k_t
        Query and key of the current token before the feature map (already rotated at the
        token's position), ``[B, H, D]``.
    v_t
        Value, ``[B, H, Dv]``.
    state
        ``(S [B, H, M, Dv], z [B, H, M])`` summed over the earlier tokens (zeros at the start).
        Its dtype (float32 or float64) is the compute dtype. Not modified in place unless
        ``inplace``.
    inplace
        Update ``S`` and ``z`` in place (and return them): no new ``[B, H, D, Dv]`` tensor per
        token, which makes the memory-bound update 2-3x cheaper on CPU. Only for a state the
        caller owns (not an ``expand``-ed view shared by several sequences).
    projection
        ``[D, M]`` for ReLU random features, as in :func:`causal_linear_attention`.

    Returns
    -------
    out_t
        ``[B, H, Dv]`` in ``v_t.dtype``; equal to the parallel form at this position.
    new_state
        The state including the current token.
    """
    s, z = state
    dtype = _compute_dtype(s.dtype, q_t.dtype, k_t.dtype, v_t.dtype)
    with torch.autocast(device_type=q_t.device.type, enabled=False):
        phi_q = _feature_map(q_t.to(dtype), projection)
        phi_k = _feature_map(k_t.to(dtype), projection)
        out, state = _feature_step(phi_q, phi_k, v_t.to(dtype), state, eps, inplace)
    return out.to(v_t.dtype), state


def _feature_step(
    phi_q: torch.Tensor,
    phi_k: torch.Tensor,
    v_t: torch.Tensor,
    state: LinearAttentionState,
    eps: float,
    inplace: bool,
) -> tuple[torch.Tensor, LinearAttentionState]:
    """:func:`linear_attention_step` after the feature map, all in the compute dtype."""
    s, z = state
    dtype = v_t.dtype
    # One fused pass over S (no separate outer-product tensor): the update is memory bound.
    if inplace and s.dtype == dtype and z.dtype == dtype:
        s = s.addcmul_(phi_k.unsqueeze(-1), v_t.unsqueeze(-2))  # [B, H, D, Dv]
        z = z.add_(phi_k)  # [B, H, D]
    else:
        s = torch.addcmul(s.to(dtype), phi_k.unsqueeze(-1), v_t.unsqueeze(-2))
        z = z.to(dtype) + phi_k
    numerator = (phi_q.unsqueeze(-2) @ s).squeeze(-2)  # [B, H, Dv]
    denominator = (phi_q * z).sum(-1, keepdim=True)  # [B, H, 1]
    return numerator / (denominator + eps), (s, z)


class CausalLinearSelfAttention(nn.Module):
    """Multi-head causal linear self-attention with rotary positions.

    ``x -> (q, k, v) = W x + b``, split into heads, rotate ``q`` and ``k`` at their absolute
    positions, linear attention (feature map ``elu + 1`` or ReLU random features), merge heads,
    output projection.

    Parameters
    ----------
    n_embd
        Model width ``C``.
    n_head
        Number of heads ``H``; head size ``D = C / H`` (even).
    rotary_base
        Rotary frequency base.
    eps
        Normalizer epsilon.
    chunk_size
        Chunk length of the parallel form (see :func:`causal_linear_attention`).
    feature_map
        ``"elu"`` (``elu + 1``) or ``"favor_relu"`` (``relu(x W)``, ``W`` ``[D, M]`` shared by
        the heads, drawn once with :func:`orthogonal_random_features` from ``generator`` and
        stored as the persistent buffer ``feature_projection``; None for ``"elu"``).
    n_random_features
        ``M`` for ``"favor_relu"``.
    generator
        Source of ``W`` (the global RNG if None).
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        rotary_base: float = 10000.0,
        *,
        eps: float = DEFAULT_EPS,
        chunk_size: int = 64,
        feature_map: FeatureMapName = "elu",
        n_random_features: int = 32,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        if feature_map not in ("elu", "favor_relu"):
            raise ValueError(f"feature_map must be 'elu' or 'favor_relu', got {feature_map!r}")
        self.n_embd = n_embd
        self.n_head = n_head
        self.head_dim = n_embd // n_head
        self.eps = eps
        self.chunk_size = chunk_size
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.rotary = RotaryEmbedding(self.head_dim, base=rotary_base)
        self.feature_map = feature_map
        projection = None
        if feature_map == "favor_relu":
            projection = orthogonal_random_features(
                self.head_dim, n_random_features, generator=generator
            ).to(self.qkv.weight.device)
        self.feature_projection: torch.Tensor | None
        self.register_buffer("feature_projection", projection)  # None: not in the state dict
        self.feature_dim = self.head_dim if projection is None else n_random_features

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[..., 3C]`` -> three ``[..., H, D]``."""
        q, k, v = self.qkv(x).split(self.n_embd, dim=-1)
        shape = (*x.shape[:-1], self.n_head, self.head_dim)
        return q.view(shape), k.view(shape), v.view(shape)

    def forward(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Parallel form.

        Parameters
        ----------
        x
            ``[B, T, C]``; token ``t`` is at position ``t`` (right padding).
        attention_mask
            ``[B, T]``, true/1 for real tokens; padded keys contribute nothing.

        Returns
        -------
        torch.Tensor
            ``[B, T, C]``.
        """
        b, t, _ = x.shape
        q, k, v = (u.transpose(1, 2) for u in self._split(x))  # [B, H, T, D]
        dtype = _compute_dtype(q.dtype)
        if positions is None:  # token t at position t
            cos, sin = self.rotary.cos_sin(torch.arange(t, device=x.device), dtype=dtype)
        else:  # explicit [B, T] positions (e.g. a segment restarting its numbering)
            cos, sin = self.rotary.cos_sin(positions.to(x.device), dtype=dtype)
            cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # [B, 1, T, D]
        with torch.autocast(device_type=x.device.type, enabled=False):
            q = apply_rotary(q.to(dtype), cos, sin)
            k = apply_rotary(k.to(dtype), cos, sin)
        y = causal_linear_attention(
            q,
            k,
            v,
            attention_mask,
            eps=self.eps,
            chunk_size=self.chunk_size,
            projection=self.feature_projection,
        )  # [B, H, T, D]
        y = y.transpose(1, 2).reshape(b, t, self.n_embd)
        return self.proj(y)

    def step(
        self,
        x_t: torch.Tensor,
        position: int | torch.Tensor,
        state: LinearAttentionState,
        inplace: bool = False,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, LinearAttentionState]:
        """Recurrent form for one token per sequence.

        Parameters
        ----------
        x_t
            ``[B, C]``.
        position
            Absolute position of the token: an int shared by the batch or a LongTensor ``[B]``.
        state
            ``(S [B, H, M, D], z [B, H, M])`` from :meth:`init_state` or the previous step.
        inplace
            Update the state in place (see :func:`linear_attention_step`).
        rotary
            ``(cos, sin)`` from :meth:`step_rotary` for this position, computed once per step
            and shared by the layers (default: computed here).

        Returns
        -------
        y_t
            ``[B, C]``.
        new_state
            Updated state.
        """
        b = x_t.shape[0]
        qkv = self.qkv(x_t)  # [B, 3C]
        dtype = _compute_dtype(qkv.dtype, state[0].dtype)
        cos, sin = self.step_rotary(position, x_t.device, dtype) if rotary is None else rotary
        with torch.autocast(device_type=x_t.device.type, enabled=False):
            # Queries and keys are adjacent in the QKV output: rotate and map them together.
            qk = qkv[:, : 2 * self.n_embd].view(b, 2, self.n_head, self.head_dim).to(dtype)
            phi = _feature_map(apply_rotary(qk, cos, sin), self.feature_projection)  # [B,2,H,M]
            v = qkv[:, 2 * self.n_embd :].view(b, self.n_head, self.head_dim).to(dtype)
            y, state = _feature_step(phi[:, 0], phi[:, 1], v, state, self.eps, inplace)
        return self.proj(y.to(qkv.dtype).reshape(b, self.n_embd)), state

    def step_rotary(
        self, position: int | torch.Tensor, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotary ``cos, sin`` for one decoding step, shaped to broadcast over the stacked
        queries and keys ``[B, 2, H, D]``: ``[D]`` for an int position, ``[B, 1, 1, D]`` for
        per-sequence positions ``[B]``. Every layer of a model can share them (:meth:`step`'s
        ``rotary``)."""
        cos, sin = self.rotary.cos_sin(torch.as_tensor(position, device=device), dtype=dtype)
        if cos.dim() == 2:
            cos, sin = cos[:, None, None], sin[:, None, None]
        return cos, sin

    def init_state(
        self,
        batch_size: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> LinearAttentionState:
        """Zero state ``(S [B, H, M, D], z [B, H, M])`` for ``batch_size`` sequences (float32
        unless ``dtype`` is wider); ``M`` is :attr:`feature_dim`."""
        return init_linear_attention_state(
            batch_size, self.n_head, self.feature_dim, self.head_dim, device=device, dtype=dtype
        )
