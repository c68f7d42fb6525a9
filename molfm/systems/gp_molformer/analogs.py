"""Analog pretraining: teach a GP-MoLFormer base to write a *similar* molecule after one.

Pair-tuning (:mod:`molfm.systems.gp_molformer.pair_tuning.training`) asks a **frozen** base model to continue
``[prompt] <bos> source <eos>`` with an improved analog of the source. A base pretrained on one
molecule per sequence has never seen anything after ``<eos>``; a small one then writes
unrelated, mostly invalid molecules there, and a soft prompt cannot fix that (RESULTS.md §9:
~1 % valid candidates, similarity ~0.05 to the source). Continued training on **analog rows**
gives the base that skill once, for every property::

    <bos> A <eos> B <eos>        A, B: two similar molecules (Morgan r=2 Tanimoto >= 0.4)
    positions 0 .. |A|+1, then B restarts at 1 (exactly the pair-tuning layout, no prompt)

The pairs are mined with :func:`molfm.systems.gp_molformer.pair_tuning.pairs.make_pairs` on random values, so every
similar pair appears in one random direction and no property is involved; the loss covers
every token (A as well, so single-molecule modelling is kept). The soft prompt trained
afterwards then only has to steer the *property* of an analog the base already writes.

This stage is a molfm addition for small, CPU-sized bases; it is not in the GP-MoLFormer paper,
whose 46.8M-parameter model was pretrained on 650M-1.1B molecules and pair-tuned directly.

The analog objective's own code: its checks, its data (the molecules drawn, checked and mined
into pairs) and its run, :func:`train_analog_lm`, which fits
:class:`~molfm.systems.gp_molformer.task.CausalLMTask` through
:func:`molfm.engine.run.fit_and_export`; :mod:`molfm.systems.gp_molformer.run` lists it with the
system's other entry points.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd

from molfm.engine.fit import start_or_resume
from molfm.engine.hardware import run_hardware
from molfm.engine.options import check_options
from molfm.engine.run import fit_and_export
from molfm.hub import save_pretrained
from molfm.systems.gp_molformer.config import AnalogTrainConfig
from molfm.systems.gp_molformer.data import PairDataset, SmilesDataModule, collate_pairs
from molfm.systems.gp_molformer.model import load_smiles_model
from molfm.systems.gp_molformer.pair_tuning.pairs import make_pairs
from molfm.systems.gp_molformer.pair_tuning.steps import InvalidMoleculesError, check_molecules
from molfm.systems.gp_molformer.pretrain import check_trainable, load_smiles
from molfm.systems.gp_molformer.task import CausalLMTask
from molfm.systems.gp_molformer.tokenizer import SmilesTokenizer

__all__ = ["analog_pairs", "check_analog_config", "train_analog_lm"]


def check_analog_config(cfg: AnalogTrainConfig) -> dict[str, Any]:
    """Refuse settings that cannot run, before anything is read or written; return the checked
    Lightning ``accelerator``/``devices``/``precision`` arguments.

    Raises
    ------
    ValueError
        One line naming the setting and its value (a :class:`~molfm.engine.hardware.HardwareError`
        for hardware this machine does not have).
    """
    check_options(cfg)  # the ranges and choices declared on the fields
    check_trainable(cfg.n_molecules, cfg.batch_size, "molecules (n_molecules)")
    return run_hardware(cfg)


def analog_pairs(
    smiles: list[str],
    *,
    min_similarity: float = 0.4,
    max_pairs_per_source: int | None = 2,
    seed: int = 0,
) -> pd.DataFrame:
    """Similar pairs in one random direction each (no property): ``make_pairs`` on random
    values. Columns as :func:`~molfm.systems.gp_molformer.pair_tuning.pairs.make_pairs` (``source_value``/``target_value``
    are the random draws)."""
    values = np.random.default_rng(seed).random(len(smiles))
    return make_pairs(
        smiles,
        values,
        min_similarity=min_similarity,
        max_pairs_per_source=max_pairs_per_source,
        seed=seed,
    )


def _molecules(cfg: AnalogTrainConfig) -> tuple[list[str], np.ndarray]:
    """The molecules drawn with ``data_seed`` (training first, then validation) and their
    rows in the data set."""
    data = cfg.data
    smiles = load_smiles(data, cfg.smiles_column, "train" if data == "moses" else None)
    n_total = cfg.n_molecules + cfg.n_val_molecules
    if n_total > len(smiles):
        raise ValueError(
            f"{data} holds {len(smiles)} molecules, fewer than n_molecules + "
            f"n_val_molecules = {n_total}"
        )
    rows = np.random.default_rng(cfg.data_seed).permutation(len(smiles))[:n_total]
    return [smiles[i] for i in rows], rows


def _readable(
    smiles: list[str],
    rows: np.ndarray,
    tokenizer: SmilesTokenizer,
    max_length: int,
    on_invalid: str,
    split: str,
    rejected: list[dict[str, Any]],
) -> list[str]:
    """Molecules RDKit parses and the base's tokenizer encodes; the others are appended to
    ``rejected`` with their row in the data set (or raise under ``on_invalid="error"``)."""
    kept, bad = check_molecules(smiles, tokenizer, max_length, split=split, on_invalid="skip")
    for item in bad:  # rows of the data set, not of the random draw
        item["row"] = int(rows[item["row"]])
    if bad and on_invalid == "error":
        first = bad[0]
        raise InvalidMoleculesError(
            f"{split} row {first['row']}: {first['smiles']!r}: {first['reason']} "
            "(use --on-invalid skip to drop such rows)"
        )
    rejected.extend(bad)
    return [smiles[i] for i in kept]


def train_analog_lm(cfg: AnalogTrainConfig, callbacks: list | None = None) -> Path:
    """Continue training ``cfg.base_model`` on analog rows; return the exported model dir.

    Writes ``pairs.csv`` / ``val_pairs.csv`` (the mined rows), ``invalid.csv`` (molecules RDKit
    or the tokenizer rejected, with their row and reason; validation molecules are always
    skipped, training ones only under ``on_invalid="skip"``), Lightning checkpoints and logs,
    and the molfm checkpoint ``<output_dir>/model`` (same vocabulary as the base). A run directory
    that holds ``checkpoints/last.ckpt`` resumes from it exactly.
    """
    hardware = check_analog_config(cfg)
    base, tokenizer = load_smiles_model(cfg.base_model)
    max_length = base.config.max_length
    picked, rows = _molecules(cfg)
    out = Path(cfg.output_dir)
    start_or_resume(out, cfg)
    n = cfg.n_molecules
    rejected: list[dict[str, Any]] = []
    train_smiles = _readable(
        picked[:n], rows[:n], tokenizer, max_length, cfg.on_invalid, "train", rejected
    )
    val_smiles = _readable(picked[n:], rows[n:], tokenizer, max_length, "skip", "val", rejected)
    if rejected:
        pd.DataFrame(rejected).to_csv(out / "invalid.csv", index=False)
    mine = functools.partial(
        analog_pairs,
        min_similarity=cfg.min_similarity,
        max_pairs_per_source=cfg.max_pairs_per_source,
        seed=cfg.data_seed,
    )
    train_pairs, val_pairs = mine(train_smiles), mine(val_smiles)
    if len(train_pairs) < cfg.batch_size:
        raise ValueError(
            f"only {len(train_pairs)} pairs with similarity >= {cfg.min_similarity} among "
            f"{len(train_smiles)} molecules fill no batch of {cfg.batch_size}, so the run "
            "would train 0 steps: raise n_molecules or lower min_similarity or batch_size"
        )
    train_pairs.to_csv(out / "pairs.csv", index=False)
    val_pairs.to_csv(out / "val_pairs.csv", index=False)
    train = PairDataset(train_pairs["source"].tolist(), train_pairs["target"].tolist(), tokenizer)
    val = (
        PairDataset(val_pairs["source"].tolist(), val_pairs["target"].tolist(), tokenizer)
        if len(val_pairs)
        else None
    )

    L.seed_everything(cfg.seed, workers=True)
    task = CausalLMTask(
        dataclasses.asdict(base.config),
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        max_steps=cfg.max_steps,
    )
    task.model.load_state_dict(base.state_dict())  # start from the base (cast to float32)
    data = SmilesDataModule(
        train,
        val,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        seed=cfg.seed,
        collate_fn=functools.partial(collate_pairs, pad_id=tokenizer.pad_id),
    )

    def export(best: CausalLMTask, meta: dict[str, Any]) -> Path:
        training = {
            "objective": "analog rows <bos> A <eos> B <eos> (molfm.systems.gp_molformer.analogs)",
            "base_model": cfg.base_model,
            "data": cfg.data,
            "n_pairs": len(train_pairs),
            "n_val_pairs": len(val_pairs),
            "mean_pair_similarity": float(train_pairs["similarity"].mean()),
            **meta,
        }
        extra = {"tokenizer": tokenizer.to_dict(), "training": training}
        return save_pretrained(best.model, out / "model", extra=extra)

    return fit_and_export(
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
