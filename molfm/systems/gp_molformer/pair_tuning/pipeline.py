"""The pair-tuning run behind ``molfm optimize``: pairs -> prompt -> candidates -> report.

:func:`run_pair_tuning` with a :class:`PairTuningConfig` does, in ``output_dir``:

1. **pairs** (``pairs.csv``): ``n_molecules`` molecules drawn (``data_seed``) from the mining
   set -- MOSES ``train``, or a user CSV minus a held-out part -- are checked (RDKit parse,
   tokenizer, ``max_length``), scored, and paired with :func:`molfm.systems.gp_molformer.pair_tuning.pairs.make_pairs`;
2. **prompt** (``prompt/``): a soft prompt is pair-tuned on the frozen base model
   (:func:`molfm.systems.gp_molformer.pair_tuning.training.train_prompt`; Lightning logs in ``logs/``);
3. **sources**: the ``--input`` molecules, or else the ``n_sources`` lowest-property molecules
   of a held-out pool never used for pairs (``source_pool`` random MOSES ``test`` molecules,
   or the CSV's held-out rows) -- the low-property starting points of Jin et al.;
4. **candidates** (``candidates.csv``) and **report** (``report.json``) from
   :func:`molfm.systems.gp_molformer.pair_tuning.optimize.optimize` / :func:`optimization_report`.

With ``prompt`` set (a saved prompt directory), steps 1-2 are skipped and the ``input``
molecules are optimized with that prompt. Invalid molecules follow ``on_invalid``: ``"error"``
raises :class:`InvalidMoleculesError` naming the row, the SMILES and the reason; ``"skip"``
writes every rejected row to ``invalid.csv``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molfm.atomic import atomic_write_text, atomic_writer
from molfm.chem.parse import InvalidMoleculeError, parse_smiles
from molfm.data.sources import SourceError, get_source, resolve_source
from molfm.engine.hardware import inference_autocast, inference_device, lightning_kwargs
from molfm.systems.gp_molformer import DEFAULT_PAIR_TUNING_MODEL
from molfm.systems.gp_molformer.model import GPMoLFormer, load_smiles_model
from molfm.systems.gp_molformer.pair_tuning.optimize import optimization_report, optimize
from molfm.systems.gp_molformer.pair_tuning.pairs import (
    PROPERTY_FUNCTIONS,
    compute_property,
    lowest_indices,
    make_pairs,
    property_function,
)
from molfm.systems.gp_molformer.pair_tuning.training import (
    SoftPrompt,
    load_prompt,
    save_prompt,
    train_prompt,
)
from molfm.systems.gp_molformer.tokenizer import SmilesTokenizer

__all__ = ["PairTuningConfig", "InvalidMoleculesError", "check_molecules", "run_pair_tuning"]


class InvalidMoleculesError(ValueError):
    """A molecule was rejected under ``on_invalid="error"``."""


@dataclass
class PairTuningConfig:
    """Everything one pair-tuning run depends on (saved as ``run_config.json``)."""

    output_dir: str
    model: str = DEFAULT_PAIR_TUNING_MODEL
    property: str | None = None  # qed | plogp | a numeric column of data; default qed
    property_column: str | None = None  # precomputed values of `property` in data / input
    data: str = "moses"  # a registered data set (moses) or a CSV path
    smiles_column: str = "smiles"
    n_molecules: int = 20_000
    min_similarity: float = 0.4
    min_improvement: float = 0.0
    max_pairs_per_source: int = 5
    n_prompt: int = 20
    max_steps: int = 1000
    batch_size: int = 32
    lr: float = 3e-2
    n_sources: int = 100
    source_pool: int = 2000
    n_candidates: int = 20
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    syntax_mask: bool = False
    seed: int = 0
    data_seed: int = 0
    accelerator: str = "auto"  # auto | cpu | gpu (engine.hardware); auto: a GPU when there is one
    devices: int | str | list[int] = 1  # training: Lightning's devices; sampling: the first one
    precision: str = "32-true"  # 32-true: exact float32; bf16-mixed / 16-mixed: autocast
    prompt: str | None = None  # reuse a saved prompt: only optimize `input`
    input: str | None = None  # CSV of molecules to optimize (column smiles_column)
    on_invalid: str = "error"
    progress: bool = False


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


def _load_table(data: str, smiles_column: str, value_column: str | None, subset: str | None):
    if data == "moses":
        if value_column is not None:
            raise ValueError("MOSES has no property columns; use --property qed or plogp")
        return get_source("moses").load(subset)
    targets = [value_column] if value_column else None
    return resolve_source(data, smiles_column=smiles_column, target_columns=targets).load()


def _values(frame: pd.DataFrame, cfg: PairTuningConfig, column: str | None) -> np.ndarray:
    """Property values of ``frame``'s molecules: from ``column`` when given, else RDKit."""
    if column is not None:
        return pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
    return compute_property(frame["smiles"].tolist(), cfg.property or "qed")


