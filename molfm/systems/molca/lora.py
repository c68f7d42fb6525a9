"""How MolCA tunes its language model: LoRA adapters (peft), full fine-tuning, or frozen.

MolCA's stage 2 (pretraining the projector) keeps the LM frozen; fine-tuning adds LoRA
adapters (default r 16, alpha 32, no dropout) on the attention and MLP projections of every
layer (:data:`LORA_TARGET_SETS` names smaller sets). LoRA's ``B`` matrices start at zero, so a
freshly wrapped LM computes exactly what the plain one does.

Each adapter is a few small operations per projection and step (two matmuls, a scale, an add,
and three more with dropout on); with 7 targets in each of SmolLM2's 30 layers they were a
large share of a training step's launched operations, hence dropout 0 by default (peft then
skips it) and the ``attention``/``qv`` target sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from torch import nn

from molfm.systems.molca.config import LORA_TARGET_SETS as CONFIG_TARGET_SETS

__all__ = [
    "LLAMA_TARGETS",
    "LORA_TARGET_SETS",
    "LMTuning",
    "ParameterCount",
    "tune_lm",
    "count_parameters",
]

LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""Module names of the attention (q/k/v/o) and MLP (gate/up/down) projections in Llama-family
models such as SmolLM2."""

LORA_TARGET_SETS: dict[str, tuple[str, ...]] = CONFIG_TARGET_SETS
"""Named target sets: every projection, the attention projections, or query and value only
(the original LoRA paper's choice and peft's default for OPT, MolCA's LM)."""


@dataclass
class LMTuning:
    """Which LM parameters train.

    Attributes
    ----------
    mode
        ``"lora"`` (adapters train, the LM is frozen), ``"full"`` (every LM parameter trains)
        or ``"frozen"`` (nothing in the LM trains; gradients still flow through it to its
        inputs, e.g. the projected Q-Former outputs).
    r, alpha, dropout, target_modules
        LoRA rank, scaling numerator (scale = alpha / r), dropout on the adapter input and the
        names of the linear layers that get adapters. Checkpoints record the dropout they
        trained with (the shipped naming model: 0.1); it plays no part at inference.
    """

    mode: Literal["lora", "full", "frozen"] = "lora"
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(LLAMA_TARGETS))


class ParameterCount(NamedTuple):
    trainable: int
    total: int

    def __str__(self) -> str:
        share = 100 * self.trainable / max(self.total, 1)
        return f"{self.trainable:,} trainable of {self.total:,} parameters ({share:.2f}%)"


def tune_lm(model: nn.Module, tuning: LMTuning | None = None) -> nn.Module:
    """Prepare a causal LM for training as ``tuning`` says.

    Parameters
    ----------
    model
        A transformers causal LM.
    tuning
        Default :class:`LMTuning` (LoRA, r 16).

    Returns
    -------
    nn.Module
        For ``"lora"`` a peft ``PeftModelForCausalLM`` wrapping ``model`` (same call
        signature; ``save_pretrained`` writes ``adapter_config.json`` and
        ``adapter_model.safetensors``); otherwise ``model`` itself with ``requires_grad`` set.
    """
    tuning = tuning or LMTuning()
    if tuning.mode == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=tuning.r,
            lora_alpha=tuning.alpha,
            lora_dropout=tuning.dropout,
            target_modules=list(tuning.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, config)  # freezes every base parameter
    if tuning.mode in ("full", "frozen"):
        model.requires_grad_(tuning.mode == "full")
        return model
    raise ValueError(f"unknown LM tuning mode {tuning.mode!r}; use lora, full or frozen")


def count_parameters(model: nn.Module) -> ParameterCount:
    """Trainable and total parameters (tied weights counted once, as ``parameters()`` does)."""
    params = list(model.parameters())
    return ParameterCount(
        sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
    )
