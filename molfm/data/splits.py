"""Seeded train/val/test splits, saved as index files.

Two methods, both deterministic given ``seed``:

``random``
    A permutation of ``range(n)`` from ``numpy.random.default_rng(seed)``; the first
    ``floor(f_train * n)`` indices are train, the next ``floor(f_val * n)`` val, the rest test.

``scaffold`` (the "balanced scaffold" split of Yang et al. 2019 / chemprop)
    Molecules are grouped by Bemis-Murcko scaffold (canonical SMILES, stereo dropped;
    acyclic molecules share the empty scaffold). Groups larger than half the val or test
    size are "big" and come first, ordered by size (largest first; ties by scaffold
    string); the other groups follow, shuffled by ``seed``. Walking that list, a group
    goes to train if train stays within ``floor(f_train * n)``, else to val if val stays
    within ``floor(f_val * n)``, else to test. No scaffold spans two splits, so val/test
    hold scaffolds never seen in training.

Index files are ``.npz`` archives with int64 arrays ``train``, ``val``, ``test`` (positions
into the prepared dataset, in ascending order) and read back with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from molfm.atomic import atomic_writer

__all__ = ["Split", "random_split", "scaffold_split", "make_split", "SPLITS"]


@dataclass(frozen=True)
class Split:
    """Indices of the three parts of a split."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, train=self.train, val=self.val, test=self.test)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Split:
        with np.load(path, allow_pickle=False) as data:
            return cls(data["train"], data["val"], data["test"])

    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.val), len(self.test)


def _check_sizes(sizes: Sequence[float]) -> tuple[float, float, float]:
    if len(sizes) != 3 or any(s < 0 for s in sizes) or not np.isclose(sum(sizes), 1.0):
        raise ValueError(f"split sizes must be three non-negative fractions summing to 1: {sizes}")
    return float(sizes[0]), float(sizes[1]), float(sizes[2])


def random_split(n: int, sizes: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> Split:
    """Seeded random split of ``n`` items."""
    f_train, f_val, _ = _check_sizes(sizes)
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_val = int(f_train * n), int(f_val * n)
    parts = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
    return Split(*(np.sort(p).astype(np.int64) for p in parts))


def scaffold_split(
    scaffolds: Sequence[str], sizes: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> Split:
    """Balanced scaffold split (see module docstring) from per-molecule scaffold SMILES."""
    f_train, f_val, f_test = _check_sizes(sizes)
    n = len(scaffolds)
    groups: dict[str, list[int]] = defaultdict(list)
    for index, scaffold in enumerate(scaffolds):
        groups[scaffold].append(index)
    cap_train, cap_val = int(f_train * n), int(f_val * n)
    big_threshold = min(f_val * n, f_test * n) / 2
    big = sorted(
        (g for g in groups.items() if len(g[1]) > big_threshold),
        key=lambda g: (-len(g[1]), g[0]),
    )
    small = sorted((g for g in groups.items() if len(g[1]) <= big_threshold), key=lambda g: g[0])
    rng = np.random.default_rng(seed)
    small = [small[i] for i in rng.permutation(len(small))]
    train, val, test = [], [], []
    for _, members in big + small:
        if len(train) + len(members) <= cap_train:
            train += members
        elif len(val) + len(members) <= cap_val:
            val += members
        else:
            test += members
    return Split(*(np.array(sorted(p), dtype=np.int64) for p in (train, val, test)))


SPLITS = ("random", "scaffold")


def make_split(
    method: str,
    *,
    n: int,
    scaffolds: Sequence[str] | None = None,
    sizes: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> Split:
    """Dispatch by name (``"random"`` or ``"scaffold"``; ``scaffold_balanced`` is an alias)."""
    method = {"scaffold_balanced": "scaffold", "scaffold-balanced": "scaffold"}.get(method, method)
    if method == "random":
        return random_split(n, sizes, seed)
    if method == "scaffold":
        if scaffolds is None:
            raise ValueError("scaffold split needs the scaffold of every molecule")
        return scaffold_split(scaffolds, sizes, seed)
    raise ValueError(f"unknown split {method!r}; choose from {SPLITS}")
