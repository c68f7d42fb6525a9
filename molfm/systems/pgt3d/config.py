"""3D-PGT's run config: each field is one flag of ``molfm pretrain 3d-pgt`` (declared once,
:mod:`molfm.engine.options`).

Pure Python (no torch), so the CLI can build its flags without loading a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from molfm.engine.options import RunOptions, fold_data_path, option

__all__ = ["ENCODERS", "WEIGHTINGS", "PGTPretrainConfig", "parse_task_weights"]

HEAD_FORMS = ("symmetric", "official")
"""The pretext heads: molfm's direction-symmetric bond heads, or the official code's."""
ENCODERS = ("gps", "gine")
"""Encoders 3D-PGT pretrains (any registered molfm graph encoder that reads the sparse graph)."""
WEIGHTINGS = ("auto", "equal", "fixed", "official")
"""How the pretext losses are weighted: searched against the total energy, 1:1:1, given, or the
official code's four-task sum (the three geometry losses plus the raw total energy in Hartree,
regressed from the mean-pooled embedding through the angle head)."""
ENCODER_SIZES = ("num_layers", "dim")


def parse_task_weights(value: str | Sequence[float]) -> list[float]:
    """``"1,0,0"`` (or three numbers) as the bond, angle and dihedral weights.

    Raises
    ------
    ValueError
        Unless three non-negative numbers with a positive sum.
    """
    if isinstance(value, str):
        # "[1.0, 0.0, 0.0]" too: a list saved in resolved_config.yaml, read back as text
        text = value.strip().strip("[]")
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise ValueError(f"--task-weights {value!r}: give three numbers, e.g. 1,0,0") from None
    else:
        values = [float(v) for v in value]
    if len(values) != 3 or min(values) < 0 or sum(values) <= 0:
        raise ValueError(f"--task-weights {value!r}: give three non-negative numbers, e.g. 1,0,0")
    return values


@dataclass(kw_only=True)
class PGTPretrainConfig(RunOptions):
    """Everything a 3D-PGT pretraining run depends on (saved as ``train_config.json``).

    Give the data as ``data`` (a registered data set with 3D, e.g. qm9) or ``data_path`` (an
    SDF, or a CSV of SMILES with ``conformers=True``).
    """

    output_dir: str = option(
        path="dir",
        help="The run directory: model/ (the pretrained encoder), task_weights.csv, "
        "metrics.json, checkpoints, logs. A run already there is resumed.",
    )
    data: str | None = option(None, help="A registered data set with 3D, e.g. qm9.")
    data_path: str | None = option(
        None, path="file", help="An SDF (3D), or a CSV with --conformers."
    )
    subset: str | None = option(
        None, cli=False, help="The subset of ``data`` to pretrain on (default: its default)."
    )
    smiles_column: str = option("smiles", help="Column of the CSV that holds SMILES.")
    conformers: bool = option(
        False, help="Generate an RDKit conformer per molecule (for SMILES-only data)."
    )
    conformer_seed: int = option(0, help="Seed of the conformer embedding.")
    encoder: str = option("gps", choices=ENCODERS, help="The encoder to pretrain.")
    preset: str = option("small", help="Encoder size: small (CPU) or paper.")
    num_layers: int | None = option(None, min=1, help="Encoder layers (over the preset).")
    dim: int | None = option(None, min=2, help="Encoder width (over the preset).")
    encoder_overrides: dict[str, Any] = option(
        default_factory=dict,
        cli=False,
        help="Encoder config fields over the preset (--num-layers/--dim are merged in).",
    )
    weighting: str = option(
        "auto",
        choices=WEIGHTINGS,
        help="Task weights: auto (searched against the total energy), equal, fixed, or "
        "official (the official code's loss: 1:1:1 plus the raw total energy in Hartree "
        "through the angle head).",
    )
    task_weights: list[float] | None = option(
        None,
        cli_type=str,
        help="With --weighting fixed: BOND,ANGLE,DIHEDRAL, e.g. 1,0,0 for bonds alone.",
    )
    energy_column: str | None = option(
        None, help="The total-energy column the weight search follows (default: u0 if present)."
    )
    search_every: int = option(10, min=1, help="Update the task weights every N steps.")
    search_step: float = option(
        0.05, positive=True, help="Exponentiated-gradient step of the weight search."
    )
    search_batches: int = option(
        16, min=1, cli=False, help="Held-out batches the weight search cycles through."
    )
    split_file: str | None = option(
        None,
        path="file",
        exists=True,
        help="A saved split: train = pretraining molecules, val = held-out (weight search).",
    )
    split_sizes: list[float] = option(
        default_factory=lambda: [0.95, 0.05, 0.0],
        cli=False,
        help="Train/val/test fractions (or counts, -1 = the rest) without a split file.",
    )
    batch_size: int = option(64, min=1, help="Rows per batch.")
    lr: float = option(5e-4, positive=True, help="The peak learning rate (> 0).")
    weight_decay: float = option(0.0, min=0.0, cli=False, help="AdamW weight decay.")
    warmup_steps: int = option(100, min=0, help="Steps of linear learning-rate warm-up.")
    max_steps: int = option(2000, min=1, help="Optimizer steps in all.")
    val_every_n_steps: int | None = option(
        None, min=1, help="Validate and checkpoint every N steps (default: once per epoch)."
    )
    head_hidden: int = option(128, min=1, cli=False, help="Hidden width of each pretext head.")
    heads: str = option(
        "symmetric",
        choices=HEAD_FORMS,
        help="Bond heads: symmetric ([h_u+h_v, h_u*h_v], once per bond) or official (bond: "
        "[h_i, h_j, e_ij] -> squared distance; dihedral: the edge state; needs --preset paper).",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.data is not None or self.data_path is not None:
            fold_data_path(self)  # one line for both given, an unknown name or a missing file
            if self.data_path is not None:  # a file is read as data_path (its columns can be
                self.data = None  # energies), a data set by its name

        if self.task_weights is not None:
            self.task_weights = parse_task_weights(self.task_weights)
        sizes = {k: getattr(self, k) for k in ENCODER_SIZES if getattr(self, k) is not None}
        self.encoder_overrides = {**self.encoder_overrides, **sizes}
