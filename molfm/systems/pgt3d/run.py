"""A whole 3D-PGT pretraining run: 3D data -> cached geometry targets -> pretrain (resumable)
-> the encoder exported as ``<output_dir>/model`` (what ``--init`` takes), the task-weight
trajectory, and held-out scores.

Outputs in ``output_dir``::

    model/               the pretrained encoder (a hub checkpoint of type "gps", ...)
    task_weights.csv     step, weights, held-out energy loss at every search step
    metrics.json         held-out geometry MAEs, energy-probe MAE, throughput, target cost
    checkpoints/, logs/  resuming and CSV logs, as every molfm run
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd

from molfm.atomic import atomic_write_text, atomic_writer
from molfm.data.dense import split_fractions
from molfm.engine.fit import fit_resumable, start_or_resume
from molfm.engine.hardware import lightning_kwargs, seed_everything
from molfm.hub import save_pretrained
from molfm.nn.encoder import encoder_config as build_config
from molfm.systems.pgt3d.data import TARGETS, PretrainDataModule
from molfm.systems.pgt3d.pretrain import NUM_HS, PGTPretrainTask

__all__ = ["PGTPretrainConfig", "pretrain_3dpgt", "energy_reference"]

ENERGY_DEFAULTS = ("u0",)
"""Columns used as the total-energy surrogate when present (QM9's U0, eV)."""


@dataclass
class PGTPretrainConfig:
    """Everything a 3D-PGT pretraining run depends on (saved as ``train_config.json``)."""

    output_dir: str
    data: str | None = None
    data_path: str | None = None
    subset: str | None = None
    smiles_column: str = "smiles"
    conformers: bool = False  # RDKit conformers for SMILES-only data
    conformer_seed: int = 0
    encoder: str = "gps"
    preset: str = "small"
    encoder_overrides: dict[str, Any] = field(default_factory=dict)
    weighting: str = "auto"  # auto | equal | fixed
    task_weights: list[float] | None = None  # for fixed: bond_length, angle, dihedral
    energy_column: str | None = None  # default: u0 when the data has it
    search_every: int = 10
    search_step: float = 0.05
    search_batches: int = 16
    split_file: str | None = None  # train = pretraining molecules, val = held-out
    split_sizes: list[float] = field(default_factory=lambda: [0.95, 0.05, 0.0])
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.0
    warmup_steps: int = 100
    max_steps: int = 2000
    val_every_n_steps: int | None = None
    head_hidden: int = 128
    seed: int = 0
    data_seed: int = 0
    on_invalid: str = "error"
    num_workers: int = 0
    accelerator: str = "auto"
    devices: Any = 1
    precision: str = "32-true"
    progress: bool = True


class StepTimer(L.Callback):
    """Wall time of training batches (data loading excluded), for molecules per second."""

    def __init__(self) -> None:
        self.seconds, self.molecules, self._start = 0.0, 0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seconds += time.perf_counter() - self._start
        self.molecules += len(batch)


def energy_reference(
    x: np.ndarray, node_ptr: np.ndarray, energy: np.ndarray, indices: np.ndarray
) -> tuple[np.ndarray, float, float]:
    """Least-squares reference energies per heavy-atom type and per hydrogen.

    Parameters
    ----------
    x
        ``[total_atoms, F]`` OGB atom feature ids (column 0: element, column ``NUM_HS``: the
        atom's hydrogen count, which the heavy-atom graph does not hold as atoms).
    node_ptr, energy, indices
        Per-molecule atom offsets, energies, and the molecules to fit on.

    Returns
    -------
    The reference (one value per element id, then one per hydrogen) and the mean and std of the
    residual ``E - reference`` over ``indices`` (what the structure, not the atom count, explains).
    """
    n_types = int(x[:, 0].max()) + 1
    n_molecules = len(node_ptr) - 1
    molecule = np.repeat(np.arange(n_molecules), np.diff(node_ptr))
    counts = np.zeros((n_molecules, n_types + 1))
    np.add.at(counts, (molecule, x[:, 0]), 1.0)
    np.add.at(counts[:, -1], molecule, x[:, NUM_HS].astype(float))
    known = indices[np.isfinite(energy[indices])]
    coef, *_ = np.linalg.lstsq(counts[known], energy[known], rcond=None)
    residual = energy[known] - counts[known] @ coef
    std = float(residual.std())
    return coef, float(residual.mean()), std if std > 1e-8 else 1.0  # nothing left: no scaling


def prepare_pretrain_data(cfg: PGTPretrainConfig):
    """The prepared 3D dataset (cached), with RDKit conformers when asked."""
    from molfm.chem.conformers import ConformerOptions
    from molfm.data.prepare import prepare_dataset
    from molfm.data.sources import data_or_file_source

    energy = [cfg.energy_column] if cfg.energy_column and cfg.data_path is not None else None
    source = data_or_file_source(
        cfg.data, cfg.data_path, smiles_column=cfg.smiles_column, target_columns=energy
    )
    conformers = ConformerOptions(seed=cfg.conformer_seed) if cfg.conformers else None
    result = prepare_dataset(
        source, cfg.subset, on_invalid=cfg.on_invalid, progress=cfg.progress, conformers=conformers
    )
    return result.dataset


def pretrain_3dpgt(cfg: PGTPretrainConfig, callbacks: list | None = None) -> Path:
    """Run (or resume) 3D-PGT pretraining; return ``<output_dir>/model``."""
    hardware = lightning_kwargs(cfg.accelerator, cfg.devices, cfg.precision)
    encoder_config = dataclasses.asdict(
        build_config(cfg.encoder, cfg.preset, cfg.encoder_overrides)
    )
    if cfg.weighting == "fixed" and (cfg.task_weights is None or len(cfg.task_weights) != 3):
        raise ValueError("--weighting fixed needs --task-weights BOND,ANGLE,DIHEDRAL")
    dataset = prepare_pretrain_data(cfg)
    columns = dataset.manifest["columns"]
    energy_column = cfg.energy_column
    if energy_column is None:
        energy_column = next((c for c in ENERGY_DEFAULTS if c in columns), None)
    elif energy_column not in columns:
        raise ValueError(f"--energy-column {energy_column!r} is not in the data: {columns}")
    if cfg.weighting == "auto" and energy_column is None:
        raise ValueError(
            "--weighting auto searches the task weights against a total energy: give "
            "--energy-column, or use --weighting equal"
        )
    out = Path(cfg.output_dir)
    start_or_resume(out, cfg)
    seed_everything(cfg.seed)
    data = PretrainDataModule(
        dataset,
        target_columns=[energy_column] if energy_column else [],
        split="random",
        split_sizes=split_fractions(cfg.split_sizes, dataset.num_molecules),
        split_file=cfg.split_file,
        data_seed=cfg.data_seed,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        energy_column=energy_column,
    )
    data.setup()
    store, train = data.store, data.split.train
    batches_per_epoch = len(train) // cfg.batch_size
    if batches_per_epoch == 0 or len(data.split.val) == 0:
        raise ValueError(
            f"the split leaves {len(train)} pretraining and {len(data.split.val)} held-out "
            f"molecules; a run needs at least one batch of {cfg.batch_size} and a held-out set"
        )
    stats = _target_stats(data, train)
    reference, energy_stats = None, (0.0, 1.0)
    if energy_column is not None:
        coef, mean, std = energy_reference(store.x, store.node_ptr, store.y[:, 0], train)
        reference, energy_stats = [float(c) for c in coef], (mean, std)
    task = PGTPretrainTask(
        cfg.encoder,
        encoder_config,
        stats,
        energy_reference=reference,
        energy_stats=energy_stats,
        weighting=cfg.weighting,
        initial_weights=cfg.task_weights,
        search_every=cfg.search_every,
        search_step=cfg.search_step,
        head_hidden=cfg.head_hidden,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        max_steps=cfg.max_steps,
    )
    # the weight search's held-out batches: the first ones of the val loader, fixed for the run
    loader = data.val_dataloader()
    task.search_batches = [b for _, b in zip(range(cfg.search_batches), loader, strict=False)]
    timer = StepTimer()
    trainer = fit_resumable(
        task,
        data,
        out,
        max_steps=cfg.max_steps,
        val_every_n_steps=cfg.val_every_n_steps or batches_per_epoch,
        batches_per_epoch=batches_per_epoch,
        progress=cfg.progress,
        callbacks=[timer, *(callbacks or [])],
        **hardware,
    )
    model_dir = out / "model"
    meta = {
        "system": "3d-pgt",
        "data": cfg.data or cfg.data_path,
        "steps": int(trainer.global_step),
        "weighting": cfg.weighting,
        "final_task_weights": task.task_weights.as_dict(),
        "energy_column": energy_column,
    }
    save_pretrained(task.encoder, model_dir, extra={"pretraining": meta})
    _write_trajectory(task, out / "task_weights.csv")
    scores = trainer.validate(task, datamodule=data, verbose=False)[0]
    report = {
        "heldout": {k.removeprefix("val/"): float(v) for k, v in scores.items()},
        "n_pretrain": int(len(train)),
        "n_heldout": int(len(data.split.val)),
        "geometry_targets_seconds_per_molecule": data.targets.seconds_per_molecule,
        "train_molecules_per_second": timer.molecules / timer.seconds if timer.seconds else None,
        **meta,
    }
    atomic_write_text(out / "metrics.json", json.dumps(report, indent=2))
    return model_dir


def _target_stats(data: PretrainDataModule, train: np.ndarray) -> dict[str, tuple[float, float]]:
    """Mean/std of each geometry target over the training molecules' atoms or bonds."""
    store, targets = data.store, data.targets
    node_counts, bond_counts = np.diff(store.node_ptr), np.diff(store.edge_ptr) // 2
    in_train = np.zeros(len(store), dtype=bool)
    in_train[train] = True
    node_mask, bond_mask = np.repeat(in_train, node_counts), np.repeat(in_train, bond_counts)
    out = {}
    for name in TARGETS:
        values = getattr(targets, name)
        values = values[node_mask if name == "angle_cos_sum" else bond_mask]
        out[name] = (float(values.mean()), float(values.std() or 1.0))
    return out


def _write_trajectory(task: PGTPretrainTask, path: Path) -> None:
    frame = pd.DataFrame(task.trajectory, columns=["step", *TARGETS, "heldout_energy_mse"])
    with atomic_writer(path) as tmp:
        frame.to_csv(tmp, index=False)
