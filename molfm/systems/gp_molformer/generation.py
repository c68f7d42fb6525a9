"""Generation jobs shared by the CLI and the Python API: sample, decorate, summarize.

Each job returns a pandas DataFrame with one row per generated string, so nothing is lost:
invalid strings stay in the output with ``valid = False``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Set
from dataclasses import dataclass, field

import pandas as pd
import torch

from molfm.chem.parse import canonical_smiles
from molfm.engine.hardware import inference_autocast
from molfm.systems.gp_molformer.decoration import decorate, keeps_scaffold, scaffold_template
from molfm.systems.gp_molformer.sampling import sample
from molfm.systems.gp_molformer.tokenizer import SmilesTokenizer

__all__ = ["canonicalize", "generate_frame", "decorate_frame", "summarize", "RunningStats"]


def canonicalize(smiles: str | None) -> str | None:
    """RDKit canonical SMILES, or None when RDKit cannot parse it (MOSES's parsing rules).

    :func:`molfm.chem.parse.canonical_smiles` restricted to strings (``None`` stays ``None``);
    kept for callers of this name, new code calls ``canonical_smiles`` directly.
    """
    return canonical_smiles(smiles) if isinstance(smiles, str) else None


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
    on_batch: Callable[[int, RunningStats], None] | None = None,
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
        smiles = decorate(model, tokenizer, template, n, device=device, **decorate_kwargs)
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
