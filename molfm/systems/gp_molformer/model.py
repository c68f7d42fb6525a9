"""GP-MoLFormer: a causal SMILES decoder with linear attention and rotary positions.

Ross et al., "GP-MoLFormer: a foundation model for molecular generation" (arXiv 2405.04912).
The model reads top to bottom::

    ids [B, T] -> token embedding -> dropout
               -> n_layer x Block:  x = x + drop(attn(LN(x)));  x = x + drop(ffn(LN(x)))
               -> LN -> LM head -> logits [B, T, V]

* attention: causal linear attention, feature map ``elu + 1``, rotary positions applied to
  queries/keys before the feature map (:mod:`.linear_attention`); no position
  embedding table;
* FFN: ``Linear(C, F) -> GELU -> Linear(F, C)`` with ``F = ffn_dim``. MoLFormer and
  GP-MoLFormer use ``F = C = 768`` (fast-transformers' ``feed_forward_dimensions`` set to the
  hidden size), not the usual ``4 C``; this is needed to reach the published 46.8M parameters;
* LM head (``lm_head="mlp"``, MoLFormer's language-model layer): ``Linear(C, C) -> GELU ->
  LayerNorm -> Linear(C, V)``; ``lm_head="linear"`` is a plain ``Linear(C, V)``. The output
  matrix is untied from the token embedding by default (as in MoLFormer); set
  ``tie_embeddings=True`` to share it;
* pre-LayerNorm blocks (GPT-2 style) with a final LayerNorm.

The published model differs in three ways that the config can express (defaults keep molfm's
choices): Performer ReLU random features, 32 per head (``feature_map="favor_relu"``; fixed
here, redrawn at every call in fast-transformers), post-LayerNorm blocks
(``norm_position="post"``: ``x = LN(x + drop(attn(x)))``, then ``LN(x + drop(ffn(x)))``, still
followed by the final LayerNorm) and a bias-free output layer (``lm_head_bias=False``).
``GPMoLFormerConfig.paper(published=True)`` sets all three.

Parameter count with the paper's settings (12 layers, 12 heads, C = F = 768, MoLFormer's
vocabulary of 2,362 tokens, MLP head, untied): **46,783,546** -- the 46.8M reported in the
paper (44,969,530 with a tied output matrix; 46,191,418 with a plain linear head; 2,362 fewer
without the output bias; the random projections are buffers, not parameters).
``GPMoLFormerConfig.small`` (4 layers, 4 heads, C = 256, F = 1024) has 3,225,856 + 513 V
parameters (3.24M with the ~30-token MOSES vocabulary).

Two forms of the same function: :meth:`GPMoLFormer.forward` processes whole sequences
(training, scoring); :meth:`GPMoLFormer.step` processes one token per sequence with a
constant-size state per layer (sampling, O(1) per token).

Checkpoints: ``save_pretrained(model, dir, extra={"tokenizer": tok.to_dict()})`` and
``from_pretrained(dir)`` from :mod:`molfm.hub`; see :func:`load_tokenizer`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from molfm.hub import from_pretrained, load_config, register_model, resolve_checkpoint
from molfm.systems.gp_molformer.linear_attention import (
    CausalLinearSelfAttention,
    FeatureMapName,
    LinearAttentionState,
)
from molfm.systems.gp_molformer.tokenizer import SmilesTokenizer

__all__ = [
    "GPMoLFormerConfig",
    "GPMoLFormer",
    "State",
    "PAPER_VOCAB_SIZE",
    "load_tokenizer",
    "load_smiles_model",
]

PAPER_VOCAB_SIZE = 2362
"""Vocabulary size of MoLFormer's tokenizer (also used by GP-MoLFormer)."""

State = list[LinearAttentionState]
"""Recurrent state: one ``(S [B, H, M, D], z [B, H, M])`` per layer (``M = D`` for ``elu``)."""


