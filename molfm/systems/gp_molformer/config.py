"""GP-MoLFormer's run configs: each field is one flag of its command (declared once,
:mod:`molfm.engine.options`): ``molfm train gp-molformer`` (:class:`LMTrainConfig`), ``molfm
train gp-molformer-analogs`` (:class:`AnalogTrainConfig`), ``molfm generate``
(:class:`GenerateConfig`), ``molfm decorate`` (:class:`DecorateConfig`) and ``molfm optimize``
(:class:`PairTuningConfig`); the three that sample share :class:`SamplingOptions`.

Pure Python (no torch), so the CLI can build its flags without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from molfm.engine.options import HardwareOptions, RunOptions, fold_data_path, option
from molfm.options import WorkerOptions

__all__ = [
    "DEFAULT_SMILES_MODEL",
    "DEFAULT_PAIR_TUNING_MODEL",
    "MODEL_SIZES",
    "LMTrainConfig",
    "AnalogTrainConfig",
    "SamplingOptions",
    "GenerateConfig",
    "DecorateConfig",
    "PairTuningConfig",
]

DEFAULT_SMILES_MODEL = "gp-molformer-small-moses"
# The default base for pair-tuning (molfm optimize): the default model after analog pretraining
# (molfm.systems.gp_molformer.analogs), which writes an analog after a molecule.
DEFAULT_PAIR_TUNING_MODEL = "gp-molformer-small-moses-analogs"
MODEL_SIZES = ("n_layer", "n_head", "n_embd", "ffn_dim", "dropout")
_WORKERS = "DataLoader worker processes (0 = batches are built in the main process)."
_RESUMED = "A run already there is resumed from checkpoints/last.ckpt."


@dataclass(kw_only=True)
class _Optimizer:
    """AdamW with linear warm-up, then cosine decay (:mod:`molfm.engine.optim`)."""

    lr: float = option(3e-4, positive=True, help="The peak learning rate (> 0).")
    weight_decay: float = option(0.01, min=0.0, help="AdamW weight decay.")


@dataclass(kw_only=True)
class LMTrainConfig(_Optimizer, RunOptions):
    """Everything a GP-MoLFormer pretraining run depends on (saved with the run)."""

    output_dir: str = option(
        path="dir",
        help="The run directory: checkpoints, logs, the vocabulary and the exported model/. "
        + _RESUMED,
    )
    data: str | None = option(
        None,
        help="A registered data set to train on (see `molfm data list`); moses if neither "
        "--data nor --data-path is given.",
    )
    data_path: str | None = option(
        None,
        path="file",
        help="A CSV (or TSV) of SMILES of your own to train on, instead of --data.",
    )
    smiles_column: str = option("smiles", help="Column of the CSV that holds SMILES.")
    val_data: str | None = option(
        None,
        help="A registered data set to validate on. By default moses validates on its test "
        "subset, and other data on a held-out slice of the training data.",
    )
    val_data_path: str | None = option(
        None, path="file", help="A CSV of SMILES of your own to validate on, instead of --val-data."
    )
    preset: str = option(
        "small",
        choices=("small", "paper"),
        help="The model size: small (CPU-sized) or paper (the published 46.8M parameters).",
    )
    n_layer: int | None = option(None, min=1, help="Number of layers (overrides the preset).")
    n_head: int | None = option(None, min=1, help="Attention heads (overrides the preset).")
    n_embd: int | None = option(None, min=2, help="Model width (overrides the preset).")
    ffn_dim: int | None = option(
        None, min=1, help="Feed-forward hidden size (overrides the preset)."
    )
    dropout: float | None = option(
        None, min=0.0, max=1.0, help="Dropout rate (overrides the preset)."
    )
    model_overrides: dict[str, Any] = option(
        default_factory=dict,
        cli=False,
        help="Model config fields over the preset (the size flags above are merged in).",
    )
    max_length: int = option(
        128, min=3, help="The longest token sequence, <bos> and <eos> included."
    )
    batch_size: int = option(128, min=1, help="Rows per batch.")
    warmup_steps: int = option(500, min=0, help="Steps of linear learning-rate warm-up.")
    max_steps: int = option(
        10_000, min=1, help="Optimizer steps in all (raise it to extend a finished run)."
    )
    val_size: int = option(5_000, min=1, help="Validation molecules.")
    val_every_n_steps: int = option(
        1_000, min=1, help="Validate and save a checkpoint every N steps."
    )
    limit_train: int | None = option(
        None, min=1, help="Train on the first N training molecules only."
    )
    num_workers: int = option(0, flags=("--num-workers", "-j"), min=0, help=_WORKERS)

    def __post_init__(self) -> None:
        super().__post_init__()
        fold_data_path(self, default="moses")  # the saved config names the data set used
        fold_data_path(self, "val_data", "val_data_path")
        sizes = {k: getattr(self, k) for k in MODEL_SIZES if getattr(self, k) is not None}
        self.model_overrides = {**self.model_overrides, **sizes}


@dataclass(kw_only=True)
class AnalogTrainConfig(_Optimizer, RunOptions):
    """Everything an analog-pretraining run depends on (saved as ``train_config.json``)."""

    output_dir: str = option(
        path="dir",
        help="The run directory: the mined pairs, checkpoints, logs and the exported model/. "
        + _RESUMED,
    )
    base_model: str = option(
        DEFAULT_SMILES_MODEL,
        flags=("--init", "--base-model"),
        help="The pretrained GP-MoLFormer to continue training (a shipped name or a checkpoint "
        "directory).",
    )
    data: str | None = option(
        None,
        help="A registered data set to mine pairs from (see `molfm data list`); the moses "
        "train subset if neither --data nor --data-path is given.",
    )
    data_path: str | None = option(
        None,
        path="file",
        help="A CSV (or TSV) of SMILES of your own to mine pairs from, instead of --data.",
    )
    smiles_column: str = option("smiles", help="Column of the CSV that holds SMILES.")
    n_molecules: int = option(20_000, min=1, help="Molecules the training pairs are mined from.")
    n_val_molecules: int = option(
        2_000, min=0, help="Other molecules the validation pairs are mined from."
    )
    min_similarity: float = option(
        0.4, min=0.0, max=1.0, help="The least Tanimoto similarity (Morgan r=2) of a pair."
    )
    max_pairs_per_source: int = option(2, min=1, help="Pairs kept per molecule.")
    batch_size: int = option(32, min=1, help="Rows per batch.")
    warmup_steps: int = option(50, min=0, help="Steps of linear learning-rate warm-up.")
    max_steps: int = option(
        1_000, min=1, help="Optimizer steps in all (raise it to extend a finished run)."
    )
    val_every_n_steps: int = option(
        250, min=1, help="Validate and save a checkpoint every N steps."
    )
    num_workers: int = option(0, flags=("--num-workers", "-j"), min=0, help=_WORKERS)

    def __post_init__(self) -> None:
        super().__post_init__()
        fold_data_path(self, default="moses")


# --- sampling: molfm generate / decorate / optimize -------------------------------------------

_SAMPLE_MODEL = "The SMILES model to sample from: a shipped name or a checkpoint directory."
_SAMPLE_BATCH = "Sequences sampled together (part of the random stream: it changes the molecules)."
_ONE_ROW = "The CSV file to write (one row a sample)."


@dataclass(kw_only=True)
class SamplingOptions:
    """How tokens are drawn (:func:`molfm.systems.gp_molformer.sampling.sample_next_token`)."""

    temperature: float = option(1.0, min=0.0, help="Softmax temperature (0 = greedy decoding).")
    top_k: int | None = option(None, min=1, help="Sample from the k most likely tokens.")
    top_p: float | None = option(
        None,
        positive=True,
        max=1.0,
        help="Sample from the smallest set of tokens whose probability reaches p (0 < p <= 1).",
    )


@dataclass(kw_only=True)
class _SampleJob(SamplingOptions, HardwareOptions):
    """What ``molfm generate`` and ``molfm decorate`` share: a model sampled into one CSV.
    ``n`` and ``output`` get their defaults in each command's config (declared here first, so
    they lead the flags)."""

    n: int = option(flags=("-n",), min=1, help="How many molecules to sample.")
    model: str = option(DEFAULT_SMILES_MODEL, help=_SAMPLE_MODEL)
    output: str = option(flags=("--output", "-o"), path="file", help=_ONE_ROW)
    batch_size: int = option(256, min=1, help=_SAMPLE_BATCH)
    seed: int = option(0, help="Seed of the weights and of sampling.")
    train_data: str | None = option(
        None,
        help="Also report novelty against this training set: a registered data set (moses) or "
        "a CSV file.",
    )
    num_workers: int | None = option(
        None,
        flags=("--num-workers", "-j"),
        min=0,
        help="CPU worker processes that canonicalize --train-data the first time it is used "
        "(0 = in the main process); default: every core.",
    )
    cache_dir: str | None = option(
        None,
        path="dir",
        envvar="MOLFM_CACHE",
        help="molfm's cache (data sets, prepared data); default $MOLFM_CACHE or ~/.cache/molfm.",
    )


@dataclass(kw_only=True)
class GenerateConfig(_SampleJob, WorkerOptions):
    """Everything a de novo sampling job depends on (saved beside its CSV)."""

    n: int = option(1000, flags=("-n",), min=1, help="How many molecules to sample.")
    output: str = option("generated.csv", flags=("--output", "-o"), path="file", help=_ONE_ROW)
    max_length: int | None = option(
        None,
        min=2,
        help="The longest sequence in tokens, <bos> and <eos> included; default: the model's.",
    )
    syntax_mask: bool = option(
        False, help="Ban tokens that break SMILES syntax (unclosed rings or branches, endings)."
    )
    shard_size: int | None = option(
        None,
        min=1,
        help="Sample in seeded shards of this many molecules (needed for --workers > 1 and "
        "--engine ray; the same shards give the same molecules on any engine).",
    )


@dataclass(kw_only=True)
class DecorateConfig(_SampleJob):
    """Everything a scaffold-decoration job depends on (saved beside its CSV)."""

    scaffold: list[str] | None = option(
        None, help="A scaffold SMILES with [*] attachment points (repeat the flag for several)."
    )
    scaffolds_file: str | None = option(
        None, path="file", help="A text or CSV file of scaffolds, one per line (first column)."
    )
    n: int = option(100, flags=("-n",), min=1, help="How many decorations to sample per scaffold.")
    output: str = option("decorated.csv", flags=("--output", "-o"), path="file", help=_ONE_ROW)


@dataclass(kw_only=True)
class PairTuningConfig(SamplingOptions, RunOptions):
    """Everything one pair-tuning run (``molfm optimize``) depends on (saved as
    ``run_config.json`` and ``resolved_config.yaml``)."""

    output_dir: str = option(
        "optimize_out",
        path="dir",
        help="The directory to write pairs.csv, prompt/, candidates.csv, report.json and "
        "resolved_config.yaml to.",
    )
    model: str = option(
        DEFAULT_PAIR_TUNING_MODEL,
        help="The base model (a shipped name or a checkpoint directory); default: the "
        "analog-pretrained one.",
    )
    property: str | None = option(
        None,
        help="The property to improve: qed, plogp, or a numeric column of --data-path "
        "(default: qed).",
    )
    property_column: str | None = option(
        None, help="The column of --data-path or --input that holds precomputed --property values."
    )
    data: str | None = option(
        None, help="The registered data set to mine pairs from (default: moses)."
    )
    data_path: str | None = option(
        None, path="file", help="A CSV file of your own to mine pairs from (instead of --data)."
    )
    smiles_column: str = option("smiles", help="Column of the CSV that holds SMILES.")
    n_molecules: int = option(20_000, min=1, help="How many molecules to mine pairs from.")
    min_similarity: float = option(
        0.4, min=0.0, max=1.0, help="The least Tanimoto similarity of a pair."
    )
    min_improvement: float = option(
        0.0, min=0.0, help="The least property gain of a pair (a pair must exceed it)."
    )
    max_pairs_per_source: int = option(5, min=1, cli=False, help="Pairs kept per molecule.")
    n_prompt: int = option(20, min=1, help="How many soft-prompt vectors to train.")
    max_steps: int = option(1000, min=1, help="How many prompt training steps to run.")
    batch_size: int = option(32, min=1, help="Pairs per training step.")
    lr: float = option(3e-2, positive=True, help="The prompt learning rate (AdamW).")
    n_sources: int = option(
        100, min=1, help="How many held-out lowest-property molecules to optimize."
    )
    source_pool: int = option(
        2000, min=1, cli=False, help="Held-out molecules the sources are the lowest of."
    )
    n_candidates: int = option(20, min=1, help="How many candidates to generate per molecule.")
    syntax_mask: bool = option(False, help="Sample candidates with the SMILES syntax mask.")
    prompt: str | None = option(
        None, path="dir", help="A trained prompt directory to reuse: only --input is optimized."
    )
    input: str | None = option(
        None, flags=("--input",), path="file", help="A CSV file of the molecules to optimize."
    )
    progress: bool = option(True, help="Show the training progress bar.")
    num_workers: int = option(
        0, cli=False, help="Not used: pair-tuning batches its pairs in the main process."
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        fold_data_path(self, default="moses")  # the saved configs name the data set used
