"""Memorization and novelty of generated molecules as a function of how many are sampled.

GP-MoLFormer (Ross et al. 2024) reports that chemical language models reproduce training
molecules and that novelty falls as more molecules are generated. For the first ``n``
samples (in generation order), with ``U_n`` the set of unique valid canonical SMILES:

* ``memorized`` = ``|U_n ∩ train| / |U_n|``, the fraction of unique valid generations that
  are training molecules (``novelty = 1 - memorized``, the MOSES novelty of the first n);
* ``copies`` = fraction of the first ``n`` samples (duplicates counted) that are training
  molecules;
* ``novel_unique`` = ``|U_n \\ train|``, how many new molecules the first n samples found.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["memorization_curve", "plot_memorization", "default_checkpoints"]


def default_checkpoints(n: int, per_decade: int = 4) -> list[int]:
    """Log-spaced sample counts from 10 up to ``n`` (always ending at ``n``)."""
    if n < 1:
        return []
    points = np.unique(np.logspace(1, np.log10(max(n, 10)), per_decade * 6).astype(int))
    return sorted({int(p) for p in points if 1 <= p <= n} | {n})


def memorization_curve(
    canonical: Sequence[str | None],
    train: Set[str],
    checkpoints: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Memorization/novelty after the first ``n`` generations, for each ``n`` in checkpoints.

    Parameters
    ----------
    canonical
        Canonical SMILES of the generations in sampling order, ``None`` for invalid ones.
    train
        Canonical SMILES of the training set.

    Returns
    -------
    pandas.DataFrame
        Columns n, n_valid, n_unique, n_memorized_unique, novel_unique, memorized, novelty,
        copies.
    """
    checkpoints = default_checkpoints(len(canonical)) if checkpoints is None else checkpoints
    if any(c < 1 or c > len(canonical) for c in checkpoints):
        raise ValueError(f"checkpoints must lie in 1..{len(canonical)}")
    seen: set[str] = set()
    n_valid = n_copies = n_mem_unique = 0
    rows = []
    targets = sorted(set(checkpoints))
    next_target = 0
    for i, smiles in enumerate(canonical, start=1):
        if smiles is not None:
            n_valid += 1
            in_train = smiles in train
            n_copies += in_train
            if smiles not in seen:
                seen.add(smiles)
                n_mem_unique += in_train
        while next_target < len(targets) and targets[next_target] == i:
            unique = len(seen)
            rows.append(
                {
                    "n": i,
                    "n_valid": n_valid,
                    "n_unique": unique,
                    "n_memorized_unique": n_mem_unique,
                    "novel_unique": unique - n_mem_unique,
                    "memorized": n_mem_unique / unique if unique else 0.0,
                    "novelty": 1 - n_mem_unique / unique if unique else 0.0,
                    "copies": n_copies / i,
                }
            )
            next_target += 1
    return pd.DataFrame(rows)


def plot_memorization(curve: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Two-panel PNG: memorized fraction and novel unique molecules vs samples (log x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(curve["n"], curve["memorized"], marker="o", label="unique valid in train")
    left.plot(curve["n"], curve["copies"], marker="s", label="all samples in train")
    left.set_xscale("log")
    left.set_xlabel("molecules generated")
    left.set_ylabel("fraction")
    left.set_ylim(0, 1)
    left.legend()
    left.set_title("memorization")
    right.plot(curve["n"], curve["novel_unique"], marker="o", color="tab:green")
    right.plot(curve["n"], curve["n"], linestyle=":", color="grey", label="y = n")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("molecules generated")
    right.set_ylabel("novel unique molecules")
    right.legend()
    right.set_title("novel molecules found")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
