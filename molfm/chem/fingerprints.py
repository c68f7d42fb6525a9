"""Morgan fingerprints and Tanimoto similarity: one generator, RDKit's own similarity.

Every Morgan fingerprint in molfm comes from :func:`morgan_generator` (RDKit's
``rdFingerprintGenerator``; no chirality, the bits of the older
``GetMorganFingerprintAsBitVect``). Two forms are offered:

* :func:`morgan_fingerprint` / :func:`morgan_fingerprints`: RDKit ``ExplicitBitVect`` objects,
  compared with :func:`tanimoto`, :func:`bulk_tanimoto` (one molecule against many, RDKit's
  ``DataStructs.BulkTanimotoSimilarity``) and :func:`tanimoto_matrix` (rows of the latter);
* :func:`morgan_bits`: an ``(n, n_bits)`` ``uint8`` 0/1 array, for storage and for the dense
  batched kernel of the MOSES metrics (:func:`molfm.eval.fingerprints.average_agg_tanimoto`),
  which compares tens of thousands of molecules with a reference set of 176k.

Tanimoto similarity is ``|a & b| / (|a| + |b| - |a & b|)`` computed in double precision; RDKit
returns 0.0 for two empty fingerprints, which no molecule with an atom has (every atom sets
its radius-0 bit).

Defaults are radius 2 and 2048 bits (RDKit's generator default; the similarity of Jin et al.
2019 that pair-tuning uses). The MOSES metrics use 1024 bits and pass ``n_bits`` explicitly.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator

from molfm.chem.parse import mol_or_none

__all__ = [
    "MORGAN_RADIUS",
    "MORGAN_BITS",
    "morgan_generator",
    "morgan_fingerprint",
    "morgan_fingerprints",
    "morgan_bits",
    "tanimoto",
    "bulk_tanimoto",
    "tanimoto_matrix",
]

MORGAN_RADIUS = 2
MORGAN_BITS = 2048


@functools.cache
def morgan_generator(
    radius: int = MORGAN_RADIUS, n_bits: int = MORGAN_BITS
) -> rdFingerprintGenerator.FingerprintGenerator64:
    """The (cached) RDKit Morgan generator for ``radius`` and ``n_bits``."""
    return rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)


def morgan_fingerprint(
    mol: Chem.Mol, *, radius: int = MORGAN_RADIUS, n_bits: int = MORGAN_BITS
) -> DataStructs.ExplicitBitVect:
    """Morgan bit vector of one sanitized molecule.

    Parameters
    ----------
    mol
        A sanitized molecule.
    radius, n_bits
        Morgan radius and fingerprint length.

    Returns
    -------
    DataStructs.ExplicitBitVect
        The same bits as ``AllChem.GetMorganFingerprintAsBitVect(mol, radius, nBits=n_bits)``.
    """
    return morgan_generator(radius, n_bits).GetFingerprint(mol)


def morgan_fingerprints(
    mols: Sequence[Chem.Mol], *, radius: int = MORGAN_RADIUS, n_bits: int = MORGAN_BITS
) -> list[DataStructs.ExplicitBitVect]:
    """:func:`morgan_fingerprint` of each molecule."""
    generator = morgan_generator(radius, n_bits)
    return [generator.GetFingerprint(mol) for mol in mols]


def morgan_bits(
    mols: Sequence[Chem.Mol], *, radius: int = MORGAN_RADIUS, n_bits: int = MORGAN_BITS
) -> np.ndarray:
    """Morgan fingerprints of ``mols`` as rows of 0/1 bits.

    Parameters
    ----------
    mols
        Sanitized molecules.
    radius, n_bits
        Morgan radius and fingerprint length.

    Returns
    -------
    numpy.ndarray
        ``uint8`` ``(len(mols), n_bits)``; row ``i`` has a 1 at each on-bit of
        :func:`morgan_fingerprint` of ``mols[i]``.
    """
    generator = morgan_generator(radius, n_bits)
    out = np.zeros((len(mols), n_bits), dtype=np.uint8)
    for i, mol in enumerate(mols):
        out[i] = generator.GetFingerprintAsNumPy(mol)
    return out


def tanimoto(
    a: str | Chem.Mol, b: str | Chem.Mol, *, radius: int = MORGAN_RADIUS, n_bits: int = MORGAN_BITS
) -> float:
    """Tanimoto similarity of the Morgan fingerprints of two molecules.

    Parameters
    ----------
    a, b
        Molecules or SMILES (parsed with :func:`molfm.chem.parse.mol_or_none`).
    radius, n_bits
        Morgan radius and fingerprint length.

    Returns
    -------
    float
        Similarity in [0, 1]; NaN when ``a`` or ``b`` is not a valid molecule.

    Examples
    --------
    >>> tanimoto("CCO", "OCC"), tanimoto("CCO", "C1CC")
    (1.0, nan)
    """
    mol_a, mol_b = mol_or_none(a), mol_or_none(b)
    if mol_a is None or mol_b is None:
        return float("nan")
    fps = morgan_fingerprints([mol_a, mol_b], radius=radius, n_bits=n_bits)
    return float(DataStructs.TanimotoSimilarity(fps[0], fps[1]))


def bulk_tanimoto(
    query: DataStructs.ExplicitBitVect, targets: Sequence[DataStructs.ExplicitBitVect]
) -> np.ndarray:
    """Tanimoto similarity of one fingerprint to each of ``targets`` (RDKit's bulk routine).

    Returns
    -------
    numpy.ndarray
        ``float64`` ``(len(targets),)``.
    """
    return np.asarray(DataStructs.BulkTanimotoSimilarity(query, list(targets)), dtype=np.float64)


def tanimoto_matrix(
    queries: Sequence[DataStructs.ExplicitBitVect],
    targets: Sequence[DataStructs.ExplicitBitVect],
) -> np.ndarray:
    """Tanimoto similarity of every query to every target, one :func:`bulk_tanimoto` per query.

    Returns
    -------
    numpy.ndarray
        ``float64`` ``(len(queries), len(targets))``.
    """
    targets = list(targets)
    out = np.empty((len(queries), len(targets)), dtype=np.float64)
    for i, query in enumerate(queries):
        out[i] = DataStructs.BulkTanimotoSimilarity(query, targets)
    return out
