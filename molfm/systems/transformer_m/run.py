"""Transformer-M's entry point of its own: the run that trains its shipped checkpoint.

Training and prediction with Transformer-M are the shared property task (``molfm train property
--model transformer-m`` and ``molfm predict``: :mod:`molfm.tasks.property_run`,
:mod:`molfm.tasks.predict`), and its 3D denoising is an auxiliary loss inside those runs, not a
pretraining run. What is Transformer-M's own is the recipe of ``transformer-m-small-qm9``
(:data:`~molfm.systems.transformer_m.config.SHIPPED_RUN`): :func:`shipped_config` builds it and
:func:`train_shipped` runs it and stores the best model as a shipped checkpoint (fp16), as
``benchmarks/train_transformer_m_qm9.sh`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from molfm.systems.transformer_m.config import SHIPPED_RUN
from molfm.tasks.config import PropertyTrainConfig

__all__ = ["shipped_config", "train_shipped"]


def shipped_config(output_dir: str | Path, **overrides: Any) -> PropertyTrainConfig:
    """The property run that trained ``transformer-m-small-qm9``, ``overrides`` over it."""
    return PropertyTrainConfig(output_dir=str(output_dir), **(SHIPPED_RUN | overrides))


def train_shipped(
    cfg: PropertyTrainConfig, destination: str | Path, callbacks: list | None = None
) -> Path:
    """Run (or resume) ``cfg`` (e.g. :func:`shipped_config`) and store its best model at
    ``destination`` with fp16 weights and its training record, as the shipped checkpoint is."""
    import torch

    from molfm.hub import from_pretrained, load_config, save_pretrained
    from molfm.tasks.property_run import train_property

    model_dir = train_property(cfg, callbacks=callbacks)
    training = load_config(model_dir).get("training", {})
    model = from_pretrained(model_dir)
    return save_pretrained(model, destination, dtype=torch.float16, extra={"training": training})
