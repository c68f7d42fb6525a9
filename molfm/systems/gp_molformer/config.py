"""GP-MoLFormer's run configs: each field is one flag of ``molfm train gp-molformer`` /
``molfm train gp-molformer-analogs`` (declared once, :mod:`molfm.engine.options`).

Pure Python (no torch), so the CLI can build its flags without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from molfm.engine.options import RunOptions, fold_data_path, option

__all__ = ["MODEL_SIZES", "LMTrainConfig", "AnalogTrainConfig"]

DEFAULT_SMILES_MODEL = "gp-molformer-small-moses"
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
