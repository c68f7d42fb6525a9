"""Property prediction on any molfm graph encoder: the model (encoder + head) and its Lightning task.

:class:`PropertyModel` is one checkpointable model: an encoder looked up by its registered type
(``"transformer-m"``, ``"gine"``, ``"gps"``, ...) plus an MLP head on the graph embedding.
Regression targets are standardized with the training set's mean and standard deviation
(stored in the config, so predictions come back in the data's units); classification heads
output one logit per task. Missing labels (NaN) are masked out of the loss, never dropped.

:class:`PropertyTask` is the objective: masked L1/MSE on standardized targets, or masked BCE,
plus the encoder's auxiliary loss when it has one (Transformer-M's 3D denoising).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from molfm.engine.fit import RngStateMixin
from molfm.engine.optim import adamw_warmup_cosine
from molfm.hub import get_model_class, register_model

__all__ = ["PropertyModelConfig", "PropertyModel", "PropertyTask", "masked_loss", "LOSSES"]

TaskType = Literal["regression", "classification"]
LOSSES = {"regression": ("mae", "mse"), "classification": ("bce",)}


@dataclass
class PropertyModelConfig:
    """Everything needed to rebuild a property model and read its outputs.

    ``mean``/``std`` standardize regression targets; ``domain`` records what the training set
    covered (atomic numbers, largest molecule) so prediction can flag molecules outside it.
    """

    encoder_type: str
    encoder_config: dict[str, Any]
    task: TaskType = "regression"
    targets: list[str] = field(default_factory=list)
    head_hidden: int = 256
    dropout: float = 0.0
    mean: list[float] | None = None
    std: list[float] | None = None
    units: dict[str, str] = field(default_factory=dict)
    domain: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in LOSSES:
            raise ValueError(f"task must be regression or classification, got {self.task!r}")
        if not self.targets:
            raise ValueError("a property model needs at least one target")


@register_model("property")
class PropertyModel(nn.Module):
    """Encoder + MLP head. ``forward`` returns raw outputs ``[B, T]`` (standardized values or
    logits); :meth:`predict` returns values in the data's units or probabilities."""

    config_class = PropertyModelConfig

    def __init__(self, config: PropertyModelConfig) -> None:
        super().__init__()
        self.config = config
        encoder_cls = get_model_class(config.encoder_type)
        self.encoder = encoder_cls(encoder_cls.config_class(**config.encoder_config))
        dim = self.encoder.embedding_dim
        self.head = nn.Sequential(
            nn.Linear(dim, config.head_hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.head_hidden, len(config.targets)),
        )
        n = len(config.targets)
        mean = torch.tensor(config.mean if config.mean is not None else [0.0] * n)
        std = torch.tensor(config.std if config.std is not None else [1.0] * n)
        self.register_buffer("mean", mean.float(), persistent=False)
        self.register_buffer("std", std.float(), persistent=False)

    def forward(self, batch, mode: str | None = None):
        """Raw outputs ``[B, T]`` and the encoder output (for auxiliary losses)."""
        encoded = self.encoder(batch, mode=mode)
        return self.head(encoded.graph_embedding), encoded

    @torch.no_grad()
    def predict(self, batch, mode: str | None = None) -> torch.Tensor:
        """``[B, T]`` predictions in the training data's units, or class-1 probabilities."""
        raw, _ = self(batch, mode=mode)
        if self.config.task == "classification":
            return torch.sigmoid(raw)
        return raw * self.std + self.mean


def masked_loss(raw: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean loss over labelled entries only (NaN targets are skipped).

    Parameters
    ----------
    raw
        ``[B, T]`` model outputs (standardized values or logits).
    target
        ``[B, T]`` standardized targets or 0/1 labels, NaN where missing.
    kind
        ``mae``, ``mse`` or ``bce``.
    """
    labelled = ~torch.isnan(target)
    if not labelled.any():
        return raw.sum() * 0.0  # keeps the graph; a batch with no labels teaches nothing
    pred, true = raw[labelled], target[labelled]
    if kind == "mae":
        return F.l1_loss(pred, true)
    if kind == "mse":
        return F.mse_loss(pred, true)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(pred, true)
    raise ValueError(f"unknown loss {kind!r}; expected one of mae, mse, bce")


class PropertyTask(RngStateMixin, L.LightningModule):
    """Train a :class:`PropertyModel`: masked loss (+ the encoder's auxiliary loss), AdamW,
    warm-up + cosine decay. Validation logs the loss and MAE (regression, data units) per step."""

    def __init__(
        self,
        model_config: dict[str, Any],
        *,
        loss: str = "mae",
        lr: float = 5e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
        max_steps: int = 1000,
        train_mode: str | None = None,
        eval_mode: str | None = None,
        auxiliary_weight: float | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = PropertyModel(PropertyModelConfig(**model_config))
        if loss not in LOSSES[self.model.config.task]:
            raise ValueError(
                f"loss {loss!r} does not fit a {self.model.config.task} task; "
                f"use one of {LOSSES[self.model.config.task]}"
            )

    def _scaled_targets(self, y: torch.Tensor) -> torch.Tensor:
        if self.model.config.task == "classification":
            return y
        return (y - self.model.mean) / self.model.std

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        raw, encoded = self.model(batch, mode=self.hparams.train_mode)
        loss = masked_loss(raw, self._scaled_targets(batch.y), self.hparams.loss)
        auxiliary = getattr(self.model.encoder, "auxiliary_loss", None)
        weight = self.hparams.auxiliary_weight
        if weight is None:  # the encoder's own setting (Transformer-M: its denoise_weight)
            weight = getattr(self.model.encoder, "default_auxiliary_weight", 0.0)
        if auxiliary is not None and weight > 0:
            extra = auxiliary(batch, encoded)
            if extra is not None:
                self.log("train/auxiliary", extra, batch_size=len(batch))
                loss = loss + weight * extra
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        raw, _ = self.model(batch, mode=self.hparams.eval_mode)
        loss = masked_loss(raw, self._scaled_targets(batch.y), self.hparams.loss)
        self.log("val/loss", loss, prog_bar=True, batch_size=len(batch))
        if self.model.config.task == "regression":
            pred = raw * self.model.std + self.model.mean
            labelled = ~torch.isnan(batch.y)
            mae = (pred - batch.y).abs()[labelled].mean()
            self.log("val/mae", mae, prog_bar=True, batch_size=len(batch))

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        return adamw_warmup_cosine(
            self.named_parameters(),
            lr=hp.lr,
            weight_decay=hp.weight_decay,
            warmup_steps=hp.warmup_steps,
            max_steps=hp.max_steps,
            min_lr_ratio=0.01,
            fused_on_cpu=True,  # a small encoder: the per-tensor loop costs a tenth of a step
        )
