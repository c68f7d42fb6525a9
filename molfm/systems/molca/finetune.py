"""MolCA's Lightning task for stage 2 and fine-tuning.

* Stage 2 (``stage="2"``): the LM is frozen; captioning through the soft prompt trains the
  graph encoder, the Q-Former (its query path) and the projector.
* Fine-tuning (``stage="finetune"``): the same loss on a task (``iupac``, ``caption``, ...),
  with LoRA adapters (default) or every LM weight training as well.

Batches are anything with ``graphs``, ``smiles`` and ``texts`` (:class:`.model.MolTextBatchLike`).
Only trainable parameters reach the optimizer (AdamW, weight decay on matrices only, warm-up +
cosine decay per step). Lightning checkpoints (for resuming) hold the same weights as a hub
checkpoint (:meth:`.model.MolCA.checkpoint_state_dict`), the optimizer state and the RNG state;
the frozen LM is rebuilt from its identity when the task is constructed.
"""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import torch

from molfm.engine.fit import RngStateMixin
from molfm.engine.optim import adamw_warmup_cosine, no_decay_for_biases_and_norms
from molfm.hub import load_config, resolve_checkpoint
from molfm.systems.molca.lora import LMTuning
from molfm.systems.molca.model import MolCA, MolCAConfig

__all__ = ["MolCATask", "build_model"]

Stage = Literal["2", "finetune"]


def build_model(
    model_config: dict[str, Any] | None, *, stage: Stage, init: str | None = None, seed: int = 0
) -> MolCA:
    """The model a stage starts from.

    Parameters
    ----------
    model_config
        :class:`~.model.MolCAConfig` fields. From a stage-1 checkpoint its graph encoder and
        Q-Former replace ``graph_encoder``/``qformer``; from a MolCA checkpoint only
        ``lm_tuning`` is read (the rest is the checkpoint's).
    stage
        ``"2"`` freezes the LM whatever ``lm_tuning`` says; ``"finetune"`` uses ``lm_tuning``
        (default LoRA).
    init
        None (a fresh model: Q-Former from MiniLM), a stage-1 checkpoint, or a MolCA checkpoint
        (a stage-2 or fine-tuned run).
    """
    if stage not in ("2", "finetune"):
        raise ValueError(f"stage {stage!r}: MolCATask trains stage 2 or finetune")
    fields = dict(model_config or {})
    tuning = fields.pop("lm_tuning", None)
    tuning = LMTuning(**tuning) if isinstance(tuning, dict) else (tuning or LMTuning())
    if stage == "2":
        tuning = LMTuning(**{**tuning.__dict__, "mode": "frozen"})
    if init is None:
        return MolCA.build(MolCAConfig(**fields, lm_tuning=tuning), seed=seed)
    path = resolve_checkpoint(init)
    if load_config(path).get("model_type") == MolCA.model_type:
        return MolCA.load(path, lm_tuning=tuning)
    for name in ("graph_encoder", "qformer", "lm_sha256"):
        fields.pop(name, None)
    return MolCA.from_stage1(path, lm_tuning=tuning, seed=seed, **fields)


class MolCATask(RngStateMixin, L.LightningModule):
    """Train a :class:`~.model.MolCA` on (molecule, text) pairs; see the module docstring.

    Parameters
    ----------
    model_config, stage, init, seed
        See :func:`build_model`.
    task
        Names the instruction (``model.config.instructions``).
    lr, weight_decay, warmup_steps, max_steps, min_lr_ratio
        AdamW and its warm-up + cosine schedule.
    val_generate
        Decode this many molecules of the first validation batch (beam search with
        ``num_beams``, ``max_new_tokens``), log ``val/exact_match`` and keep them in
        :attr:`val_samples` as ``(smiles, target, prediction)``; 0 skips it.
    """

    def __init__(
        self,
        model_config: dict[str, Any] | None = None,
        *,
        stage: Stage = "finetune",
        task: str = "iupac",
        init: str | None = None,
        lr: float = 1e-4,
        weight_decay: float = 0.05,
        warmup_steps: int = 1000,
        max_steps: int = 10_000,
        min_lr_ratio: float = 0.1,
        val_generate: int = 0,
        num_beams: int = 5,
        max_new_tokens: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(model_config, stage=stage, init=init, seed=seed)
        # Lightning keeps each submodule's mode: a model loaded from a checkpoint is in eval mode
        self.model.train()
        self.model.config.instruction(task)  # an unknown task fails now, not at the first step
        self.strict_loading = False  # resume checkpoints hold no frozen LM weights
        self.val_samples: list[tuple[str, str, str]] = []

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self.model.loss(batch, self.hparams.task)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch.smiles))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        loss = self.model.loss(batch, self.hparams.task)
        self.log("val/loss", loss, prog_bar=True, batch_size=len(batch.smiles))
        n = self.hparams.val_generate
        if batch_idx == 0 and n > 0:
            graphs = batch.graphs
            if graphs is not None and len(batch.smiles) > n:
                graphs = _head(graphs, n)
            smiles, targets = list(batch.smiles[:n]), list(batch.texts[:n])
            predicted = self.model.generate(
                graphs,
                smiles,
                self.hparams.task,
                num_beams=self.hparams.num_beams,
                max_new_tokens=self.hparams.max_new_tokens,
            )
            self.val_samples = [(s, t, p[0]) for s, t, p in zip(smiles, targets, predicted)]
            exact = sum(t.strip() == p for _, t, p in self.val_samples) / len(smiles)
            self.log("val/exact_match", exact, batch_size=len(smiles))

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        return adamw_warmup_cosine(
            self.model.named_parameters(),
            lr=hp.lr,
            weight_decay=hp.weight_decay,
            warmup_steps=hp.warmup_steps,
            max_steps=hp.max_steps,
            min_lr_ratio=hp.min_lr_ratio,
            no_decay=no_decay_for_biases_and_norms,
        )

    def _checkpoint_keys(self) -> set[str]:
        return {f"model.{key}" for key in self.model.checkpoint_state_dict()}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        keep = self._checkpoint_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        expected, stored = self._checkpoint_keys(), set(checkpoint["state_dict"])
        if stored != expected:
            missing, extra = sorted(expected - stored), sorted(stored - expected)
            raise ValueError(
                f"the checkpoint does not fit this MolCA task: missing {missing[:3]}, "
                f"unexpected {extra[:3]} (was it started with other settings?)"
            )


def _head(graphs, n: int):
    """The first ``n`` molecules of a ``DenseBatch`` (padded tensors sliced, PyG batch split)."""
    import dataclasses

    from torch_geometric.data import Batch

    sliced = {}
    for f in dataclasses.fields(graphs):
        value = getattr(graphs, f.name)
        if isinstance(value, Batch):
            value = Batch.from_data_list(value.to_data_list()[:n])
        elif isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] > n:
            value = value[:n]
        sliced[f.name] = value
    return type(graphs)(**sliced)
