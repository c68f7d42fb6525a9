"""MolCA's run configs: each field is one flag of ``molfm train molca``, ``molfm name``,
``molfm caption`` or ``molfm retrieve`` (declared once, :mod:`molfm.engine.options`).

Pure Python (no torch), so the CLI can build its flags without loading a model. The model
configs (:class:`~.model.MolCAConfig`, :class:`~.stage1.Stage1Config`,
:class:`~.qformer.QFormerConfig`) stay beside their models: they rebuild a checkpoint, not a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from molfm.engine.options import (
    ON_INVALID,
    HardwareOptions,
    RunOptions,
    cache_dir_option,
    fold_data_path,
    option,
)
from molfm.options import StreamOptions
from molfm.systems.molca import NAMING_MODEL, RETRIEVAL_MODEL

__all__ = [
    "STAGES",
    "INPUT_MODES",
    "LM_TUNING_MODES",
    "MolCATrainConfig",
    "NameConfig",
    "CaptionConfig",
    "RetrieveConfig",
]

STAGES = ("1", "2", "finetune")
INPUT_MODES = ("1d", "2d", "1d2d")
LM_TUNING_MODES = ("lora", "full", "frozen")
# lora.LORA_TARGET_SETS, here without importing torch
LORA_TARGET_SETS = {
    "all": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "attention": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "qv": ("q_proj", "v_proj"),
}
_SMILES_COLUMN = "Column of the CSV that holds SMILES."


@dataclass(kw_only=True)
class MolCATrainConfig(RunOptions):
    """Everything a MolCA run depends on (saved as ``train_config.json``).

    The size flags (``graph_layers``, ``graph_dim``, ``qformer_layers``, ``num_query_tokens``)
    are folded into ``graph_overrides`` and ``qformer``, which Python callers may also fill
    directly; ``stage1_options`` holds other :class:`~.stage1.Stage1Config` fields (e.g.
    ``text_pooling``).
    """

    stage: str = option(
        "finetune",
        choices=STAGES,
        required=True,
        flags=("--stage",),
        help="1 (Q-Former), 2 (frozen LM) or finetune.",
    )
    data: str | None = option(
        None, help="A registered data set: pubchem-names (IUPAC names, synonyms)."
    )
    data_path: str | None = option(
        None,
        path="file",
        help="Your SMILES + text file: ChEBI-20 TSV, PubChem324k-style CSV, any CSV/TSV.",
    )
    task: str | None = option(
        None,
        help="iupac (default with --data), caption (default with --data-path), names (stage 1).",
    )
    smiles_column: str | None = option(None, help="SMILES column.")
    text_column: str | None = option(None, help="Text column.")
    init: str | None = option(
        None, help="Stage 2: a stage-1 run or model; finetune: a stage-1 or stage-2 MolCA run."
    )
    graph_encoder: str = option(
        "gine", help="gine, gps, or a pretrained encoder (name or directory)."
    )
    graph_layers: int | None = option(None, min=1, help="Layers of a fresh encoder.")
    graph_dim: int | None = option(None, min=1, help="Width of a fresh encoder.")
    graph_overrides: dict[str, Any] = option(
        default_factory=dict, cli=False, help="A fresh encoder's config fields (sizes)."
    )
    qformer_layers: int | None = option(
        None, min=1, help="Q-Former layers (MiniLM's first N; default 6)."
    )
    num_query_tokens: int | None = option(None, min=1, help="Q-Former queries (8).")
    graph_token: bool = option(
        True,
        help="Prepend the encoder's pooled graph embedding to the nodes the Q-Former reads, "
        "as MolCA's encoder does (--no-graph-token: the nodes alone).",
    )
    qformer: dict[str, Any] = option(
        default_factory=dict, cli=False, help="QFormerConfig fields (the flags above merged in)."
    )
    lm: str = option("smollm2", help="smollm2 or a local HF causal-LM folder.")
    input_mode: str = option(
        "1d2d", choices=INPUT_MODES, help="SMILES only (1d), graph only (2d), or both."
    )
    lm_tuning: str = option(
        "lora",
        choices=LM_TUNING_MODES,
        help="How the LM trains in finetune (stage 2: frozen).",
    )
    lora_r: int = option(16, min=1, max=64, help="LoRA rank, 1-64 (alpha = 2r).")
    lora_targets: str = option(
        "all",
        choices=tuple(LORA_TARGET_SETS),
        help="LoRA on every projection (all), attention only, or query and value (qv).",
    )
    lora_dropout: float = option(0.0, min=0.0, max=0.9, help="Dropout on the LoRA input.")
    bucket_by_length: bool = option(
        True,
        help="Batch training pairs of similar token length (less padding); "
        "--no-bucket-by-length draws batches at random.",
    )
    fuse_projections: bool = option(
        True,
        help="One matrix product for the frozen q/k/v and gate/up projections of each LM "
        "layer (fewer launches; --no-fuse-projections: one each).",
    )
    compile: bool = option(
        False,
        help="torch.compile each LM and Q-Former layer and the graph encoder (slow first "
        "steps; for long GPU runs).",
    )
    # stage 1 (Stage1Config fields)
    matching: bool = option(
        True, help="Stage 1: train the matching head (needed by --rerank at retrieval)."
    )
    captioning: bool = option(True, help="Stage 1: train Q-Former captioning.")
    tune_word_embeddings: bool = option(
        True,
        help="Stage 1: train the Q-Former's word embeddings (--no-tune-word-embeddings keeps "
        "MiniLM's, frozen and out of the checkpoint; use it with --no-captioning).",
    )
    stage1_options: dict[str, Any] = option(
        default_factory=dict, cli=False, help="Other Stage1Config fields (e.g. text_pooling)."
    )
    split_sizes: list[float] = option(
        default_factory=lambda: [0.8, 0.1, 0.1],
        cli=False,
        help="Train/val/test fractions of a file's scaffold split.",
    )
    limit_train: int | None = option(
        None, min=1, help="Train on a seeded subset of N training molecules."
    )
    opsin_filter: bool = option(
        False,
        help="pubchem-names iupac: train only on names OPSIN maps back to their molecule "
        "(verdicts cached; needs Java the first time).",
    )
    add_small_table: bool = option(
        False,
        help="pubchem-names iupac: add the wheel's 'pubchem small' table to training "
        "(molecules in no split, by InChIKey).",
    )
    synonyms_per_molecule: int = option(
        0,
        min=0,
        help="pubchem-names iupac: add up to N OPSIN-verified synonyms per training molecule.",
    )
    limit_val: int | None = option(
        None, min=1, help="Validate on the first N validation pairs only."
    )
    batch_size: int = option(8, min=1, help="Rows per batch.")
    lr: float = option(1e-4, positive=True, help="Peak learning rate (> 0).")
    weight_decay: float = option(0.05, min=0.0, help="AdamW weight decay.")
    warmup_steps: int = option(100, min=0, help="Steps of linear learning-rate warm-up.")
    max_steps: int = option(1000, min=1, help="Optimizer steps in all.")
    val_every_n_steps: int | None = option(
        None, min=1, help="Validate and checkpoint every N steps (default: once per epoch)."
    )
    eval_limit: int = option(64, min=0, help="Test molecules to evaluate at the end.")
    num_beams: int = option(5, min=1, help="Beams for the test-set generation.")
    max_new_tokens: int = option(64, min=1, help="Longest generated text, in tokens.")
    max_locant_run: int = option(
        0, min=0, help="Test decoding: end a beam after N locant tokens in a row (0: off)."
    )
    max_repeats: int = option(
        0, min=0, help="Test decoding: end a beam that repeats a unit of <= 8 tokens N+1 times."
    )
    max_tokens_per_atom: float = option(
        0.0, min=0, help="Test decoding: cap each text at X * heavy atoms + 16 tokens (0: off)."
    )
    soft_cap_per_atom: float = option(
        0.0,
        min=0,
        help="Test decoding: length penalty past X * heavy atoms + 16 tokens (0: off).",
    )
    soft_cap_rate: float = option(
        1.0, positive=True, help="Test decoding: nats per token past the soft cap, growing."
    )
    max_target_tokens: int = option(
        128, min=1, help="Training: target tokens kept per pair (longer names are cut)."
    )
    length_penalty: float = option(1.0, help="Test decoding: beam length penalty.")
    rerank: int = option(
        0, min=0, help="Stage 1 evaluation: also re-rank each query's best N (0: skip)."
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        fold_data_path(self)  # a data set's name or a file's path; load_splits tells them apart
        graph = {"num_layers": self.graph_layers, "dim": self.graph_dim}
        qformer = {"num_layers": self.qformer_layers, "num_query_tokens": self.num_query_tokens}
        qformer["graph_token"] = self.graph_token
        self.graph_overrides = {
            **self.graph_overrides,
            **{k: v for k, v in graph.items() if v is not None},
        }
        self.qformer = {**self.qformer, **{k: v for k, v in qformer.items() if v is not None}}
        declared = {"matching", "captioning", "tune_word_embeddings"} & set(self.stage1_options)
        if declared:
            raise ValueError(
                f"stage1_options {sorted(declared)}: set them as fields of the config instead"
            )


@dataclass(kw_only=True)
class _Inference(HardwareOptions):
    """What ``molfm name``, ``caption`` and ``retrieve`` share: the input CSV, the model, one
    device; they run in float32."""

    data_path: str = option(path="file", flags=("--data-path",), help="A CSV of SMILES.")
    output: str = option(path="file", flags=("--output", "-o"), help="The CSV to write.")
    model: str | None = option(
        None, flags=("--model",), help="A MolCA run or its model/ directory."
    )
    smiles_column: str = option("smiles", help=_SMILES_COLUMN)
    on_invalid: str = option(
        "error",
        choices=ON_INVALID,
        help="A bad row stops the run (error) or is skipped and listed in invalid.csv (skip).",
    )
    batch_size: int = option(16, min=1, help="Rows per batch.")
    precision: str = option("32-true", cli=False, help="Inference runs in float32.")
    cache_dir: str | None = cache_dir_option()  # where SmolLM2 and MiniLM are fetched to
    progress: bool = option(True, help="Show a progress bar.")


@dataclass(kw_only=True)
class _Decoding(_Inference, StreamOptions):
    """Beam-search settings of ``molfm name`` and ``caption`` (the defaults keep the shipped
    model's outputs)."""

    length_penalty: float = option(
        1.0, help="Beam score = log-probability / length**this (> 1 favours longer texts)."
    )
    no_repeat_ngram_size: int = option(0, min=0, help="Forbid repeating n-grams (0: off).")
    max_locant_run: int = option(
        0,
        min=0,
        help="End a beam after this many locant tokens (digits, commas, hyphens) in a row (0: off).",
    )
    max_repeats: int = option(
        0,
        min=0,
        help="End a beam once a unit of up to 8 tokens repeats more than N times (0: off).",
    )
    max_tokens_per_atom: float = option(
        0.0,
        min=0,
        help="Cap each text at X * heavy atoms + 16 tokens (0: off; 6 fits PubChem's names).",
    )
    soft_cap_per_atom: float = option(
        0.0,
        min=0,
        help="Length penalty: past X * heavy atoms + 16 tokens, each token but the end costs "
        "more (0: off; 3: 0.5% of PubChem's training names and 2% of its test names run past it).",
    )
    soft_cap_rate: float = option(
        1.0, positive=True, help="Nats the k-th token past the soft cap costs, times k."
    )
    merge_lora: bool = option(
        False, help="Fold the LoRA adapters into the LM first (faster; rounding may differ)."
    )


@dataclass(kw_only=True)
class NameConfig(_Decoding):
    """``molfm name``: IUPAC names for every molecule of a CSV, in input order."""

    output: str = option(
        "names.csv", path="file", flags=("--output", "-o"), help="The CSV of names to write."
    )
    model: str = option(
        NAMING_MODEL,
        flags=("--model",),
        help="A shipped MolCA naming model or a run's model/ directory.",
    )
    verify: bool = option(
        False, help="Check each beam with OPSIN; keep the first that is the input structure."
    )
    num_beams: int = option(5, min=1, help="Beams (all are checked with --verify).")
    max_new_tokens: int = option(96, min=1, help="Longest name, in tokens.")


@dataclass(kw_only=True)
class CaptionConfig(_Decoding):
    """``molfm caption``: a text description of every molecule of a CSV, in input order."""

    output: str = option(
        "captions.csv",
        path="file",
        flags=("--output", "-o"),
        help="The CSV of captions to write.",
    )
    model: str | None = option(
        None, flags=("--model",), help="A MolCA captioning run's model/ directory."
    )
    num_beams: int = option(5, min=1, help="Beams.")
    max_new_tokens: int = option(128, min=1, help="Longest caption, in tokens.")


@dataclass(kw_only=True)
class RetrieveConfig(_Inference):
    """``molfm retrieve``: text -> molecule (``text``) or molecule -> text (``smiles``)."""

    data_path: str = option(
        path="file",
        flags=("--data-path",),
        help="Candidates: molecules (CSV) or texts (CSV).",
    )
    text: list[str] | None = option(
        None, flags=("--text",), help="Query text(s): find molecules (repeat for several)."
    )
    smiles: list[str] | None = option(
        None, flags=("--smiles",), help="Query molecule(s): find texts (repeat for several)."
    )
    model: str = option(
        RETRIEVAL_MODEL,
        flags=("--model",),
        help="A MolCA stage-1 model: a shipped name, a run or its model/ directory.",
    )
    output: str = option(
        "hits.csv", path="file", flags=("--output", "-o"), help="The CSV of hits to write."
    )
    top_k: int = option(10, flags=("--top-k",), min=1, help="Hits per query.")
    rerank: int = option(
        0,
        min=0,
        help="Re-rank each query's best N with the matching head (0: off; on the shipped "
        "model it lowers accuracy, docs/molca.md).",
    )
    text_column: str = option("text", help="Column of the texts.")
    batch_size: int = option(64, min=1, help="Rows per batch.")