def _checked(
    frame: pd.DataFrame,
    tokenizer: SmilesTokenizer,
    max_length: int,
    split: str,
    cfg: PairTuningConfig,
    rejected: list[dict[str, Any]],
) -> pd.DataFrame:
    kept, bad = check_molecules(
        frame["smiles"].tolist(), tokenizer, max_length, split=split, on_invalid=cfg.on_invalid
    )
    for item in bad:  # report rows of the original table
        item["row"] = int(frame.index[item["row"]])
    rejected.extend(bad)
    return frame.iloc[kept]


def _split(cfg: PairTuningConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(mining molecules, held-out source pool), both sampled with ``data_seed``."""
    rng = np.random.default_rng(cfg.data_seed)
    if cfg.data == "moses":
        train = _load_table("moses", cfg.smiles_column, None, "train")
        mining = train.iloc[np.sort(rng.permutation(len(train))[: cfg.n_molecules])]
        test = _load_table("moses", cfg.smiles_column, None, "test")
        pool = test.iloc[np.sort(rng.permutation(len(test))[: cfg.source_pool])]
        return mining, pool
    try:
        table = _load_table(cfg.data, cfg.smiles_column, cfg.property_column, None)
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


def _resolve(cfg: PairTuningConfig, prompt_config: dict[str, Any] | None) -> PairTuningConfig:
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


def _mine_and_train(
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
        _values(mining, cfg, cfg.property_column),
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


def run_pair_tuning(
    cfg: PairTuningConfig, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run pair-tuning end to end (see the module docstring); returns a summary dict with
    ``output_dir``, ``report``, ``training``, ``n_pairs`` and ``n_invalid``."""
    say = log or (lambda message: None)
    if cfg.prompt is not None and cfg.input is None:
        raise ValueError("--prompt needs --input: the molecules to optimize")
    lightning_kwargs(cfg.accelerator, cfg.devices, cfg.precision)  # check before any work
    device = inference_device(cfg.accelerator, cfg.devices)
    model, tokenizer = load_smiles_model(cfg.model, device=device)
    max_length = model.config.max_length
    prompt_config = None
    if cfg.prompt is not None:
        prompt, prompt_config = load_prompt(cfg.prompt, model, tokenizer)
    cfg = _resolve(cfg, prompt_config)
    prop_fn = property_function(cfg.property)
    out = Path(cfg.output_dir)
    rejected: list[dict[str, Any]] = []
    sources = None
    if cfg.input is not None:  # read and check the input before any training
        table = _load_table(cfg.input, cfg.smiles_column, None, None)
        sources = _checked(table, tokenizer, max_length, "input", cfg, rejected)
    if cfg.prompt is None:
        mining, pool = _split(cfg)
        mining = _checked(mining, tokenizer, max_length, "pairs", cfg, rejected)
        _write_run_config(cfg)  # the data has been read and checked
        prompt, training, n_pairs = _mine_and_train(cfg, model, tokenizer, mining, say)
    else:
        training, n_pairs = prompt_config.get("training", {}), None
    if sources is None:  # the lowest-property held-out molecules
        pool = _checked(pool, tokenizer, max_length, "sources", cfg, rejected)
        values = _values(pool, cfg, cfg.property_column)
        chosen = lowest_indices(values, cfg.n_sources)
        sources, values = pool.iloc[chosen], values[chosen]
    else:  # oracle values, or the input's own column, or unknown
        column = cfg.property_column if cfg.property_column in sources.columns else None
        values = _values(sources, cfg, column) if column or prop_fn else None
    if sources.empty:
        raise ValueError("no valid molecules to optimize")
    if cfg.prompt is not None:
        _write_run_config(cfg)
    say(f"optimizing {len(sources)} molecules, {cfg.n_candidates} candidates each")
    with inference_autocast(device, cfg.precision):
        frame = optimize(
            model,
            tokenizer,
            prompt,
            sources["smiles"].tolist(),
            n_candidates=cfg.n_candidates,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            seed=cfg.seed,
            property=prop_fn,
            syntax_mask=cfg.syntax_mask,
            source_values=None if values is None else values.tolist(),
        )
    with atomic_writer(out / "candidates.csv") as tmp:
        frame.to_csv(tmp, index=False)
    report = optimization_report(frame)
    report.update(property=cfg.property, n_pairs=n_pairs, n_invalid=len(rejected))
    report["training"] = training
    atomic_write_text(out / "report.json", json.dumps(report, indent=2, default=_json_default))
    if rejected:
        with atomic_writer(out / "invalid.csv") as tmp:
            pd.DataFrame(rejected).to_csv(tmp, index=False)
    return {
        "output_dir": str(out),
        "report": report,
        "training": training,
        "n_pairs": n_pairs,
        "n_invalid": len(rejected),
    }


def _write_run_config(cfg: PairTuningConfig) -> None:
    """``run_config.json``: the resolved config, written once the inputs have been checked."""
    text = json.dumps(dataclasses.asdict(cfg), indent=2)
    atomic_write_text(Path(cfg.output_dir) / "run_config.json", text)


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
