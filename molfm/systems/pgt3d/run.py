"""A whole 3D-PGT pretraining run: 3D data -> cached geometry targets -> pretrain (resumable)
-> the encoder of the best validation checkpoint exported as ``<output_dir>/model`` (what
``--init`` takes), the task-weight trajectory, and held-out scores.

The run follows the engine's skeleton (:func:`molfm.engine.run.fit_and_export`). Outputs in
``output_dir``::

    model/               the pretrained encoder (a hub checkpoint of type "gps", ...)
    task_weights.csv     step, weights, held-out energy loss at every search step
    metrics.json         held-out geometry MAEs, energy-probe MAE, throughput, target cost
    checkpoints/, logs/  resuming and CSV logs, as every molfm run
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd

from molfm.atomic import atomic_writer
from molfm.data.dense import split_fractions
from molfm.engine.fit import start_or_resume
from molfm.engine.hardware import one_process, run_hardware, seed_everything
from molfm.engine.options import check_options
from molfm.engine.run import fit_and_export
from molfm.hub import save_pretrained
from molfm.nn.encoder import encoder_config as build_config
from molfm.systems.pgt3d.config import PGTPretrainConfig, parse_task_weights
from molfm.systems.pgt3d.data import (
    TARGETS,
    PretrainDataModule,
    energy_reference,
    target_stats,
)
from molfm.systems.pgt3d.task import PGTPretrainTask

__all__ = ["check_pretrain_config", "prepare_pretrain_data", "pretrain_3dpgt", "StepTimer"]

ENERGY_DEFAULTS = ("u0",)
"""Columns used as the total-energy surrogate when present (QM9's U0, eV)."""


class StepTimer(L.Callback):
    """Wall time of training batches (data loading excluded), for molecules per second."""

    def __init__(self) -> None:
        self.seconds, self.molecules, self._start = 0.0, 0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seconds += time.perf_counter() - self._start
        self.molecules += len(batch)


def check_pretrain_config(cfg: PGTPretrainConfig) -> dict[str, Any]:
    """Refuse settings that cannot run, before any data is read or anything is written.

    Returns the checked Lightning ``accelerator``/``devices``/``precision`` arguments.

    Raises
    ------
    ValueError
        One line naming the setting (a :class:`~molfm.engine.hardware.HardwareError` for
        hardware this machine does not have).
    """
    check_options(cfg)  # the ranges and choices declared on the fields
    if cfg.data is None and cfg.data_path is None:
        raise ValueError("give --data NAME or --data-path FILE")
    if cfg.weighting == "fixed" and cfg.task_weights is None:
        raise ValueError("--weighting fixed needs --task-weights BOND,ANGLE,DIHEDRAL")
    if cfg.task_weights is not None:
        if cfg.weighting != "fixed":
            raise ValueError("--task-weights goes with --weighting fixed")
        parse_task_weights(cfg.task_weights)
    hardware = run_hardware(cfg)
    encoder = build_config(cfg.encoder, cfg.preset, cfg.encoder_overrides)  # its own checks
    if cfg.heads == "official" and getattr(encoder, "local", None) != "gatedgcn_edges":
        raise ValueError(
            "--heads official reads edge states: use --encoder gps --preset paper (the "
            "edge-stream GatedGCN)"
        )
    return hardware


def prepare_pretrain_data(cfg: PGTPretrainConfig):
    """The prepared 3D dataset (cached), with RDKit conformers when asked."""
    from molfm.chem.conformers import ConformerOptions
    from molfm.data.prepare import prepare_dataset
    from molfm.data.sources import data_or_file_source
    from molfm.data.sources.base import data_sets_with

    energy = [cfg.energy_column] if cfg.energy_column and cfg.data_path is not None else None
    source = data_or_file_source(
        cfg.data, cfg.data_path, smiles_column=cfg.smiles_column, target_columns=energy
    )
    if not cfg.conformers:  # refused here, not after preparing the whole data set
        names = " / ".join(data_sets_with("coordinates"))
        hint = f"use --data {names} or an SDF with 3D coordinates, or add --conformers to generate them"
        source.check_coordinates(cfg.subset, "3D-PGT pretraining", hint)
    conformers = ConformerOptions(seed=cfg.conformer_seed) if cfg.conformers else None
    result = prepare_dataset(
        source, cfg.subset, on_invalid=cfg.on_invalid, progress=cfg.progress, conformers=conformers
    )
    return result.dataset


def _energy_column(cfg: PGTPretrainConfig, columns: list[str]) -> str | None:
    """The energy the weight search follows: ``energy_column``, else u0 when the data has it."""
    energy_column = cfg.energy_column
    if energy_column is None:
        energy_column = next((c for c in ENERGY_DEFAULTS if c in columns), None)
    elif energy_column not in columns:
        raise ValueError(f"--energy-column {energy_column!r} is not in the data: {columns}")
    if cfg.weighting in ("auto", "official") and energy_column is None:
        need = "searches the task weights against" if cfg.weighting == "auto" else "trains on"
        raise ValueError(
            f"--weighting {cfg.weighting} {need} a total energy: give --energy-column, or use "
            "--weighting equal"
        )
    return energy_column


def pretrain_3dpgt(cfg: PGTPretrainConfig, callbacks: list | None = None) -> Path:
    """Run (or resume) 3D-PGT pretraining; return ``<output_dir>/model``.

    Raises
    ------
    ValueError
        Before anything is written: settings that cannot run (:func:`check_pretrain_config`),
        data that cannot be read or has no energy for the weight search, or a split without a
        training batch or a held-out set. Also when ``output_dir`` holds a run started with
        other settings.
    """
    hardware = check_pretrain_config(cfg)
    encoder_config = dataclasses.asdict(
        build_config(cfg.encoder, cfg.preset, cfg.encoder_overrides)
    )
    dataset = prepare_pretrain_data(cfg)
    energy_column = _energy_column(cfg, dataset.manifest["columns"])
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
    reference, energy_stats = None, (0.0, 1.0)
    if energy_column is not None:
        coef, mean, std = energy_reference(store.x, store.node_ptr, store.y[:, 0], train)
        reference, energy_stats = [float(c) for c in coef], (mean, std)
    task = PGTPretrainTask(
        cfg.encoder,
        encoder_config,
        target_stats(data, train),
        energy_reference=reference,
        energy_stats=energy_stats,
        weighting=cfg.weighting,
        initial_weights=cfg.task_weights,
        search_every=cfg.search_every,
        search_step=cfg.search_step,
        head_hidden=cfg.head_hidden,
        heads=cfg.heads,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        max_steps=cfg.max_steps,
    )
    # the weight search's held-out batches: the first ones of the val loader, fixed for the run
    loader = data.val_dataloader()
    task.search_batches = [b for _, b in zip(range(cfg.search_batches), loader, strict=False)]
    timer = StepTimer()
    pretraining: dict[str, Any] = {}

    def export(best: PGTPretrainTask, training: dict[str, Any]) -> Path:
        # the best checkpoint's encoder; the weights and their trajectory of the whole run
        pretraining.update(
            system="3d-pgt",
            data=cfg.data or cfg.data_path,
            steps=training["steps"],
            best_val_loss=training["best_val_loss"],
            weighting=cfg.weighting,
            final_task_weights=task.task_weights.as_dict(),
            energy_column=energy_column,
        )
        model_dir = save_pretrained(best.encoder, out / "model", extra={"pretraining": pretraining})
        _write_trajectory(task, out / "task_weights.csv")
        return model_dir

    def evaluate(best: PGTPretrainTask) -> dict[str, Any]:
        trainer = L.Trainer(
            **one_process(hardware),  # rank 0 alone after a multi-process fit
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=cfg.progress,
        )
        scores = trainer.validate(best, datamodule=data, verbose=False)[0]
        seconds = timer.seconds
        return {
            "heldout": {k.removeprefix("val/"): float(v) for k, v in scores.items()},
            "n_pretrain": int(len(train)),
            "n_heldout": int(len(data.split.val)),
            "geometry_targets_seconds_per_molecule": data.targets.seconds_per_molecule,
            "train_molecules_per_second": timer.molecules / seconds if seconds else None,
            **pretraining,
        }

    return fit_and_export(
        task,
        data,
        out,
        export=export,
        evaluate=evaluate,
        max_steps=cfg.max_steps,
        val_every_n_steps=cfg.val_every_n_steps or batches_per_epoch,
        batches_per_epoch=batches_per_epoch,
        hardware=hardware,
        progress=cfg.progress,
        callbacks=[timer, *(callbacks or [])],
    )


def _write_trajectory(task: PGTPretrainTask, path: Path) -> None:
    frame = pd.DataFrame(task.trajectory, columns=["step", *TARGETS, "heldout_energy_mse"])
    with atomic_writer(path) as tmp:
        frame.to_csv(tmp, index=False)
