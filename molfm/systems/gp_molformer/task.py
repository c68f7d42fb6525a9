"""GP-MoLFormer's training objective as a Lightning task.

:class:`CausalLMTask` is next-token cross-entropy on SMILES with AdamW, linear warm-up then
cosine decay. Causal-LM pretraining (:mod:`.pretrain`) trains it on one molecule per row and
analog pretraining (:mod:`.analogs`) on ``<bos> A <eos> B <eos>`` rows. Pair-tuning's task, which
trains a soft prompt in front of the frozen model, lives with the prompt
(:class:`.pair_tuning.training.PairTuningTask`).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from molfm.engine.fit import RngStateMixin
from molfm.engine.optim import adamw_warmup_cosine
from molfm.systems.gp_molformer.data import pair_positions
from molfm.systems.gp_molformer.model import GPMoLFormer, GPMoLFormerConfig

__all__ = ["CausalLMTask"]


class CausalLMTask(RngStateMixin, L.LightningModule):
    """Next-token prediction on SMILES with a :class:`GPMoLFormer`."""

    def __init__(
        self,
        model_config: dict[str, Any],
        lr: float = 3e-4,
        weight_decay: float = 0.01,
        warmup_steps: int = 500,
        max_steps: int = 10_000,
        min_lr_ratio: float = 0.1,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = GPMoLFormer(GPMoLFormerConfig(**model_config))

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``(ids, mask)``: one molecule per row. ``(ids, mask, target_mask)``: an analog
        row ``<bos> A <eos> B <eos>`` whose second molecule restarts its positions at 1
        (:func:`molfm.systems.gp_molformer.data.pair_positions`); the loss covers every token."""
        ids, mask = batch[0], batch[1]
        positions = None
        if len(batch) == 3:
            positions = pair_positions(mask, batch[2], n_prompt=0)
        return self.model.lm_loss(self.model(ids, mask, positions=positions), ids, mask)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch[0].shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self._loss(batch)
        size = batch[0].shape[0]
        self.log("val/loss", loss, prog_bar=True, batch_size=size, sync_dist=True)
        self.log("val/ppl", torch.exp(loss), batch_size=size, sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_warmup_cosine(
            self.model.named_parameters(),
            lr=hp.lr,
            weight_decay=hp.weight_decay,
            warmup_steps=hp.warmup_steps,
            max_steps=hp.max_steps,
            min_lr_ratio=hp.min_lr_ratio,
            betas=(0.9, 0.95),
            no_decay=lambda name, param: param.ndim < 2 or "emb" in name,
        )
