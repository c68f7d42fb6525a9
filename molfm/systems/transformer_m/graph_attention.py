"""Multi-head self-attention with an additive per-head pair bias, in a pre-LN or post-LN block.

Graph transformers (Graphormer, Transformer-M) inject structure as a bias ``[B, H, N, N]``
added to the attention logits. The attention itself is torch's
``scaled_dot_product_attention`` with that bias as a float mask (padding keys at -inf).
The official Transformer-M blocks are post-LN with FFN-activation dropout and drop path
(stochastic depth); molfm's small model uses pre-LN blocks (``norm``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BiasedSelfAttention", "BiasedTransformerLayer", "DropPath"]


class BiasedSelfAttention(nn.Module):
    """``softmax(Q K^T / sqrt(d) + bias) V`` over all tokens, one bias per head and pair."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, bias: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, N, C]``, ``bias`` ``[B, H, N, N]``, ``key_mask`` bool ``[B, N]`` (true =
        attend) -> ``[B, N, C]``."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, c // self.num_heads).unbind(2)
        mask = bias.masked_fill(~key_mask[:, None, None, :], float("-inf")).to(q.dtype)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(out.transpose(1, 2).reshape(b, n, c))


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a residual branch for a whole sample with
    probability ``p`` and scale the kept ones by ``1 / (1 - p)``; the identity in eval."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, ...]`` -> same shape."""
        if not self.training or self.p == 0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class BiasedTransformerLayer(nn.Module):
    """One block. ``pre``: ``x + attn(LN(x), bias)``, then ``x + FFN(LN(x))``; ``post``:
    ``LN(x + attn(x, bias))``, then ``LN(x + FFN(x))``. FFN: linear, GELU, activation dropout,
    linear. ``dropout`` acts on each branch's output, ``drop_path`` on the whole branch."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        *,
        norm: str = "pre",
        activation_dropout: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if norm not in ("pre", "post"):
            raise ValueError(f"norm must be 'pre' or 'post', got {norm!r}")
        self.pre = norm == "pre"
        self.norm1 = nn.LayerNorm(dim)
        self.attn = BiasedSelfAttention(dim, num_heads, attn_dropout)
        self.norm2 = nn.LayerNorm(dim)
        # the activation and its dropout share index 1 (no parameters), so the linear layers
        # keep the state-dict names (ffn.0, ffn.2) of checkpoints saved before the dropout
        activation = nn.Sequential(nn.GELU(), nn.Dropout(activation_dropout))
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), activation, nn.Linear(ffn_dim, dim))
        self.drop = nn.Dropout(dropout)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, N, C]``, ``bias`` ``[B, H, N, N]``, ``key_mask`` bool ``[B, N]``."""
        if self.pre:
            x = x + self.drop_path(self.drop(self.attn(self.norm1(x), bias, key_mask)))
            return x + self.drop_path(self.drop(self.ffn(self.norm2(x))))
        x = self.norm1(x + self.drop_path(self.drop(self.attn(x, bias, key_mask))))
        return self.norm2(x + self.drop_path(self.drop(self.ffn(x))))
