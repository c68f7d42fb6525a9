"""Per-molecule descriptors behind the MOSES metrics, and their set-level summaries.

Everything here follows ``moses/metrics/utils.py`` of molsets 0.3.1:

* parsing (:func:`get_mol`): an empty string is invalid; otherwise RDKit must parse and
  sanitize the SMILES;
* canonical SMILES: ``Chem.MolToSmiles`` with RDKit defaults (isomeric);
* fragments: the canonical SMILES pieces of ``FragmentOnBRICSBonds`` (with dummy atoms);
* scaffolds: the Bemis-Murcko scaffold's canonical (isomeric) SMILES, kept only when the
  scaffold has at least two rings (``min_rings=2``: MOSES's Scaf metric ignores acyclic and
  single-ring scaffolds);
* properties: Crippen logP, SA score (RDKit Contrib), QED, average molecular weight.

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
from rdkit import Chem, rdBase
from rdkit.Chem.Scaffolds import MurckoScaffold

from molfm.chem.properties import logp, molecular_weight, qed, sa_score
from molfm.eval.filters import mol_passes_filters
from molfm.eval.fingerprints import MORGAN_BITS, PackedFingerprints, morgan_fingerprint

__all__ = [
    "PROPERTIES",
    "get_mol",
    "canonical_smiles",
    "brics_fragments",
    "moses_scaffold",
    "SetFeatures",
    "set_features",
    "parallel_map",
]

# Property name (as MOSES names the metric) -> function of a sanitized Mol.
PROPERTIES: dict[str, Callable[[Chem.Mol], float]] = {
    "logP": logp,
    "SA": sa_score,
    "QED": qed,
    "weight": molecular_weight,
}

T = TypeVar("T")
R = TypeVar("R")


def get_mol(smiles_or_mol: str | Chem.Mol | None) -> Chem.Mol | None:
    """Parse a SMILES the MOSES way; a ``Mol`` passes through, ``None`` stays ``None``.

    RDKit's parse-error messages are suppressed for this call only (``BlockLogs``).
    """
    if smiles_or_mol is None or isinstance(smiles_or_mol, Chem.Mol):
        return smiles_or_mol
    if len(smiles_or_mol) == 0:
        return None
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles_or_mol)
        if mol is None:
            return None
        try:
            Chem.SanitizeMol(mol)
        except ValueError:
            return None
    return mol


def canonical_smiles(smiles_or_mol: str | Chem.Mol | None) -> str | None:
    """RDKit canonical SMILES, or ``None`` if the input is invalid."""
    mol = get_mol(smiles_or_mol)
    return None if mol is None else Chem.MolToSmiles(mol)


def brics_fragments(mol: Chem.Mol) -> list[str]:
    """Canonical SMILES of the BRICS fragments of ``mol`` (duplicates kept, dummy atoms on)."""
    return Chem.MolToSmiles(Chem.FragmentOnBRICSBonds(mol)).split(".")


def moses_scaffold(mol: Chem.Mol, *, min_rings: int = 2) -> str | None:
    """Murcko scaffold SMILES, or ``None`` if it is empty or has fewer than ``min_rings`` rings."""
    try:
        scaffold = MurckoScaffold.GetScaffoldForMol(mol)
    except (ValueError, RuntimeError):
        return None
    n_rings = scaffold.GetRingInfo().NumRings()
    smiles = Chem.MolToSmiles(scaffold)
    if smiles == "" or n_rings < min_rings:
        return None
    return smiles


@dataclass
class _MolRecord:
    fingerprint: np.ndarray  # packed bits
    fragments: list[str]
    scaffold: str | None
    passes_filters: bool
    properties: tuple[float, ...]


def _record(smiles: str, with_filters: bool) -> _MolRecord | None:
    mol = get_mol(smiles)
    if mol is None:
        return None
    return _MolRecord(
        fingerprint=np.packbits(morgan_fingerprint(mol)),
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
    n_bytes = (MORGAN_BITS + 7) // 8
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
        fingerprints=PackedFingerprints(packed, MORGAN_BITS),
        fragments=fragments,
        scaffolds=scaffolds,
        passes_filters=np.array([rec.passes_filters for rec in records], dtype=bool),
        properties={name: props[:, j].copy() for j, name in enumerate(PROPERTIES)},
    )
