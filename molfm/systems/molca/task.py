"""MolCA's Lightning tasks: :class:`Stage1Task` (stage 1) and :class:`MolCATask` (stage 2 and
fine-tuning).

* Stage 1 (:class:`Stage1Task`): the summed contrastive, matching and Q-Former captioning
  losses of a :class:`~.stage1.MolCAStage1` (graph encoder + Q-Former, no LM).
* Stage 2 (``stage="2"``): the LM is frozen; captioning through the soft prompt trains the
  graph encoder, the Q-Former (its query path) and the projector.
* Fine-tuning (``stage="finetune"``): the same loss on a task (``iupac``, ``caption``, ...),
  with LoRA adapters (default) or every LM weight training as well.

Batches are anything with ``graphs``, ``smiles`` and ``texts`` (:class:`.model.MolTextBatchLike`).
Only trainable parameters reach the optimizer (AdamW, weight decay on matrices only, warm-up +
cosine decay per step). Lightning checkpoints (for resuming) hold the same weights as a hub
checkpoint (:meth:`.model.MolCA.checkpoint_state_dict`), the optimizer state and the RNG state;
the frozen LM is rebuilt from its identity when the task is constructed. The best validation
checkpoint is restored into the trained task in place (:func:`load_best_weights`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch

from molfm.engine.fit import RngStateMixin
from molfm.engine.optim import adamw_warmup_cosine, no_decay_for_biases_and_norms
from molfm.hub import load_config, resolve_checkpoint
from molfm.systems.molca.fused import fuse_frozen_projections
from molfm.systems.molca.lora import LMTuning
from molfm.systems.molca.losses import in_batch_accuracy
from molfm.systems.molca.model import MolCA, MolCAConfig
from molfm.systems.molca.stage1 import MolCAStage1, Stage1Config

__all__ = [
    "Stage1Task",
    "MolCATask",
    "build_model",
    "compile_layers",
    "compiled_parts",
    "load_best_weights",
]

Stage = Literal["2", "finetune"]


class Stage1Task(RngStateMixin, L.LightningModule):
    """Train a :class:`~.stage1.MolCAStage1`: the summed losses, AdamW (MolCA: lr 1e-4, weight decay
    0.05), linear warm-up then cosine decay to ``min_lr_ratio`` x lr (MolCA: 1e-5).

    Logs ``train/{loss,contrastive,matching,captioning}``; validation logs the same under
    ``val/`` (negatives drawn from a generator seeded by the batch index, so validation never
    touches the training RNG) and ``val/acc_g2t``, ``val/acc_t2g``: top-1 retrieval accuracy
    within each batch.

    Pass a built model (``MolCAStage1.build(...)``) to start; ``model_config`` alone (what
    :meth:`load_from_checkpoint` passes) rebuilds the architecture for the checkpoint's weights.
    """

    def __init__(
        self,
        model: MolCAStage1 | None = None,
        *,
        model_config: dict[str, Any] | None = None,
        lr: float = 1e-4,
        weight_decay: float = 0.05,
        warmup_steps: int = 1000,
        max_steps: int = 10000,
        min_lr_ratio: float = 0.1,
    ) -> None:
        super().__init__()
        if model is None:
            if model_config is None:
                raise ValueError("Stage1Task needs a model or a model_config")
            model = MolCAStage1(Stage1Config(**model_config))
        self.model = model
        self.save_hyperparameters(ignore=["model"])
        self.hparams["model_config"] = dataclasses.asdict(model.config)

    def _log_all(self, prefix: str, out: dict[str, torch.Tensor], b: int) -> None:
        for name, value in out.items():
            if name != "similarity":
                self.log(f"{prefix}/{name}", value, prog_bar=name == "loss", batch_size=b)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        out = self.model.losses(batch)
        self._log_all("train", out, len(batch.texts))
        return out["loss"]

    def validation_step(self, batch, batch_idx: int) -> None:
        generator = torch.Generator().manual_seed(batch_idx)
        out = self.model.losses(batch, generator=generator, return_similarity=True)
        b = len(batch.texts)
        self._log_all("val", out, b)
        g2t, t2g = in_batch_accuracy(out["similarity"])
        self.log("val/acc_g2t", g2t, prog_bar=True, batch_size=b)
        self.log("val/acc_t2g", t2g, prog_bar=True, batch_size=b)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        return adamw_warmup_cosine(
            self.model.named_parameters(),
            lr=hp.lr,
            weight_decay=hp.weight_decay,
            warmup_steps=hp.warmup_steps,
            max_steps=hp.max_steps,
            min_lr_ratio=hp.min_lr_ratio,
        )

    def checkpoint_keys(self) -> set[str]:
        """The state keys a checkpoint holds: all of them (frozen MiniLM embeddings too)."""
        return set(self.state_dict())


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


def compiled_parts(model: MolCA) -> list[torch.nn.Module]:
    """What ``--compile`` compiles: each LM decoder layer, the LM's final norm and rotary
    embedding, each Q-Former layer and the graph encoder. Layers, not whole models: the 30 LM
    layers share one compiled graph, so compiling costs one layer's time, and a layer holds
    most of a step's small operations."""
    lm = model.lm
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    decoder = base.get_decoder()
    parts = list(decoder.layers)
    parts += [getattr(decoder, name) for name in ("norm", "rotary_emb") if hasattr(decoder, name)]
    if model.qformer is not None:
        parts += list(model.qformer.bert.encoder.layer)
    if model.graph_encoder is not None:
        parts.append(model.graph_encoder)
    return parts


