"""The property task's run configs: each field is one flag of ``molfm train property``
(:class:`PropertyTrainConfig`) or ``molfm predict`` (:class:`PredictConfig`), declared once
(:mod:`molfm.engine.options`).

Property prediction is shared by every graph encoder, so its configs live here rather than in a
system. Pure Python (no torch), so the CLI can build its flags without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from molfm.engine.options import ON_INVALID, HardwareOptions, RunOptions, fold_data_path, option
from molfm.options import StreamOptions

__all__ = [
    "DEFAULT_PROPERTY_MODEL",
    "ENCODERS",
    "TRAIN_MODES",
    "EVAL_MODES",
    "SPLITS",
    "TASKS",
    "ENCODER_SIZES",
    "PropertyTrainConfig",
    "PredictConfig",
    "encoder_mode",
]

DEFAULT_PROPERTY_MODEL = "transformer-m-small-qm9"
"""The shipped property model ``molfm predict`` uses unless ``--model`` names another
(Transformer-M small on QM9 HOMO, LUMO and gap in eV; ``molfm/assets/``)."""
ENCODERS = ("transformer-m", "gine", "gps")
"""Graph encoders a property model can be built on (registered model types)."""
TRAIN_MODES = ("2d", "3d", "2d3d", "sampled")
"""Transformer-M channels in training: one mode for every molecule, or drawn per molecule."""
EVAL_MODES = ("available", "2d", "3d", "2d3d")
"""Channels for evaluation and prediction: every channel a molecule has data for, or one mode."""
SPLITS = ("random", "scaffold")
TASKS = ("regression", "classification")
ENCODER_SIZES = ("num_layers", "dim", "num_heads")
"""The size flags merged into ``encoder_overrides``."""


def encoder_mode(mode: str | None) -> str | None:
    """The encoder's ``mode`` argument for a mode option: None for ``sampled`` (training) and
    ``available`` (evaluation), which leave the choice to the encoder per molecule."""
    return None if mode in (None, "sampled", "available") else mode


@dataclass(kw_only=True)
class PropertyTrainConfig(RunOptions):
    """Everything a property run depends on (saved as ``train_config.json``)."""

    output_dir: str = option(
        path="dir",
        help="The run directory: checkpoints, logs, model/, metrics.json, test predictions and "
        "a parity plot or ROC curve. A run already there is resumed.",
    )
    model: str = option("transformer-m", choices=ENCODERS, help="The graph encoder to train.")
    init: str | None = option(
        None, help="A pretrained encoder to start from (shipped name or directory)."
    )
    data: str | None = option(None, help="A registered data set, e.g. qm9 or b3db.")
    data_path: str | None = option(
        None, path="file", help="A user file: CSV (SMILES + columns) or SDF (3D)."
    )
    subset: str | None = option(None, help="A subset of the data set, e.g. regression.")
    smiles_column: str = option("smiles", help="Column of the CSV that holds SMILES.")
    target_columns: list[str] = option(
        default_factory=list,
        help="Target columns of the CSV: repeat the flag, or separate them with commas (a,b).",
    )
    task: str | None = option(
        None, choices=TASKS, help="Regression or classification (default: from the data)."
    )
    mode: str = option(
        "sampled",
        choices=TRAIN_MODES,
        help="Transformer-M channels in training: 2d, 3d, 2d3d, or sampled per molecule "
        "(2D+3D 0.2, 2D 0.2, 3D 0.6; molecules without coordinates run 2D).",
    )
    eval_mode: str = option(
        "available",
        choices=EVAL_MODES,
        help="Channels for validation and test: every channel a molecule has data for, or one "
        "mode.",
    )
    preset: str = option("small", help="Encoder size: small (CPU) or paper.")
    num_layers: int | None = option(None, min=1, help="Encoder layers (overrides the preset).")
    dim: int | None = option(None, min=2, help="Encoder width (overrides the preset).")
    num_heads: int | None = option(None, min=1, help="Attention heads (Transformer-M).")
    encoder_overrides: dict[str, Any] = option(
        default_factory=dict,
        cli=False,
        help="Encoder config fields over the preset (the size flags above are merged in).",
    )
    loss: str | None = option(None, help="mae or mse (regression), bce (classification).")
    auxiliary_weight: float | None = option(
        None,
        min=0.0,
        help="Weight of the encoder's auxiliary loss (Transformer-M: 3D denoising; default: "
        "the encoder's own, 1 in Transformer-M's presets as in the paper).",
    )
    split: str = option("random", choices=SPLITS, help="How molecules are split.")
    split_sizes: list[float] = option(
        default_factory=lambda: [0.8, 0.1, 0.1],
        cli_type=tuple[float, float, float],
        help="Train, validation and test: fractions, or counts (-1 = the rest), e.g. 110000 "
        "10000 -1.",
    )
    split_file: str | None = option(
        None,
        path="file",
        exists=True,
        help="A saved split (.npz with train, val, test row positions of the prepared data), "
        "e.g. a protocol's; replaces --split and --split-sizes.",
    )
    limit_train: int | None = option(
        None,
        min=1,
        help="Train on N molecules of the training split (the same N for a data seed).",
    )
    batch_size: int = option(64, min=1, help="Rows per batch.")
    lr: float = option(5e-4, positive=True, help="The peak learning rate (> 0).")
    weight_decay: float = option(0.0, min=0.0, help="AdamW weight decay.")
    warmup_steps: int = option(100, min=0, help="Steps of linear learning-rate warm-up.")
    max_steps: int = option(2000, min=1, help="Optimizer steps in all.")
    val_every_n_steps: int | None = option(
        None, min=1, help="Validate and checkpoint every N steps (default: once per epoch)."
    )
    head_hidden: int = option(256, min=1, cli=False, help="Hidden width of the MLP head.")
    dropout: float = option(0.0, min=0.0, max=1.0, cli=False, help="Dropout of the MLP head.")

    def __post_init__(self) -> None:
        super().__post_init__()
        fold_data_path(self)
        if self.data is None:
            raise ValueError("give --data NAME or --data-path FILE")
        # --target-columns a,b,c as well as --target-columns a --target-columns b ...
        self.target_columns = [c for v in self.target_columns or [] for c in v.split(",") if c]
        self.split_sizes = [float(s) for s in self.split_sizes]
        # None is what the library took for "sampled" / "available" before these were flags
        self.mode = self.mode or "sampled"
        self.eval_mode = self.eval_mode or "available"
        sizes = {k: getattr(self, k) for k in ENCODER_SIZES if getattr(self, k) is not None}
        self.encoder_overrides = {**self.encoder_overrides, **sizes}


@dataclass(kw_only=True)
class PredictConfig(StreamOptions, HardwareOptions):
    """Everything ``molfm predict`` depends on (saved beside its output)."""

    model: str = option(
        DEFAULT_PROPERTY_MODEL, help="A shipped property model or a run's model/ directory."
    )
    data_path: str = option(
        flags=("--data-path",),
        path="file",
        help="A CSV/TSV or Parquet file of SMILES, or an SDF (3D); read in parts.",
    )
    output: str = option(
        "predictions.csv",
        flags=("--output", "-o"),
        path="file",
        help="The predictions to write: CSV, or Parquet (.parquet) for large runs.",
    )
    smiles_column: str = option("smiles", help="Column of the CSV that holds SMILES.")
    conformers: bool = option(
        False, help="Generate an RDKit conformer per SMILES so 3D-capable models use 3D."
    )
    mode: str = option(
        "available",
        choices=EVAL_MODES,
        help="Channels to use: every channel a molecule has data for, or one mode.",
    )
    on_invalid: str = option(
        "error",
        choices=ON_INVALID,
        help="A bad row stops the run (error) or is skipped and listed in invalid.csv (skip).",
    )
    batch_size: int = option(64, min=1, help="Rows per batch.")
    num_workers: int = option(
        1, flags=("--num-workers", "-j"), min=0, help="Processes for conformer generation."
    )
