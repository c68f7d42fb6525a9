"""Causal-LM pretraining of GP-MoLFormer on SMILES, one molecule per row.

The pretraining objective's own code: its model sizes (:data:`PRESETS`), its checks, its data
(the train/validation split of a SMILES source, the vocabulary built from the training set) and
its run, :func:`train_causal_lm`: fit :class:`~molfm.systems.gp_molformer.task.CausalLMTask`
through :func:`molfm.engine.run.fit_and_export` (resuming from ``checkpoints/last.ckpt`` when
it exists) and export the molfm checkpoint directory ``<output_dir>/model``.
:mod:`molfm.systems.gp_molformer.run` lists it with the system's other entry points.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import lightning as L
import torch

from molfm.engine.fit import start_or_resume
from molfm.engine.hardware import run_hardware
from molfm.engine.options import check_options
from molfm.engine.run import fit_and_export
from molfm.hub import save_pretrained
from molfm.systems.gp_molformer.config import LMTrainConfig
from molfm.systems.gp_molformer.data import EncodedSmiles, SmilesDataModule
from molfm.systems.gp_molformer.model import GPMoLFormerConfig
from molfm.systems.gp_molformer.task import CausalLMTask
from molfm.systems.gp_molformer.tokenizer import SmilesTokenizer

__all__ = [
    "PRESETS",
    "check_train_config",
    "check_trainable",
    "train_causal_lm",
    "load_smiles",
    "export_checkpoint",
]


PRESETS = {"small": GPMoLFormerConfig.small, "paper": GPMoLFormerConfig.paper}
"""Model sizes of ``LMTrainConfig.preset``: ``small`` (CPU-sized) and ``paper`` (46.8M)."""


def check_train_config(cfg: LMTrainConfig) -> dict[str, Any]:
    """Refuse settings that cannot run, before any data is read or anything is written.

    Returns the checked Lightning ``accelerator``/``devices``/``precision`` arguments.

    Raises
    ------
    ValueError
        One line naming the setting and its value (a :class:`~molfm.engine.hardware.HardwareError`
        for hardware this machine does not have).
    """
    check_options(cfg)  # the ranges and choices declared on the fields
    known = {f.name for f in dataclasses.fields(GPMoLFormerConfig)}
    unknown = sorted(set(cfg.model_overrides) - known)
    if unknown:
        raise ValueError(f"model_overrides: unknown keys {unknown}; known: {sorted(known)}")
    # the model's own checks (e.g. heads that do not divide the width), with a stand-in vocabulary
    PRESETS[cfg.preset](vocab_size=8, max_length=cfg.max_length, **cfg.model_overrides)
    return run_hardware(cfg)


def check_trainable(n_rows: int, batch_size: int, what: str = "training molecules") -> None:
    """Raise ``ValueError`` when ``n_rows`` fill no full batch: training drops the last partial
    batch of an epoch, so such a run would train 0 steps and export an untrained model."""
    if n_rows // batch_size < 1:
        raise ValueError(
            f"{n_rows} {what} fill no batch of {batch_size} (the last partial batch is "
            "dropped), so the run would train 0 steps: lower batch_size or use more data"
        )


def load_smiles(data: str, smiles_column: str = "smiles", subset: str | None = None) -> list[str]:
    """SMILES of a registered source (``moses``) or of a CSV file's column."""
    from molfm.data.sources import resolve_source

    frame = resolve_source(data, smiles_column=smiles_column).load(subset)
    if frame.empty:
        raise ValueError(f"{data} ({subset or 'default subset'}) holds no rows")
    return frame["smiles"].tolist()