def compile_layers(model: MolCA) -> None:
    """``torch.compile`` the parts of :func:`compiled_parts` in place, with dynamic shapes
    (sequence lengths and node counts vary by batch). Parameter names do not change, so
    checkpoints are the same as without it."""
    for part in compiled_parts(model):
        part.compile(dynamic=True)


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
    compile
        ``torch.compile`` each LM and Q-Former layer and the graph encoder
        (:func:`compile_layers`).
    fuse_projections
        One matrix product for each layer's frozen q/k/v and gate/up projections
        (:func:`~.fused.fuse_frozen_projections`; trainable ones stay apart).
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
        compile: bool = False,
        fuse_projections: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(model_config, stage=stage, init=init, seed=seed)
        if fuse_projections:
            fuse_frozen_projections(self.model.lm)
        if compile:
            compile_layers(self.model)
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

    def checkpoint_keys(self) -> set[str]:
        """The state keys a checkpoint holds: what trains (no frozen LM weights)."""
        return {f"model.{key}" for key in self.model.checkpoint_state_dict()}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        keep = self.checkpoint_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        expected, stored = self.checkpoint_keys(), set(checkpoint["state_dict"])
        if stored != expected:
            missing, extra = sorted(expected - stored), sorted(stored - expected)
            raise ValueError(
                f"the checkpoint does not fit this MolCA task: missing {missing[:3]}, "
                f"unexpected {extra[:3]} (was it started with other settings?)"
            )


def _head(graphs, n: int):
    """The first ``n`` molecules of a ``DenseBatch`` (padded tensors sliced, PyG batch split)."""
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


def load_best_weights(task: Stage1Task | MolCATask, path: str | Path) -> Stage1Task | MolCATask:
    """Load the weights of a ``.ckpt`` of ``task``'s run into ``task`` in place, and return it.

    A :class:`MolCATask` checkpoint holds only what trains (no frozen LM), so rebuilding the task
    from its hyperparameters would load the LM and the ``init`` checkpoint again; the trained
    task already has the frozen weights, and only the stored ones changed.

    Raises
    ------
    ValueError
        The checkpoint's keys are not the ones ``task`` stores.
    """
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    expected, stored = task.checkpoint_keys(), set(state)
    if stored != expected:
        missing, extra = sorted(expected - stored), sorted(stored - expected)
        raise ValueError(
            f"{path} does not fit this MolCA task: missing {missing[:3]}, unexpected {extra[:3]}"
        )
    task.load_state_dict(state, strict=False)
    return task
