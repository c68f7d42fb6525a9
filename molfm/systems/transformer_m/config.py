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

__all__ = [
    "FAITHFUL",
    "LEGACY",
    "MAX_DISTANCE",
    "MAX_HOPS",
    "MODES",
    "Mode",
    "TransformerMConfig",
    "SHIPPED_RUN",
]

MAX_DISTANCE = 20
"""Distances above this share one embedding (Graphormer/Transformer-M clip SPD similarly)."""
MAX_HOPS = 5
"""Bonds per shortest path seen by the multi-hop edge encoding (Transformer-M: 5)."""

Mode = Literal["2d", "3d", "2d3d"]
GraphTokenBias = Literal["uniform", "row_column"]
"""Where the virtual token's learned per-head bias goes: ``row_column`` on its own attention
row and column (the paper); ``uniform`` on every logit, where softmax cancels it (no effect:
the behaviour of checkpoints saved before the option existed)."""
DenoiseLoss = Literal["mse", "cosine"]
"""``cosine``: 1 - cos(predicted, true noise) per atom, on molecules that drew the 3D-only
mode (the paper); ``mse``: squared error in units of the noise scale on every 3D molecule."""
Norm = Literal["pre", "post"]
"""``pre``: ``x + f(LN(x))``; ``post``: ``LN(x + f(x))`` after a LayerNorm of the input
embeddings (the official blocks)."""
Init = Literal["torch", "normal"]
"""``normal``: N(0, 0.02) weights and zero biases for linear and embedding layers (official)."""
_CHOICES = {
    "graph_token_bias": GraphTokenBias.__args__,
    "denoise_loss": DenoiseLoss.__args__,
    "norm": Norm.__args__,
    "init": Init.__args__,
}
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
    # The defaults below are the behaviour of checkpoints saved before these fields existed (a
    # stored config without them loads with them, unchanged); small() and paper() set the
    # faithful values, so every newly trained model gets them.
    graph_token_bias: GraphTokenBias = "uniform"
    centrality_scale: float = 1.0  # official: 0.01
    denoise_loss: DenoiseLoss = "mse"
    denoise_weight: float = 0.0  # the property task's --auxiliary-weight when not given
    norm: Norm = "pre"
    activation_dropout: float = 0.0  # after the FFN activation
    drop_path: float = 0.0  # stochastic depth of the last layer; 0 at the first, linear between
    init: Init = "torch"

    def __post_init__(self) -> None:
        self.mode_probs = tuple(float(p) for p in self.mode_probs)
        if len(self.mode_probs) != 3 or abs(sum(self.mode_probs) - 1) > 1e-6:
            raise ValueError(f"mode_probs must be 3 probabilities summing to 1: {self.mode_probs}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} {getattr(self, name)!r}: expected one of {allowed}")
        for name in ("dropout", "attn_dropout", "activation_dropout", "drop_path"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    @classmethod
    def paper(cls, **overrides) -> TransformerMConfig:
        """The published model and its training setting: 12 layers, width 768, 32 heads, FFN
        768, 128 Gaussian kernels; post-LN blocks after an input LayerNorm, N(0, 0.02) init,
        attention and FFN-activation dropout 0.1, drop path 0.1; the cosine denoising loss on
        3D-only molecules with weight 1."""
        sizes = dict(num_layers=12, dim=768, num_heads=32, ffn_dim=768, num_kernels=128)
        blocks = dict(
            norm="post", init="normal", attn_dropout=0.1, activation_dropout=0.1, drop_path=0.1
        )
        return cls(**(sizes | FAITHFUL | blocks | overrides))

    @classmethod
    def small(cls, **overrides) -> TransformerMConfig:
        """4 layers, width 128, 8 heads: trains on a CPU. The paper's mechanisms (virtual-token
        bias, centrality scale, cosine denoising with weight 1); pre-LN blocks, PyTorch's init
        and no dropout, which train better at this size and budget (docs/transformer_m.md)."""
        return cls(**(FAITHFUL | overrides))


FAITHFUL: dict[str, object] = {
    "graph_token_bias": "row_column",
    "centrality_scale": 0.01,
    "denoise_loss": "cosine",
    "denoise_weight": 1.0,
}
"""The paper's mechanisms, in every preset (the block settings differ by size)."""
LEGACY: dict[str, object] = {
    "graph_token_bias": "uniform",
    "centrality_scale": 1.0,
    "denoise_loss": "mse",
    "denoise_weight": 0.0,
}
"""The same fields as molfm had them before (the dataclass defaults, so stored configs without
them load unchanged)."""


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
:class:`molfm.tasks.config.PropertyTrainConfig`. The checkpoint predates the faithful
mechanisms (its stored config lacks their fields, so it loads with :data:`LEGACY`); this recipe
as it stands trains them, and ``encoder_overrides=LEGACY`` trains as the shipped run did."""
