"""GP-MoLFormer's entry points: what the CLI (or a server) calls, each taking its run config
(:mod:`molfm.systems.gp_molformer.config`).

* :func:`train_causal_lm` (:class:`~.config.LMTrainConfig`) -- causal-LM pretraining;
* :func:`train_analog_lm` (:class:`~.config.AnalogTrainConfig`) -- analog pretraining;
* :func:`generate` (:class:`~.config.GenerateConfig`) -- de novo sampling into a CSV;
* :func:`decorate` (:class:`~.config.DecorateConfig`) -- scaffold decoration into a CSV;
* :func:`optimize` (:class:`~.config.PairTuningConfig`) -- pair-tuning: pairs, a soft prompt,
  improved candidates and their report.

The two training runs are defined with their objectives' code (:mod:`.pretrain`,
:mod:`.analogs`) and imported here. A sampling job keeps every string it drew: invalid ones
stay in its CSV with ``valid = False``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Set
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from molfm.atomic import atomic_write_text, atomic_writer
from molfm.chem.parse import canonical_smiles
from molfm.engine.hardware import (
    check_hardware,
    inference_autocast,
    inference_device,
    lightning_kwargs,
)
from molfm.engine.options import check_options
from molfm.systems.gp_molformer.analogs import train_analog_lm
from molfm.systems.gp_molformer.config import DecorateConfig, GenerateConfig, PairTuningConfig
from molfm.systems.gp_molformer.decoration import check_scaffold, keeps_scaffold, scaffold_template
from molfm.systems.gp_molformer.decoration import decorate as decorate_template
from molfm.systems.gp_molformer.model import load_smiles_model
from molfm.systems.gp_molformer.pair_tuning import steps
from molfm.systems.gp_molformer.pair_tuning.optimize import optimization_report
from molfm.systems.gp_molformer.pair_tuning.optimize import optimize as optimize_sources
from molfm.systems.gp_molformer.pair_tuning.pairs import lowest_indices, property_function
from molfm.systems.gp_molformer.pair_tuning.training import load_prompt
from molfm.systems.gp_molformer.pretrain import train_causal_lm
from molfm.systems.gp_molformer.sampling import sample
from molfm.systems.gp_molformer.tokenizer import SmilesTokenizer

__all__ = [
    "train_causal_lm",
    "train_analog_lm",
    "generate",
    "decorate",
    "optimize",
    "generate_frame",
    "decorate_frame",
    "summarize",
    "RunningStats",
]

OnBatch = Callable[[int, "RunningStats"], None]
Progress = Callable[[int], AbstractContextManager[OnBatch | None]]
"""``progress(total)``: a context around the sampling that yields ``on_batch(k, stats)``,
called after every batch of ``k`` samples (e.g. a progress bar)."""


# --- sampling jobs: molfm generate / decorate --------------------------------------------------


def generate(
    cfg: GenerateConfig, *, progress: Progress | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Sample ``cfg.n`` molecules into the CSV ``cfg.output`` (written once sampling has
    finished); return the frame and its summary (:func:`summarize`, ``molecules_per_s``)."""
    check_options(cfg)
    device = _device(cfg)
    model, tokenizer = load_smiles_model(cfg.model, device=device)
    train = train_set(cfg)  # before sampling: fail fast
    with (progress or _no_progress)(cfg.n) as on_batch:
        frame = generate_frame(
            model,
            tokenizer,
            cfg.n,
            batch_size=cfg.batch_size,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            max_length=cfg.max_length,
            seed=cfg.seed,
            device=device,
            precision=cfg.precision,
            syntax_mask=cfg.syntax_mask,
            on_batch=on_batch,
        )
    _write_csv(frame, Path(cfg.output))
    summary = summarize(frame, train)
    summary["molecules_per_s"] = cfg.n / frame.attrs["seconds"]
    return frame, summary