def _split_data(cfg: LMTrainConfig) -> tuple[list[str], list[str]]:
    import numpy as np

    rng = np.random.default_rng(cfg.data_seed)
    data, val_data = cfg.data, cfg.val_data
    if data == "moses":
        train = load_smiles("moses", subset="train")
        val = load_smiles(val_data or "moses", subset="test" if not val_data else None)
    else:
        smiles = load_smiles(data, cfg.smiles_column)
        order = rng.permutation(len(smiles))
        n_val = min(cfg.val_size, max(1, len(smiles) // 10))
        train = [smiles[i] for i in order[n_val:]]
        val = [smiles[i] for i in order[:n_val]]
        if val_data:
            val = load_smiles(val_data, cfg.smiles_column)
    if cfg.limit_train is not None:
        train = train[: cfg.limit_train]
    if len(val) > cfg.val_size:
        val = [val[i] for i in np.sort(rng.choice(len(val), cfg.val_size, replace=False))]
    return train, val


def train_causal_lm(cfg: LMTrainConfig, callbacks: list | None = None) -> Path:
    """Run (or resume) a GP-MoLFormer pretraining run; return the exported checkpoint dir.

    A run directory that already holds ``checkpoints/last.ckpt`` is resumed from it, with
    the same vocabulary, data order, optimizer, scheduler and RNG state.

    Raises
    ------
    ValueError
        Before anything is written: settings that cannot run (:func:`check_train_config`),
        data that cannot be read, or too few training molecules for one batch, which would
        train 0 steps (:func:`check_trainable`). Also when ``output_dir`` holds a run started
        with other settings.
    """
    hardware = check_train_config(cfg)
    train_smiles, val_smiles = _split_data(cfg)
    check_trainable(len(train_smiles), cfg.batch_size)
    out = Path(cfg.output_dir)
    start_or_resume(out, cfg)
    L.seed_everything(cfg.seed, workers=True)
    vocab_path = out / "tokenizer.json"
    if vocab_path.exists():  # a resumed run must keep its vocabulary
        tokenizer = SmilesTokenizer.load(vocab_path)
    else:
        tokenizer = SmilesTokenizer.build(train_smiles)
        tokenizer.save(vocab_path)
    train = EncodedSmiles(train_smiles, tokenizer, cfg.max_length, on_invalid=cfg.on_invalid)
    val = EncodedSmiles(val_smiles, tokenizer, cfg.max_length, on_invalid="skip")
    rejected = [dataclasses.asdict(r) | {"split": "train"} for r in train.rejected]
    rejected += [dataclasses.asdict(r) | {"split": "val"} for r in val.rejected]
    if rejected:
        import pandas as pd

        pd.DataFrame(rejected).to_csv(out / "invalid.csv", index=False)
    check_trainable(len(train), cfg.batch_size, "training molecules the tokenizer encodes")
    preset = PRESETS[cfg.preset]
    model_config = preset(
        vocab_size=tokenizer.vocab_size,
        max_length=cfg.max_length,
        pad_id=tokenizer.pad_id,
        bos_id=tokenizer.bos_id,
        eos_id=tokenizer.eos_id,
        **cfg.model_overrides,
    )
    task = CausalLMTask(
        dataclasses.asdict(model_config),
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        max_steps=cfg.max_steps,
    )
    data = SmilesDataModule(
        train, val, batch_size=cfg.batch_size, num_workers=cfg.num_workers, seed=cfg.seed
    )

    def export(best: CausalLMTask, meta: dict[str, Any]) -> Path:
        training = {"data": cfg.data, "n_train": len(train), "n_val": len(val), **meta}
        extra = {"tokenizer": tokenizer.to_dict(), "training": training}
        return save_pretrained(best.model, out / "model", extra=extra)

    model_dir = fit_and_export(
        task,
        data,
        out,
        export=export,
        max_steps=cfg.max_steps,
        val_every_n_steps=cfg.val_every_n_steps,
        batches_per_epoch=len(train) // cfg.batch_size,
        hardware=hardware,
        progress=cfg.progress,
        callbacks=callbacks,
    )
    return model_dir


def export_checkpoint(
    ckpt_path: str | Path, output_dir: str | Path, *, dtype: torch.dtype | None = None
) -> Path:
    """Write a molfm checkpoint directory from a Lightning ``.ckpt`` of a pretraining run.

    The vocabulary is read from the run directory (``<run>/tokenizer.json``, next to
    ``checkpoints/``). ``dtype=torch.float16`` halves the size of a shipped checkpoint.
    """
    ckpt_path = Path(ckpt_path)
    tokenizer = SmilesTokenizer.load(ckpt_path.parent.parent / "tokenizer.json")
    task = CausalLMTask.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=False)
    step = torch.load(ckpt_path, map_location="cpu", weights_only=False)["global_step"]
    extra = {"tokenizer": tokenizer.to_dict(), "training": {"steps": int(step)}}
    return save_pretrained(task.model, output_dir, extra=extra, dtype=dtype)
