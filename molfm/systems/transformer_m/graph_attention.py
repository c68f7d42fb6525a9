"""Multi-head self-attention with an additive per-head pair bias, in a pre-LN block.

Graph transformers (Graphormer, Transformer-M) inject structure as a bias ``[B, H, N, N]``
added to the attention logits. The attention itself is torch's
``scaled_dot_product_attention`` with that bias as a float mask (padding keys at -inf).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BiasedSelfAttention", "BiasedTransformerLayer"]


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


class BiasedTransformerLayer(nn.Module):
    """Pre-LN block: ``x + attn(LN(x), bias)``, then ``x + FFN(LN(x))`` (GELU)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = BiasedSelfAttention(dim, num_heads, attn_dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), bias, key_mask))
        return x + self.drop(self.ffn(self.norm2(x)))