def decorate(cfg: DecorateConfig) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Decorate every scaffold (``cfg.scaffold``, then ``cfg.scaffolds_file``) ``cfg.n`` times
    into the CSV ``cfg.output``; return the frame and one summary per scaffold. Every scaffold
    is checked before the model loads, and against its vocabulary before any sampling."""
    check_options(cfg)
    scaffolds = read_scaffolds(cfg.scaffold, cfg.scaffolds_file)
    for index, text in enumerate(scaffolds):
        check_scaffold(index, text)
    device = _device(cfg)
    model, tokenizer = load_smiles_model(cfg.model, device=device)
    for index, text in enumerate(scaffolds):
        check_scaffold(index, text, tokenizer)
    train = train_set(cfg)
    frames, reports = [], []
    for text in scaffolds:
        frame = decorate_frame(
            model,
            tokenizer,
            text,
            cfg.n,
            batch_size=cfg.batch_size,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            seed=cfg.seed,
            device=device,
            precision=cfg.precision,
        )
        frames.append(frame)
        reports.append({"scaffold": text} | summarize(frame, train))
    result = pd.concat(frames, ignore_index=True)
    _write_csv(result, Path(cfg.output))
    return result, reports


def read_scaffolds(scaffold: list[str] | None, scaffolds_file: str | Path | None) -> list[str]:
    """The ``--scaffold`` SMILES, then the first column of ``--scaffolds-file``'s lines (a
    ``scaffold``/``smiles`` header skipped)."""
    scaffolds = list(scaffold or [])
    if scaffolds_file is not None:
        if not Path(scaffolds_file).is_file():
            raise FileNotFoundError(f"--scaffolds-file {scaffolds_file} does not exist")
        lines = [ln.split(",")[0].strip() for ln in Path(scaffolds_file).read_text().splitlines()]
        scaffolds += [ln for ln in lines if ln and ln.lower() not in ("scaffold", "smiles")]
    if not scaffolds:
        raise ValueError("give --scaffold SMILES or a non-empty --scaffolds-file")
    return scaffolds


def _device(cfg: GenerateConfig | DecorateConfig) -> torch.device:
    """The one device sampling runs on, ``precision`` checked against it."""
    device = inference_device(cfg.accelerator, cfg.devices)
    check_hardware("cpu" if device.type == "cpu" else "gpu", 1, cfg.precision)
    return device


def train_set(cfg: GenerateConfig | DecorateConfig) -> frozenset[str] | None:
    """Canonical ``--train-data`` SMILES for novelty (cached after the first use)."""
    if cfg.train_data is None:
        return None
    from molfm.eval.training_set import training_set

    workers = cfg.num_workers
    return training_set(cfg.train_data, n_jobs=None if workers is None else max(1, workers))


@contextlib.contextmanager
def _no_progress(total: int) -> Iterator[None]:
    yield None


def _write_csv(frame: pd.DataFrame, output: Path) -> None:
    with atomic_writer(output) as tmp:
        frame.to_csv(tmp, index=False)


@dataclass
class RunningStats:
    """Validity / uniqueness while a generation job runs."""

    n: int = 0
    n_valid: int = 0
    unique: set[str] = field(default_factory=set)

    def update(self, smiles: list[str | None]) -> list[str | None]:
        canonical = [canonical_smiles(s) for s in smiles]
        self.n += len(smiles)
        valid = [c for c in canonical if c is not None]
        self.n_valid += len(valid)
        self.unique.update(valid)
        return canonical

    def describe(self) -> str:
        if not self.n:
            return ""
        uniq = len(self.unique) / max(1, self.n_valid)
        return f"valid {self.n_valid / self.n:.3f}  unique {uniq:.3f}"


def generate_frame(
    model: torch.nn.Module,
    tokenizer: SmilesTokenizer,
    n: int,
    *,
    device: torch.device | str = "cpu",
    precision: str = "32-true",
    on_batch: OnBatch | None = None,
    **sample_kwargs,
) -> pd.DataFrame:
    """De novo sampling: columns smiles, canonical_smiles, valid, truncated.

    ``device`` is where the model runs (:func:`molfm.engine.hardware.inference_device` turns
    ``--accelerator``/``--devices`` into one); ``precision`` ``32-true`` samples in full
    float32, ``bf16-mixed``/``16-mixed`` under autocast
    (:func:`molfm.engine.hardware.inference_autocast`). The other keyword arguments go to
    :func:`molfm.systems.gp_molformer.sampling.sample`.
    """
    stats = RunningStats()
    canonical: list[str | None] = []

    def callback(batch: list[str], n_done: int) -> None:
        canonical.extend(stats.update(batch))
        if on_batch is not None:
            on_batch(len(batch), stats)

    start = time.perf_counter()
    with inference_autocast(torch.device(device), precision):
        smiles = sample(model, tokenizer, n, device=device, callback=callback, **sample_kwargs)
    frame = pd.DataFrame(
        {
            "smiles": list(smiles),
            "canonical_smiles": canonical,
            "valid": [c is not None for c in canonical],
            "truncated": list(smiles.truncated),
        }
    )
    frame.attrs["seconds"] = time.perf_counter() - start
    return frame


def decorate_frame(
    model: torch.nn.Module,
    tokenizer: SmilesTokenizer,
    scaffold: str,
    n: int,
    *,
    device: torch.device | str = "cpu",
    precision: str = "32-true",
    **decorate_kwargs,
) -> pd.DataFrame:
    """Scaffold decoration: columns scaffold, smiles, canonical_smiles, valid, keeps_scaffold.

    ``device`` and ``precision`` as in :func:`generate_frame`; the other keyword arguments go
    to :func:`molfm.systems.gp_molformer.decoration.decorate`.
    """
    template = scaffold_template(scaffold)
    with inference_autocast(torch.device(device), precision):
        smiles = decorate_template(model, tokenizer, template, n, device=device, **decorate_kwargs)
    canonical = [canonical_smiles(s) for s in smiles]
    return pd.DataFrame(
        {
            "scaffold": scaffold,
            "smiles": [s if s is not None else "" for s in smiles],
            "canonical_smiles": canonical,
            "valid": [c is not None for c in canonical],
            "keeps_scaffold": [keeps_scaffold(c, template) for c in canonical],
        }
    )


def summarize(frame: pd.DataFrame, train: Set[str] | None = None) -> dict[str, float]:
    """Validity, uniqueness (among valid), novelty (unique valid not in ``train``)."""
    n = len(frame)
    valid = frame.loc[frame["valid"], "canonical_smiles"]
    unique = set(valid)
    out = {
        "n": n,
        "validity": len(valid) / n if n else 0.0,
        "uniqueness": len(unique) / len(valid) if len(valid) else 0.0,
    }
    if train is not None:
        out["novelty"] = len(unique - train) / len(unique) if unique else 0.0
    if "keeps_scaffold" in frame:
        out["keeps_scaffold"] = float(frame["keeps_scaffold"].mean()) if n else 0.0
        kept = frame.loc[frame["keeps_scaffold"], "canonical_smiles"]
        out["unique_keeping_scaffold"] = len(set(kept)) / n if n else 0.0
    if "truncated" in frame:
        out["truncated"] = int(frame["truncated"].sum())
    return out


# --- pair-tuning: molfm optimize ---------------------------------------------------------------


def optimize(cfg: PairTuningConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Pair-tune a soft prompt and optimize molecules with it, in ``cfg.output_dir``:

    1. **pairs** (``pairs.csv``): ``n_molecules`` molecules drawn (``data_seed``) from the
       mining set -- MOSES ``train``, or a user CSV minus a held-out part -- are checked (RDKit
       parse, tokenizer, ``max_length``), scored, and paired (:func:`.pair_tuning.pairs.make_pairs`);
    2. **prompt** (``prompt/``): a soft prompt is pair-tuned on the frozen base model
       (:func:`.pair_tuning.training.train_prompt`; Lightning logs in ``logs/``);
    3. **sources**: the ``input`` molecules, or else the ``n_sources`` lowest-property molecules
       of a held-out pool never used for pairs (``source_pool`` random MOSES ``test`` molecules,
       or the CSV's held-out rows) -- the low-property starting points of Jin et al.;
    4. **candidates** (``candidates.csv``) and **report** (``report.json``), with
       ``run_config.json`` (the resolved config, written once the inputs have been checked).

    With ``prompt`` set (a saved prompt directory), steps 1-2 are skipped and the ``input``
    molecules are optimized with that prompt. Invalid molecules follow ``on_invalid``:
    ``"error"`` raises :class:`~.pair_tuning.steps.InvalidMoleculesError` naming the row, the
    SMILES and the reason; ``"skip"`` writes every rejected row to ``invalid.csv``.

    Returns ``output_dir``, ``report``, ``training``, ``n_pairs`` and ``n_invalid``.
    """
    say = log or (lambda message: None)
    for path, flag in ((cfg.input, "--input"), (cfg.prompt, "--prompt")):
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"{flag} {path} does not exist")
    if cfg.prompt is not None and cfg.input is None:
        raise ValueError("--prompt needs --input (the molecules to optimize)")
    check_options(cfg)
    lightning_kwargs(cfg.accelerator, cfg.devices, cfg.precision)  # check before any work
    if cfg.strategy != "auto" or cfg.num_nodes != 1:
        raise ValueError(
            "--strategy/--num-nodes: pair tuning trains a few prompt vectors in one process; "
            "leave them at auto and 1"
        )
    device = inference_device(cfg.accelerator, cfg.devices)
    model, tokenizer = load_smiles_model(cfg.model, device=device)
    max_length = model.config.max_length
    prompt_config = None
    if cfg.prompt is not None:
        prompt, prompt_config = load_prompt(cfg.prompt, model, tokenizer)
    cfg = steps.resolve_property(cfg, prompt_config)
    prop_fn = property_function(cfg.property)
    out = Path(cfg.output_dir)
    rejected: list[dict[str, Any]] = []
    sources = None
    if cfg.input is not None:  # read and check the input before any training
        table = steps.load_table(cfg.input, cfg.smiles_column, None, None)
        sources = steps.checked_rows(table, tokenizer, max_length, "input", cfg, rejected)
    if cfg.prompt is None:
        mining, pool = steps.split_molecules(cfg)
        mining = steps.checked_rows(mining, tokenizer, max_length, "pairs", cfg, rejected)
        _write_run_config(cfg)  # the data has been read and checked
        prompt, training, n_pairs = steps.mine_and_train(cfg, model, tokenizer, mining, say)
    else:
        training, n_pairs = prompt_config.get("training", {}), None
    if sources is None:  # the lowest-property held-out molecules
        pool = steps.checked_rows(pool, tokenizer, max_length, "sources", cfg, rejected)
        values = steps.property_values(pool, cfg, cfg.property_column)
        chosen = lowest_indices(values, cfg.n_sources)
        sources, values = pool.iloc[chosen], values[chosen]
    else:  # oracle values, or the input's own column, or unknown
        column = cfg.property_column if cfg.property_column in sources.columns else None
        values = steps.property_values(sources, cfg, column) if column or prop_fn else None
    if sources.empty:
        raise ValueError("no valid molecules to optimize")
    if cfg.prompt is not None:
        _write_run_config(cfg)
    say(f"optimizing {len(sources)} molecules, {cfg.n_candidates} candidates each")
    with inference_autocast(device, cfg.precision):
        frame = optimize_sources(
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
