"""A whole property-prediction run: data -> split -> train (resumable) -> best model -> test report.

:func:`train_property` prepares the data once into the parquet cache (a registered data set or a
user CSV/SDF), splits it with a saved seeded split, standardizes regression targets on the
training split, fits a :class:`~molfm.tasks.property.PropertyModel` through the shared engine,
exports the best validation checkpoint as ``<output_dir>/model`` and writes
``test_predictions.csv``, ``metrics.json`` and a parity plot (regression) or ROC curve
(classification) for the test split.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch

from molfm.atomic import atomic_write_text, atomic_writer
from molfm.data.dense import DenseDataModule, PairStructure, split_fractions
from molfm.engine.fit import fit_resumable, start_or_resume
from molfm.engine.hardware import lightning_kwargs, seed_everything
from molfm.eval.property import classification_metrics, parity_plot, regression_metrics, roc_plot
from molfm.hub import get_model_class, save_pretrained
from molfm.nn.encoder import encoder_config
from molfm.tasks.property import LOSSES, PropertyModel, PropertyTask

__all__ = ["PropertyTrainConfig", "train_property", "prepare_property_data", "evaluate_split"]

EV_TO_MEV = 1000.0


@dataclass
class PropertyTrainConfig:
    """Everything a property run depends on (saved as ``train_config.json``)."""

    output_dir: str
    model: str = "transformer-m"  # a registered encoder type
    init: str | None = None  # start the encoder from a checkpoint (an encoder or property model)
    data: str | None = None  # a registered data set
    data_path: str | None = None  # or a user CSV/SDF
    subset: str | None = None
    smiles_column: str = "smiles"
    target_columns: list[str] = field(default_factory=list)
    task: str | None = None  # regression | classification (default: from the data)
    encoder_overrides: dict[str, Any] = field(default_factory=dict)
    preset: str = "small"
    mode: str | None = None  # training mode for Transformer-M: 2d | 3d | 2d3d | None (sampled)
    eval_mode: str | None = None  # None: every channel with data
    loss: str | None = None  # mae | mse | bce (default: mae / bce)
    auxiliary_weight: float = 0.0  # Transformer-M 3D denoising
    split: str = "random"
    split_sizes: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    split_file: str | None = None  # a saved split (train/val/test positions) instead
    limit_train: int | None = None
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.0
    warmup_steps: int = 100
    max_steps: int = 2000
    val_every_n_steps: int | None = None  # default: once per epoch
    head_hidden: int = 256
    dropout: float = 0.0
    seed: int = 0
    data_seed: int = 0
    on_invalid: str = "error"
    num_workers: int = 0
    accelerator: str = "auto"
    devices: Any = 1
    precision: str = "32-true"
    progress: bool = True


class BestCheckpoint(L.pytorch.callbacks.ModelCheckpoint):
    """Keeps the best validation checkpoint, and remembers it across a kill.

    ``last.ckpt`` is written after a step's training batch, before that step's validation, so
    the best score restored from it can be older than ``best.ckpt`` on disk. This callback also
    writes its best score to ``best.json`` whenever it saves, and a resumed run takes whichever
    is better, so it chooses the same best model as an uninterrupted run.
    """

    def _record(self) -> Path:
        return Path(self.dirpath) / "best.json"

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if trainer.is_global_zero and self.best_model_score is not None:
            state = {"score": float(self.best_model_score), "path": self.best_model_path}
            atomic_write_text(self._record(), json.dumps(state))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if self.dirpath is not None and self._record().exists():
            stored = json.loads(self._record().read_text())
            if self.best_model_score is None or stored["score"] < float(self.best_model_score):
                self.best_model_score = torch.tensor(stored["score"])
                self.best_model_path = stored["path"]
                self.best_k_models = {stored["path"]: self.best_model_score}
                self.kth_best_model_path = stored["path"]
                self.kth_value = self.best_model_score


def prepare_property_data(cfg: PropertyTrainConfig):
    """The prepared dataset (featurized once, cached) for ``cfg.data`` or ``cfg.data_path``."""
    from molfm.data.prepare import prepare_dataset
    from molfm.data.sources import data_or_file_source

    source = data_or_file_source(
        cfg.data,
        cfg.data_path,
        smiles_column=cfg.smiles_column,
        target_columns=cfg.target_columns or None,
    )
    result = prepare_dataset(source, cfg.subset, on_invalid=cfg.on_invalid, progress=cfg.progress)
    return result.dataset


def _task_type(cfg: PropertyTrainConfig, manifest: dict[str, Any]) -> str:
    if cfg.task is not None:
        return cfg.task
    task = str(manifest.get("task", "regression"))
    return "classification" if "class" in task else "regression"


def _encoder_config(cfg: PropertyTrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(encoder_config(cfg.model, cfg.preset, cfg.encoder_overrides))


def pair_structure(encoder_type: str) -> type[PairStructure] | None:
    """The per-pair inputs an encoder reads (graph transformers with structural biases, e.g.
    Transformer-M), or None when it reads only the sparse graph (GINE, GPS)."""
    return getattr(get_model_class(encoder_type), "pair_structure", None)


def _domain(store, indices: np.ndarray) -> dict[str, Any]:
    """Atomic-number feature ids and the largest molecule seen in training."""
    counts = np.diff(store.node_ptr)
    in_train = np.zeros(len(counts), dtype=bool)
    in_train[indices] = True
    atoms = store.x[np.repeat(in_train, counts), 0]  # atoms of the training molecules
    return {
        "atomic_number_ids": sorted(int(v) for v in np.unique(atoms)),
        "max_atoms": int(counts[indices].max()),
        "n_train": int(len(indices)),
    }


def train_property(cfg: PropertyTrainConfig, callbacks: list | None = None) -> Path:
    """Run (or resume) a property-prediction run; return ``<output_dir>/model``."""
    hardware = lightning_kwargs(cfg.accelerator, cfg.devices, cfg.precision)
    encoder_config = _encoder_config(cfg)  # bad presets/overrides fail before any data work
    if cfg.init is not None:
        from molfm.hub import load_config, resolve_checkpoint

        stored = load_config(resolve_checkpoint(cfg.init))
        is_property = stored["model_type"] == "property"
        stored_type = (
            stored["model_config"]["encoder_type"] if is_property else stored["model_type"]
        )
        if stored_type != cfg.model:
            raise ValueError(
                f"--init {cfg.init} holds a {stored_type} encoder, but --model is {cfg.model}"
            )
        # --init fixes the encoder's sizes
        encoder_config = dict(
            stored["model_config"]["encoder_config"] if is_property else stored["model_config"]
        )
    dataset = prepare_property_data(cfg)
    manifest = dataset.manifest
    targets = list(cfg.target_columns) or list(manifest["targets"])
    missing = [t for t in targets if t not in manifest["columns"]]
    if missing or not targets:
        raise ValueError(
            f"target columns {missing or targets} not in the data: {manifest['targets']}"
        )
    task_type = _task_type(cfg, manifest)
    loss = cfg.loss or LOSSES[task_type][0]
    out = Path(cfg.output_dir)
    start_or_resume(out, cfg)
    seed_everything(cfg.seed)
    n_molecules = dataset.num_molecules
    data = DenseDataModule(
        dataset,
        target_columns=targets,
        split=cfg.split,
        split_sizes=split_fractions(cfg.split_sizes, n_molecules),
        data_seed=cfg.data_seed,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        limit_train=cfg.limit_train,
        split_file=cfg.split_file,
        pair_structure=pair_structure(cfg.model),
    )
    data.setup()
    train_index = data.indices("train")
    batches_per_epoch = len(train_index) // cfg.batch_size  # full batches only (exact resume)
    if batches_per_epoch == 0 or len(data.split.val) == 0:
        raise ValueError(
            f"the split leaves {len(train_index)} training and {len(data.split.val)} validation "
            f"molecules; a run needs at least one batch of {cfg.batch_size} and a validation set"
        )
    y_train = data.store.y[train_index]
    mean = np.nanmean(y_train, axis=0) if task_type == "regression" else np.zeros(len(targets))
    std = np.nanstd(y_train, axis=0) if task_type == "regression" else np.ones(len(targets))
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    model_config = {
        "encoder_type": cfg.model,
        "encoder_config": encoder_config,
        "task": task_type,
        "targets": targets,
        "head_hidden": cfg.head_hidden,
        "dropout": cfg.dropout,
        "mean": [float(v) for v in np.nan_to_num(mean)],
        "std": [float(v) for v in std],
        "units": {t: manifest.get("units", {}).get(t, "") for t in targets},
        "domain": _domain(data.store, train_index),
    }
    task = PropertyTask(
        model_config,
        loss=loss,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        max_steps=cfg.max_steps,
        train_mode=cfg.mode,
        eval_mode=cfg.eval_mode,
        auxiliary_weight=cfg.auxiliary_weight,
    )
    if cfg.init is not None and not (out / "checkpoints" / "last.ckpt").exists():
        load_encoder_weights(task.model, cfg.init)
    best = BestCheckpoint(
        dirpath=out / "checkpoints", filename="best", monitor="val/loss", mode="min", save_top_k=1
    )
    val_every = cfg.val_every_n_steps or batches_per_epoch
    trainer = fit_resumable(
        task,
        data,
        out,
        max_steps=cfg.max_steps,
        val_every_n_steps=val_every,
        batches_per_epoch=batches_per_epoch,
        progress=cfg.progress,
        callbacks=[best, *(callbacks or [])],
        **hardware,
    )
    if best.best_model_path:
        task = PropertyTask.load_from_checkpoint(best.best_model_path, map_location="cpu")
    model_dir = out / "model"
    meta = {
        "data": cfg.data or cfg.data_path,
        "split": cfg.split_file or cfg.split,
        "steps": int(trainer.global_step),
        "best_val_loss": float(best.best_model_score)
        if best.best_model_score is not None
        else None,
    }
    save_pretrained(task.model, model_dir, extra={"training": meta})
    report = evaluate_split(task.model, data, "test", out, mode=cfg.eval_mode)
    report["training"] = meta
    atomic_write_text(out / "metrics.json", json.dumps(report, indent=2))
    return model_dir


def load_encoder_weights(model: PropertyModel, init: str | Path) -> None:
    """Copy a pretrained encoder into ``model.encoder`` (from an encoder checkpoint or from a
    property model's encoder); the encoder types and sizes must match."""
    from molfm.hub import from_pretrained, resolve_checkpoint

    source = from_pretrained(resolve_checkpoint(init))
    encoder = source.encoder if isinstance(source, PropertyModel) else source
    wanted = model.config.encoder_type
    if getattr(type(encoder), "model_type", None) != wanted:
        raise ValueError(
            f"--init {init} holds a {getattr(type(encoder), 'model_type', '?')} encoder, "
            f"but --model is {wanted}"
        )
    if dataclasses.asdict(encoder.config) != dataclasses.asdict(model.encoder.config):
        raise ValueError(f"--init {init}: its encoder sizes differ from the configured ones")
    model.encoder.load_state_dict(encoder.state_dict())


@torch.no_grad()
def predict_loader(model: PropertyModel, loader, mode: str | None = None) -> np.ndarray:
    model.eval()
    device = next(model.parameters()).device
    return np.concatenate(
        [model.predict(batch.to(device), mode=mode).cpu().numpy() for batch in loader]
    )


def evaluate_split(
    model: PropertyModel, data: DenseDataModule, part: str, out: Path, mode: str | None = None
) -> dict[str, Any]:
    """Predict ``part`` of the split; write ``<part>_predictions.csv`` and a plot; return metrics
    (energies in eV are also reported in meV, as the field does)."""
    loader = getattr(data, f"{part}_dataloader")()
    index = data.indices(part)
    pred = predict_loader(model, loader, mode)
    true = data.store.y[index]
    targets, units = model.config.targets, model.config.units
    frame = pd.DataFrame(
        {"row": data.store.rows[index], "smiles": [data.store.smiles[i] for i in index]}
    )
    for t, name in enumerate(targets):
        frame[name] = true[:, t]
        frame[f"{name}_pred"] = pred[:, t]
    with atomic_writer(out / f"{part}_predictions.csv") as tmp:
        frame.to_csv(tmp, index=False)
    if model.config.task == "regression":
        metrics = regression_metrics(true, pred, targets)
        for name in targets:
            if units.get(name) == "eV" and not math.isnan(metrics[name]["mae"]):
                metrics[name]["mae_meV"] = metrics[name]["mae"] * EV_TO_MEV
        parity_plot(true, pred, targets, out / f"{part}_parity.png", units)
    else:
        metrics = classification_metrics(true, pred, targets)
        roc_plot(true, pred, targets, out / f"{part}_roc.png")
    return {"split": part, "n": int(len(index)), "mode": mode or "available", "metrics": metrics}