@dataclass
class GPMoLFormerConfig:
    """GP-MoLFormer hyper-parameters (JSON-serializable; stored in checkpoints).

    Attributes
    ----------
    vocab_size
        Tokenizer vocabulary size ``V`` (``SmilesTokenizer.vocab_size``).
    n_layer, n_head, n_embd
        Depth, heads and width ``C`` (paper: 12, 12, 768).
    ffn_dim
        Hidden size ``F`` of the feed-forward block; the paper uses ``F = C = 768``.
    dropout
        Dropout on embeddings, attention output and FFN output (paper: 0.1).
    max_length
        Longest sequence in tokens, ``<bos>`` and ``<eos>`` included (MoLFormer: 202); the
        default cap for sampling. Rotary positions themselves have no hard limit.
    rotary_base
        Rotary frequency base.
    pad_id, bos_id, eos_id
        Special token ids (``SmilesTokenizer``: 0, 1, 2).
    lm_head
        ``"mlp"`` (MoLFormer: Linear-GELU-LayerNorm-Linear) or ``"linear"``.
    tie_embeddings
        Share the output matrix of the head with the token embedding.
    attn_chunk_size
        Chunk length of the parallel linear attention (memory/speed trade-off only; the
        result does not depend on it beyond rounding).
    feature_map
        Linear-attention feature map: ``"elu"`` (``elu + 1``, deterministic) or
        ``"favor_relu"`` (the published model's Performer ReLU random features,
        ``relu(x W)`` with an orthogonal random ``W`` ``[D, n_random_features]`` per layer;
        :mod:`.linear_attention`).
    n_random_features
        Random features per head for ``"favor_relu"`` (published: 32).
    random_features_seed
        Seed of the generator the ``"favor_relu"`` projections are drawn from (layer by
        layer) when the model is built; they are buffers saved in checkpoints.
    norm_position
        ``"pre"`` (GPT-2) or ``"post"`` (published: fast-transformers' encoder layer) LayerNorm.
    lm_head_bias
        Bias in the output layer of the head (the published head has none).
    """

    vocab_size: int
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    ffn_dim: int = 768
    dropout: float = 0.1
    max_length: int = 202
    rotary_base: float = 10000.0
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    lm_head: Literal["mlp", "linear"] = "mlp"
    tie_embeddings: bool = False
    attn_chunk_size: int = 64
    feature_map: FeatureMapName = "elu"
    n_random_features: int = 32
    random_features_seed: int = 0
    norm_position: Literal["pre", "post"] = "pre"
    lm_head_bias: bool = True

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head or (self.n_embd // self.n_head) % 2:
            raise ValueError(
                f"n_embd={self.n_embd} must split into n_head={self.n_head} heads of even size"
            )
        if self.lm_head not in ("mlp", "linear"):
            raise ValueError(f"lm_head must be 'mlp' or 'linear', got {self.lm_head!r}")
        if self.feature_map not in ("elu", "favor_relu"):
            raise ValueError(f"feature_map must be 'elu' or 'favor_relu', got {self.feature_map!r}")
        if self.n_random_features < 1:
            raise ValueError(f"n_random_features must be >= 1, got {self.n_random_features}")
        if self.norm_position not in ("pre", "post"):
            raise ValueError(f"norm_position must be 'pre' or 'post', got {self.norm_position!r}")
        for name in ("pad_id", "bos_id", "eos_id"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                raise ValueError(
                    f"{name}={getattr(self, name)} outside vocab_size={self.vocab_size}"
                )

    @classmethod
    def paper(
        cls, vocab_size: int = PAPER_VOCAB_SIZE, *, published: bool = False, **overrides: Any
    ) -> GPMoLFormerConfig:
        """The published model's size: 12 layers, 12 heads, hidden 768, FFN 768 (46.8M
        parameters with the 2,362-token vocabulary). ``published=True`` also takes its
        ReLU random features, post-LN blocks and bias-free output layer."""
        if published:
            published_settings = dict(
                feature_map="favor_relu", norm_position="post", lm_head_bias=False
            )
            overrides = {**published_settings, **overrides}
        return cls(vocab_size=vocab_size, **overrides)

    @classmethod
    def small(cls, vocab_size: int, **overrides: Any) -> GPMoLFormerConfig:
        """A CPU-sized model: 4 layers, 4 heads, hidden 256, FFN 1024 (3.23M + 513 V)."""
        base: dict[str, Any] = dict(n_layer=4, n_head=4, n_embd=256, ffn_dim=1024)
        return cls(vocab_size=vocab_size, **{**base, **overrides})


class Block(nn.Module):
    """Transformer block: linear self-attention + GELU feed-forward, pre- or post-LayerNorm.

    ``generator`` draws the random feature projection (``feature_map="favor_relu"``)."""

    def __init__(self, config: GPMoLFormerConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.post_norm = config.norm_position == "post"
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalLinearSelfAttention(
            config.n_embd,
            config.n_head,
            config.rotary_base,
            chunk_size=config.attn_chunk_size,
            feature_map=config.feature_map,
            n_random_features=config.n_random_features,
            generator=generator,
        )
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.ffn = nn.Sequential(
            nn.Linear(config.n_embd, config.ffn_dim),
            nn.GELU(),
            nn.Linear(config.ffn_dim, config.n_embd),
        )
        self.drop = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x`` ``[B, T, C]``, ``attention_mask`` ``[B, T]`` or None -> ``[B, T, C]``."""
        if self.post_norm:
            x = self.ln_1(x + self.drop(self.attn(x, attention_mask, positions)))
            return self.ln_2(x + self.drop(self.ffn(x)))
        x = x + self.drop(self.attn(self.ln_1(x), attention_mask, positions))
        return x + self.drop(self.ffn(self.ln_2(x)))

    def step(
        self,
        x: torch.Tensor,
        position: int | torch.Tensor,
        state: LinearAttentionState,
        inplace: bool = False,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, LinearAttentionState]:
        """``x`` ``[B, C]`` at ``position`` -> ``([B, C], new state)``; ``rotary`` as in
        :meth:`CausalLinearSelfAttention.step`."""
        if self.post_norm:
            y, state = self.attn.step(x, position, state, inplace=inplace, rotary=rotary)
            x = self.ln_1(x + self.drop(y))
            return self.ln_2(x + self.drop(self.ffn(x))), state
        y, state = self.attn.step(self.ln_1(x), position, state, inplace=inplace, rotary=rotary)
        x = x + self.drop(y)
        return x + self.drop(self.ffn(self.ln_2(x))), state


@register_model("gp-molformer")
class GPMoLFormer(nn.Module):
    """GP-MoLFormer causal language model over SMILES tokens (see the module docstring)."""

    config_class = GPMoLFormerConfig

    def __init__(self, config: GPMoLFormerConfig) -> None:
        super().__init__()
        self.config = config
        c = config.n_embd
        self.tok_emb = nn.Embedding(config.vocab_size, c)
        self.drop = nn.Dropout(config.dropout)
        generator = None
        if config.feature_map != "elu":  # a private stream: the global RNG is left alone
            generator = torch.Generator().manual_seed(config.random_features_seed)
        self.blocks = nn.ModuleList(Block(config, generator) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(c)
        if config.lm_head == "mlp":
            self.head_transform: nn.Module = nn.Sequential(
                nn.Linear(c, c), nn.GELU(), nn.LayerNorm(c)
            )
        else:
            self.head_transform = nn.Identity()
        self.lm_head = nn.Linear(c, config.vocab_size, bias=config.lm_head_bias)
        self.reset_parameters()
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight

    def reset_parameters(self) -> None:
        """GPT-2 initialization: N(0, 0.02) weights, zero biases, residual output
        projections scaled by ``1 / sqrt(2 n_layer)``."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, std=residual_std)
            nn.init.normal_(block.ffn[2].weight, std=residual_std)

    def num_parameters(self) -> int:
        """Number of distinct parameters (a tied matrix is counted once)."""
        return sum(p.numel() for p in self.parameters())

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.head_transform(self.ln_f(x)))

    def forward(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        prefix_embeds: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Parallel form.

        Parameters
        ----------
        ids
            LongTensor ``[B, T]``, right-padded, usually ``<bos> tokens <eos> <pad>...``;
            token ``t`` sits at position ``t``.
        attention_mask
            ``[B, T]``, true/1 for real tokens, or None (no padding). Padded positions
            contribute nothing to other positions; their own logits are meaningless.

        prefix_embeds
            Optional ``[B, P, C]`` (or ``[P, C]``, shared) vectors placed before the tokens,
            e.g. a pair-tuning soft prompt; they occupy positions ``0..P-1`` and shift the
            tokens to ``P..P+T-1``. The mask and the returned logits cover the tokens only.
        positions
            Optional LongTensor ``[B, T]``: the rotary position of each token (the prefix keeps
            ``0..P-1``). Default: consecutive positions after the prefix. Linear attention only
            sums over earlier tokens, so positions may repeat (pair-tuning restarts the target's
            numbering so it sits where molecules sat in pretraining).

        Returns
        -------
        torch.Tensor
            Logits ``[B, T, V]``; ``logits[:, t]`` predicts token ``t + 1``.
        """
        x = self.tok_emb(ids)
        if prefix_embeds is not None:
            prefix = prefix_embeds.to(x.dtype)
            if prefix.dim() == 2:
                prefix = prefix.unsqueeze(0).expand(x.shape[0], -1, -1)
            n_prefix = prefix.shape[1]
            x = torch.cat([prefix, x], dim=1)
            if attention_mask is not None:
                ones = attention_mask.new_ones(attention_mask.shape[0], n_prefix)
                attention_mask = torch.cat([ones, attention_mask], dim=1)
            if positions is not None:
                prefix_pos = torch.arange(n_prefix, device=positions.device)
                positions = torch.cat([prefix_pos.expand(x.shape[0], -1), positions], dim=1)
            x = self.drop(x)
            for block in self.blocks:
                x = block(x, attention_mask, positions)
            return self._logits(x[:, n_prefix:])
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, attention_mask, positions)
        return self._logits(x)

    def hidden_states(
        self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, T, C]`` last hidden states after the final LayerNorm (what the LM head
        reads), for right-padded ``ids`` ``[B, T]``."""
        x = self.drop(self.tok_emb(ids))
        for block in self.blocks:
            x = block(x, attention_mask, None)
        return self.ln_f(x)

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """Zero recurrent state for ``batch_size`` sequences, one ``(S, z)`` per layer.

        ``S`` is ``[B, H, M, D]`` and ``z`` ``[B, H, M]`` (``M`` the feature size), in float32 (float64 for a float64
        model), whatever the model's dtype.
        """
        if device is None:
            device = self.tok_emb.weight.device
        dtype = torch.promote_types(self.tok_emb.weight.dtype, torch.float32)
        return [blk.attn.init_state(batch_size, device=device, dtype=dtype) for blk in self.blocks]

    def step(
        self,
        token_ids: torch.Tensor,
        position: int | torch.Tensor,
        state: State,
        inplace: bool = False,
    ) -> tuple[torch.Tensor, State]:
        """Recurrent form: feed one token per sequence, O(1) in the sequence length.

        Parameters
        ----------
        token_ids
            LongTensor ``[B]``.
        position
            Position of these tokens (``<bos>`` is at 0): an int, or a LongTensor ``[B]``.
        state
            From :meth:`init_state` or the previous step (not modified in place unless
            ``inplace``).
        inplace
            Update the state tensors in place: faster sampling, for a state the caller owns
            (not one shared through ``expand`` by several sequences).

        Returns
        -------
        logits
            ``[B, V]``, equal to ``forward(...)[:, position]`` for the same prefix.
        new_state
            The state after this token.
        """
        return self.embed_step(self.tok_emb(token_ids), position, state, inplace=inplace)

    def embed_step(
        self,
        embeds: torch.Tensor,
        position: int | torch.Tensor,
        state: State,
        inplace: bool = False,
    ) -> tuple[torch.Tensor, State]:
        """:meth:`step` for an input vector ``[B, C]`` instead of a token (soft prompts)."""
        if len(state) != len(self.blocks):
            raise ValueError(f"state has {len(state)} layers, model has {len(self.blocks)}")
        x = self.drop(embeds.to(self.tok_emb.weight.dtype))
        # Every layer rotates at the same position: one cos/sin per step, not one per layer.
        compute_dtype = torch.promote_types(
            torch.promote_types(x.dtype, torch.float32), state[0][0].dtype
        )
        rotary = self.blocks[0].attn.step_rotary(position, x.device, compute_dtype)
        new_state: State = []
        for block, layer_state in zip(self.blocks, state, strict=True):
            x, layer_state = block.step(x, position, layer_state, inplace=inplace, rotary=rotary)
            new_state.append(layer_state)
        return self._logits(x), new_state

    @staticmethod
    def lm_loss(
        logits: torch.Tensor, ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean next-token cross-entropy over real target tokens.

        Parameters
        ----------
        logits
            ``[B, T, V]`` from :meth:`forward`.
        ids
            ``[B, T]`` the input ids; targets are ``ids[:, 1:]``.
        attention_mask
            ``[B, T]``; targets at masked positions are ignored. If None, every target counts.

        Returns
        -------
        torch.Tensor
            Scalar loss (float32 even for bf16 logits).
        """
        targets = ids[:, 1:]
        logits = logits[:, :-1].float()
        if attention_mask is not None:
            targets = targets.masked_fill(~attention_mask[:, 1:].bool(), -100)
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100
        )


def load_tokenizer(directory: str | os.PathLike) -> SmilesTokenizer:
    """The :class:`SmilesTokenizer` stored under ``"tokenizer"`` in a checkpoint's config."""
    config = load_config(directory)
    if "tokenizer" not in config:
        raise KeyError(f"checkpoint {directory} has no tokenizer in its config")
    return SmilesTokenizer.from_dict(config["tokenizer"])


def load_smiles_model(
    name_or_path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[GPMoLFormer, SmilesTokenizer]:
    """Load a causal SMILES model and its tokenizer from a shipped name or checkpoint directory.

    Raises
    ------
    FileNotFoundError
        ``name_or_path`` is neither a shipped model nor a checkpoint directory.
    ValueError
        The checkpoint holds a model without a tokenizer (not a SMILES model).
    """
    path = resolve_checkpoint(name_or_path)
    config = load_config(path)
    if "tokenizer" not in config:
        raise ValueError(f"{path} holds a {config.get('model_type')} model without a tokenizer")
    model = from_pretrained(path, map_location=device)
    return model, SmilesTokenizer.from_dict(config["tokenizer"])
