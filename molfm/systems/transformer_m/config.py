"""Transformer-M's config: the encoder's sizes and options (:class:`TransformerMConfig`, stored
in every checkpoint as ``model_config``), and the limits of its 2D pair inputs.

Transformer-M has no run config of its own: it is trained and used through the shared property
task, whose configs are :mod:`molfm.tasks.config` (``molfm train property --model
transformer-m``, ``molfm predict``). :data:`SHIPPED_RUN` holds the settings of that task which
trained the shipped checkpoint (:func:`molfm.systems.transformer_m.run.train_shipped`).

Pure Python (no torch), so configs import fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["MAX_DISTANCE", "MAX_HOPS", "MODES", "Mode", "TransformerMConfig", "SHIPPED_RUN"]

MAX_DISTANCE = 20
"""Distances above this share one embedding (Graphormer/Transformer-M clip SPD similarly)."""
MAX_HOPS = 5
"""Bonds per shortest path seen by the multi-hop edge encoding (Transformer-M: 5)."""

Mode = Literal["2d", "3d", "2d3d"]
MODES: tuple[Mode, ...] = ("2d3d", "2d", "3d")
"""Order of ``mode_probs``."""


def _ogb_dims(kind: str) -> list[int]:
    # the feature schema reads RDKit: imported when a config is built, not with this module
    from molfm.chem.schema import OGB_SCHEMA

    return list(getattr(OGB_SCHEMA, kind))


@dataclass
class TransformerMConfig:
    """Sizes and options. ``paper()`` is the published model; ``small()`` runs on a CPU."""

    num_layers: int = 4
    dim: int = 128
    num_heads: int = 8
    ffn_dim: int = 256
    num_kernels: int = 32
    dropout: float = 0.0
    attn_dropout: float = 0.0
    max_degree: int = 8
    max_distance: int = MAX_DISTANCE
    max_hops: int = MAX_HOPS
    mode_probs: tuple[float, float, float] = (0.2, 0.2, 0.6)  # 2D+3D, 2D, 3D
    denoise_noise: float = 0.2  # Angstrom; coordinate noise of 3D molecules in training (0: off)
    atom_dims: list[int] = field(default_factory=lambda: _ogb_dims("atom_dims"))
    bond_dims: list[int] = field(default_factory=lambda: _ogb_dims("bond_dims"))

    def __post_init__(self) -> None:
        self.mode_probs = tuple(float(p) for p in self.mode_probs)
        if len(self.mode_probs) != 3 or abs(sum(self.mode_probs) - 1) > 1e-6:
            raise ValueError(f"mode_probs must be 3 probabilities summing to 1: {self.mode_probs}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")

    @classmethod
    def paper(cls, **overrides) -> TransformerMConfig:
        """12 layers, width 768, 32 heads, FFN 768, 128 Gaussian kernels (the paper's size)."""
        sizes = dict(num_layers=12, dim=768, num_heads=32, ffn_dim=768, num_kernels=128)
        return cls(**(sizes | {"dropout": 0.0, "attn_dropout": 0.1} | overrides))

    @classmethod
    def small(cls, **overrides) -> TransformerMConfig:
        """4 layers, width 128, 8 heads: trains on a CPU."""
        return cls(**overrides)


SHIPPED_RUN: dict[str, object] = {
    "model": "transformer-m",
    "data": "qm9",
    "target_columns": ["homo", "lumo", "gap"],
    "split_sizes": [110_000, 10_000, -1],
    "mode": "sampled",
    "eval_mode": "available",
    "auxiliary_weight": 0.1,
    "batch_size": 64,
    "lr": 5e-4,
    "warmup_steps": 500,
    "max_steps": 25_842,
    "val_every_n_steps": 2_584,
    "on_invalid": "skip",
    "accelerator": "cpu",
}
"""``transformer-m-small-qm9``: the small encoder trained jointly on 2D and 3D (modes sampled
per molecule) with the 3D denoising loss on QM9 HOMO, LUMO and gap (eV), random 110,000 /
10,000 / rest split (data seed 0); 20 minutes of a 2-core CPU. Fields of
:class:`molfm.tasks.config.PropertyTrainConfig`."""
