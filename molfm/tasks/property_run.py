"""A whole property-prediction run: data -> split -> train (resumable) -> best model -> test report.

:func:`train_property` prepares the data once into the parquet cache (a registered data set or a
user CSV/SDF), splits it with a saved seeded split, standardizes regression targets on the
training split, fits a :class:`~molfm.tasks.property.PropertyModel` through the engine's run
skeleton (:func:`molfm.engine.run.fit_and_export`), exports the best validation checkpoint as
``<output_dir>/model`` and writes ``test_predictions.csv``, ``metrics.json`` and a parity plot
(regression) or ROC curve (classification) for the test split. Its config is
:class:`molfm.tasks.config.PropertyTrainConfig` (the flags of ``molfm train property``).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from molfm.atomic import atomic_writer
from molfm.data.dense import DenseDataModule, PairStructure, split_fractions
from molfm.engine.fit import start_or_resume
from molfm.engine.hardware import run_hardware, seed_everything
from molfm.engine.options import check_options
from molfm.engine.run import fit_and_export
from molfm.eval.property import classification_metrics, parity_plot, regression_metrics, roc_plot
from molfm.hub import get_model_class, save_pretrained
from molfm.nn.encoder import encoder_config
from molfm.tasks.config import PropertyTrainConfig, encoder_mode
from molfm.tasks.property import LOSSES, PropertyModel, PropertyTask

__all__ = ["train_property", "prepare_property_data", "evaluate_split"]

EV_TO_MEV = 1000.0


def prepare_property_data(cfg: PropertyTrainConfig):
    """The prepared dataset (featurized once, cached) for ``cfg.data``: a registered data set's
    name or a user CSV/SDF's path (``--data-path`` is folded into ``cfg.data``)."""
    from molfm.data.prepare import prepare_dataset
    from molfm.data.sources import data_or_file_source

    source = data_or_file_source(
        None if cfg.data_path is not None else cfg.data,  # folded: data is then the path too
        cfg.data_path,
        smiles_column=cfg.smiles_column,
        target_columns=cfg.target_columns or None,
    )
    if not cfg.target_columns:  # refused here, not after featurizing the whole file
        source.check_targets(cfg.subset)
    _check_coordinates(cfg, source)
    result = prepare_dataset(source, cfg.subset, on_invalid=cfg.on_invalid, progress=cfg.progress)
    return result.dataset


def _check_coordinates(cfg: PropertyTrainConfig, source) -> None:
    """A 3D mode of an encoder with a 3D channel needs coordinates for every molecule: refuse
    data without them before preparing it (the encoder would fail only at its first batch)."""
    from molfm.data.sources.base import data_sets_with
    from molfm.tasks.predict import has_3d_channel

    if not has_3d_channel(get_model_class(cfg.model)):
        return
    for flag, mode in (
        ("--mode", encoder_mode(cfg.mode)),
        ("--eval-mode", encoder_mode(cfg.eval_mode)),
    ):
        if mode is not None and "3d" in mode:
            names = " / ".join(data_sets_with("coordinates"))
            hint = f"use {flag} 2d, or data with them (--data {names}, an SDF with 3D coordinates)"
            source.check_coordinates(cfg.subset, f"{flag} {mode}", hint)


def _task_type(cfg: PropertyTrainConfig, manifest: dict[str, Any]) -> str:
    if cfg.task is not None:
        return cfg.task
    task = str(manifest.get("task", "regression"))
    return "classification" if "class" in task else "regression"


def _encoder_config(cfg: PropertyTrainConfig) -> dict[str, Any]:
    """The encoder's sizes: the preset and overrides, or those of ``--init`` (which fixes them)."""
    config = dataclasses.asdict(encoder_config(cfg.model, cfg.preset, cfg.encoder_overrides))
    if cfg.init is None:
        return config
    from molfm.hub import load_config, resolve_checkpoint

    stored = load_config(resolve_checkpoint(cfg.init))
    is_property = stored["model_type"] == "property"
    stored_type = stored["model_config"]["encoder_type"] if is_property else stored["model_type"]
    if stored_type != cfg.model:
        raise ValueError(
            f"--init {cfg.init} holds a {stored_type} encoder, but --model is {cfg.model}"
        )
    return dict(stored["model_config"]["encoder_config"] if is_property else stored["model_config"])


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


def _scaler(y_train: np.ndarray, task_type: str) -> dict[str, list[float]]:
    """Regression targets are standardized with the training split's mean and deviation."""
    n = y_train.shape[1]
    mean = np.nanmean(y_train, axis=0) if task_type == "regression" else np.zeros(n)
    std = np.nanstd(y_train, axis=0) if task_type == "regression" else np.ones(n)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return {"mean": [float(v) for v in np.nan_to_num(mean)], "std": [float(v) for v in std]}


def train_property(cfg: PropertyTrainConfig, callbacks: list | None = None) -> Path:
    """Run (or resume) a property-prediction run; return ``<output_dir>/model``."""
    check_options(cfg)  # the ranges and choices declared on the fields
    eval_mode = encoder_mode(cfg.eval_mode)
    hardware = run_hardware(cfg)
    encoder_config = _encoder_config(cfg)  # bad presets/overrides fail before any data work
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
    model_config = {
        "encoder_type": cfg.model,
        "encoder_config": encoder_config,
        "task": task_type,
        "targets": targets,
        "head_hidden": cfg.head_hidden,
        "dropout": cfg.dropout,
        **_scaler(data.store.y[train_index], task_type),
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
        train_mode=encoder_mode(cfg.mode),
        eval_mode=eval_mode,
        auxiliary_weight=cfg.auxiliary_weight,
    )
    if cfg.init is not None and not (out / "checkpoints" / "last.ckpt").exists():
        load_encoder_weights(task.model, cfg.init)

    def export(best: PropertyTask, meta: dict[str, Any]) -> Path:
        return save_pretrained(best.model, out / "model", extra={"training": meta})

    return fit_and_export(
        task,
        data,
        out,
        export=export,
        evaluate=lambda best: evaluate_split(best.model, data, "test", out, mode=eval_mode),
        record={"data": cfg.data, "split": cfg.split_file or cfg.split},
        max_steps=cfg.max_steps,
        val_every_n_steps=cfg.val_every_n_steps or batches_per_epoch,
        batches_per_epoch=batches_per_epoch,
        hardware=hardware,
        progress=cfg.progress,
        callbacks=callbacks,
    )


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
