"""Per-molecule descriptors behind the MOSES metrics, and their set-level summaries.

Everything here follows ``moses/metrics/utils.py`` of molsets 0.3.1:

* parsing: :func:`molfm.chem.parse.mol_or_none` (MOSES's ``get_mol``: an empty string is
  invalid; otherwise RDKit must parse and sanitize the SMILES);
* canonical SMILES: :func:`molfm.chem.parse.canonical_smiles` (``Chem.MolToSmiles`` with
  RDKit defaults, isomeric);
* fragments: the canonical SMILES pieces of ``FragmentOnBRICSBonds`` (with dummy atoms);
* scaffolds: the Bemis-Murcko scaffold's canonical (isomeric) SMILES
  (:func:`molfm.chem.scaffolds.murcko_scaffold`), kept only when the scaffold has at least two
  rings (``min_rings=2``: MOSES's Scaf metric ignores acyclic and single-ring scaffolds);
* properties: Crippen logP, SA score (RDKit Contrib), QED, average molecular weight, from the
  registry :data:`molfm.chem.properties.PROPERTIES`.

:func:`set_features` computes all of these for a list of SMILES in one pass (optionally over
worker processes) so that a generated set or a reference set is parsed only once.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from rdkit import Chem

from molfm.chem.parse import mol_or_none
from molfm.chem.properties import PROPERTIES as CHEM_PROPERTIES
from molfm.chem.scaffolds import murcko_scaffold
from molfm.eval.filters import mol_passes_filters
from molfm.eval.fingerprints import MOSES_MORGAN_BITS, PackedFingerprints, moses_fingerprints

__all__ = [
    "PROPERTIES",
    "brics_fragments",
    "moses_scaffold",
    "SetFeatures",
    "set_features",
    "parallel_map",
]

# Property name (as MOSES names the metric) -> function of a sanitized Mol, in MOSES's order.
PROPERTIES: dict[str, Callable[[Chem.Mol], float]] = {
    "logP": CHEM_PROPERTIES["logp"],
    "SA": CHEM_PROPERTIES["sa"],
    "QED": CHEM_PROPERTIES["qed"],
    "weight": CHEM_PROPERTIES["mw"],
}

T = TypeVar("T")
R = TypeVar("R")


def brics_fragments(mol: Chem.Mol) -> list[str]:
    """Canonical SMILES of the BRICS fragments of ``mol`` (duplicates kept, dummy atoms on)."""
    return Chem.MolToSmiles(Chem.FragmentOnBRICSBonds(mol)).split(".")


def moses_scaffold(mol: Chem.Mol, *, min_rings: int = 2) -> str | None:
    """Murcko scaffold SMILES (isomeric), or ``None`` if it is empty, has fewer than
    ``min_rings`` rings, or RDKit fails on the molecule (MOSES's ``compute_scaffold``)."""
    try:
        scaffold = murcko_scaffold(mol, isomeric=True, min_rings=min_rings)
    except (ValueError, RuntimeError):
        return None
    return scaffold or None


@dataclass
class _MolRecord:
    fingerprint: np.ndarray  # packed bits
    fragments: list[str]
    scaffold: str | None
    passes_filters: bool
    properties: tuple[float, ...]


def _record(smiles: str, with_filters: bool) -> _MolRecord | None:
    mol = mol_or_none(smiles)
    if mol is None:
        return None
    return _MolRecord(
        fingerprint=np.packbits(moses_fingerprints([mol])[0]),
        fragments=brics_fragments(mol),
        scaffold=moses_scaffold(mol),
        passes_filters=mol_passes_filters(mol) if with_filters else False,
        properties=tuple(fn(mol) for fn in PROPERTIES.values()),
    )


def _record_star(args: tuple[str, bool]) -> _MolRecord | None:
    return _record(*args)


def parallel_map(fn: Callable[[T], R], items: Iterable[T], n_jobs: int = 1) -> list[R]:
    """``list(map(fn, items))``, over ``n_jobs`` worker processes when ``n_jobs > 1``.

    ``fn`` must be a module-level (picklable) function.
    """
    items = list(items)
    if n_jobs <= 1 or len(items) < 2:
        return [fn(item) for item in items]
    chunksize = max(1, len(items) // (n_jobs * 8))
    with multiprocessing.get_context().Pool(n_jobs) as pool:
        return pool.map(fn, items, chunksize=chunksize)


@dataclass
class SetFeatures:
    """MOSES descriptors of a set of valid molecules (duplicates kept, input order).

    Attributes
    ----------
    fingerprints
        Morgan r=2, 1024-bit fingerprints, bit-packed.
    fragments
        Counts of BRICS fragment SMILES over the set.
    scaffolds
        Counts of Murcko scaffold SMILES with at least two rings.
    passes_filters
        Per-molecule result of the MOSES filters (all False if not computed).
    properties
        Property name -> ``float64`` array, one value per molecule.
    """

    fingerprints: PackedFingerprints
    fragments: Counter[str]
    scaffolds: Counter[str]
    passes_filters: np.ndarray
    properties: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.fingerprints)


def set_features(
    smiles: Sequence[str], *, with_filters: bool = True, n_jobs: int = 1
) -> SetFeatures:
    """Compute :class:`SetFeatures` for ``smiles``.

    Raises
    ------
    ValueError
        If any SMILES is invalid (filter them first, e.g. with ``remove_invalid``).
    """
    records = parallel_map(_record_star, [(s, with_filters) for s in smiles], n_jobs)
    bad = [s for s, r in zip(smiles, records, strict=True) if r is None]
    if bad:
        raise ValueError(f"{len(bad)} invalid SMILES, e.g. {bad[0]!r}")
    n_bytes = (MOSES_MORGAN_BITS + 7) // 8
    packed = np.zeros((len(records), n_bytes), dtype=np.uint8)
    fragments: Counter[str] = Counter()
    scaffolds: Counter[str] = Counter()
    for i, rec in enumerate(records):
        packed[i] = rec.fingerprint
        fragments.update(rec.fragments)
        if rec.scaffold is not None:
            scaffolds[rec.scaffold] += 1
    props = np.array([rec.properties for rec in records], dtype=np.float64).reshape(
        len(records), len(PROPERTIES)
    )
    return SetFeatures(
        fingerprints=PackedFingerprints(packed, MOSES_MORGAN_BITS),
        fragments=fragments,
        scaffolds=scaffolds,
        passes_filters=np.array([rec.passes_filters for rec in records], dtype=bool),
        properties={name: props[:, j].copy() for j, name in enumerate(PROPERTIES)},
    )
