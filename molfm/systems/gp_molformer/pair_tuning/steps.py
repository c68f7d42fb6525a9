"""The steps of the pair-tuning run (:func:`molfm.systems.gp_molformer.run.optimize`).

* :func:`split_molecules` -- the mining molecules and the held-out source pool, drawn with
  ``data_seed`` from MOSES (``train`` / ``test``) or a user CSV;
* :func:`check_molecules` / :func:`checked_rows` -- the rows the model can read (RDKit parses
  them, the tokenizer encodes them within ``max_length``); a rejected row raises
  :class:`InvalidMoleculesError` under ``on_invalid="error"`` or is listed for ``invalid.csv``;
* :func:`resolve_property` / :func:`property_values` -- which property, and its values (an
  RDKit oracle or a numeric column);
* :func:`mine_and_train` -- pairs (``pairs.csv``, :func:`~.pairs.make_pairs`) and a soft prompt
  pair-tuned on them (``prompt/``, :func:`~.training.train_prompt`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molfm.atomic import atomic_writer
from molfm.chem.parse import InvalidMoleculeError, parse_smiles
from molfm.data.sources import SourceError, get_source, resolve_source
from molfm.engine.hardware import lightning_kwargs
from molfm.systems.gp_molformer.config import PairTuningConfig
from molfm.systems.gp_molformer.model import GPMoLFormer
from molfm.systems.gp_molformer.pair_tuning.pairs import (
    PROPERTY_FUNCTIONS,
    compute_property,
    make_pairs,
    property_function,
)
from molfm.systems.gp_molformer.pair_tuning.training import SoftPrompt, save_prompt, train_prompt
from molfm.systems.gp_molformer.tokenizer import SmilesTokenizer

__all__ = [
    "InvalidMoleculesError",
    "check_molecules",
    "checked_rows",
    "load_table",
    "property_values",
    "split_molecules",
    "resolve_property",
    "mine_and_train",
]


class InvalidMoleculesError(ValueError):
    """A molecule was rejected under ``on_invalid="error"``."""


def check_molecules(
    smiles: list[str],
    tokenizer: SmilesTokenizer,
    max_length: int,
    *,
    split: str,
    on_invalid: str = "error",
) -> tuple[list[int], list[dict[str, Any]]]:
    """Rows the model can read: RDKit parses them and the tokenizer encodes them within
    ``max_length`` tokens.

    Returns
    -------
    kept
        Indices of accepted rows.
    rejected
        ``{"split", "row", "smiles", "reason"}`` per rejected row (``on_invalid="skip"``).

    Raises
    ------
    InvalidMoleculesError
        On the first rejected row when ``on_invalid="error"``.
    """
    if on_invalid not in ("error", "skip"):
        raise ValueError(f"on_invalid must be 'error' or 'skip', got {on_invalid!r}")
    kept: list[int] = []
    rejected: list[dict[str, Any]] = []
    for row, text in enumerate(smiles):
        try:
            parse_smiles(text, row=row)
            n_tokens = len(tokenizer.encode(text))
            if n_tokens > max_length:
                raise ValueError(f"{n_tokens} tokens exceed the model's max_length {max_length}")
        except InvalidMoleculeError as err:
            reason = err.reason
        except ValueError as err:  # UnknownTokenError, untokenizable text, too long
            reason = str(err)
        else:
            kept.append(row)
            continue
        if on_invalid == "error":
            raise InvalidMoleculesError(
                f"{split} row {row}: {text!r}: {reason} (use --on-invalid skip to drop such rows)"
            )
        rejected.append({"split": split, "row": row, "smiles": str(text), "reason": reason})
    return kept, rejected


def load_table(
    data: str, smiles_column: str, value_column: str | None, subset: str | None
) -> pd.DataFrame:
    """The rows of MOSES (``subset``) or of a user CSV (with ``value_column`` when given)."""
    if data == "moses":
        if value_column is not None:
            raise ValueError("MOSES has no property columns; use --property qed or plogp")
        return get_source("moses").load(subset)
    targets = [value_column] if value_column else None
    return resolve_source(data, smiles_column=smiles_column, target_columns=targets).load()


def property_values(frame: pd.DataFrame, cfg: PairTuningConfig, column: str | None) -> np.ndarray:
    """Property values of ``frame``'s molecules: from ``column`` when given, else RDKit."""
    if column is not None:
        return pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
    return compute_property(frame["smiles"].tolist(), cfg.property or "qed")


def checked_rows(
    frame: pd.DataFrame,
    tokenizer: SmilesTokenizer,
    max_length: int,
    split: str,
    cfg: PairTuningConfig,
    rejected: list[dict[str, Any]],
) -> pd.DataFrame:
    """The rows of ``frame`` the model can read; the others are appended to ``rejected`` (or
    raise under ``cfg.on_invalid="error"``), numbered by their row in ``frame``'s table."""
    kept, bad = check_molecules(
        frame["smiles"].tolist(), tokenizer, max_length, split=split, on_invalid=cfg.on_invalid
    )
    for item in bad:  # report rows of the original table
        item["row"] = int(frame.index[item["row"]])
    rejected.extend(bad)
    return frame.iloc[kept]


def split_molecules(cfg: PairTuningConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(mining molecules, held-out source pool), both sampled with ``data_seed``."""
    rng = np.random.default_rng(cfg.data_seed)
    if cfg.data == "moses":
        train = load_table("moses", cfg.smiles_column, None, "train")
        mining = train.iloc[np.sort(rng.permutation(len(train))[: cfg.n_molecules])]
        test = load_table("moses", cfg.smiles_column, None, "test")
        pool = test.iloc[np.sort(rng.permutation(len(test))[: cfg.source_pool])]
        return mining, pool
    try:
        table = load_table(cfg.data, cfg.smiles_column, cfg.property_column, None)
    except SourceError as err:
        from_property = cfg.property_column == cfg.property
        if not from_property or f"'{cfg.property}'" not in str(err):
            raise
        known = ", ".join(sorted(PROPERTY_FUNCTIONS))
        raise ValueError(f"property {cfg.property!r} is not one of {known}: {err}") from None
    order = rng.permutation(len(table))
    n_pool = 0 if cfg.input else min(cfg.source_pool, max(1, len(table) // 10))
    pool = table.iloc[np.sort(order[:n_pool])]
    mining = table.iloc[np.sort(order[n_pool : n_pool + cfg.n_molecules])]
    return mining, pool


def resolve_property(
    cfg: PairTuningConfig, prompt_config: dict[str, Any] | None
) -> PairTuningConfig:
    """Fill in the property (default qed, or the saved prompt's) and its column."""
    trained_for = None if prompt_config is None else prompt_config.get("property")
    if cfg.property and trained_for not in (None, cfg.property):
        raise ValueError(f"the prompt was trained for {trained_for!r}, not {cfg.property!r}")
    prop = cfg.property or trained_for or "qed"
    column = cfg.property_column
    if column is None and property_function(prop) is None:
        if cfg.data == "moses" and cfg.prompt is None:
            known = ", ".join(sorted(PROPERTY_FUNCTIONS))
            raise ValueError(f"unknown property {prop!r}: MOSES holds SMILES only; use {known}")
        column = prop  # a user property is a numeric column of the data
    return dataclasses.replace(cfg, property=prop, property_column=column)


def mine_and_train(
    cfg: PairTuningConfig,
    model: GPMoLFormer,
    tokenizer: SmilesTokenizer,
    mining: pd.DataFrame,
    say: Callable[[str], None],
) -> tuple[SoftPrompt, dict[str, Any], int]:
    """Pairs from ``mining`` -> ``pairs.csv``; a trained prompt -> ``prompt/``."""
    out = Path(cfg.output_dir)
    say(f"mining pairs from {len(mining)} molecules ({cfg.property})")
    pairs = make_pairs(
        mining["smiles"].tolist(),
        property_values(mining, cfg, cfg.property_column),
        min_similarity=cfg.min_similarity,
        min_improvement=cfg.min_improvement,
        max_pairs_per_source=cfg.max_pairs_per_source,
        seed=cfg.data_seed,
    )
    with atomic_writer(out / "pairs.csv") as tmp:
        pairs.to_csv(tmp, index=False)
    if pairs.empty:
        raise ValueError(
            f"no pairs with similarity >= {cfg.min_similarity} among {len(mining)} "
            "molecules: raise --n-molecules or lower --min-similarity"
        )
    say(f"{len(pairs)} pairs; training a {cfg.n_prompt}-vector prompt for {cfg.max_steps} steps")
    shuffled = pairs.sample(frac=1.0, random_state=cfg.seed)  # the loss probe: random pairs
    prompt, training = train_prompt(
        model,
        tokenizer,
        shuffled["source"].tolist(),
        shuffled["target"].tolist(),
        n_prompt=cfg.n_prompt,
        max_steps=cfg.max_steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        seed=cfg.seed,
        **lightning_kwargs(cfg.accelerator, cfg.devices, cfg.precision),
        log_dir=out,
        progress=cfg.progress,
    )
    training.update(pairs=pairs.attrs, n_pairs=len(pairs), data=cfg.data)
    save_prompt(
        out / "prompt",
        prompt,
        model=model,
        base_model=cfg.model,
        property_name=cfg.property,
        tokenizer=tokenizer,
        training=training,
    )
    say(f"prompt loss {training['loss_before']:.3f} -> {training['loss_after']:.3f}")
    return prompt, training, len(pairs)
