"""The individual MOSES metrics, usable on their own (definitions in :mod:`molfm.eval.moses`).

Each function takes SMILES or RDKit molecules. Functions that need valid molecules raise
``ValueError`` on invalid ones (MOSES filters them first with ``remove_invalid``); a reference
set is either a :class:`~molfm.eval.moses_reference.MosesReference` or a list of molecules.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence, Set
from typing import Literal

import numpy as np
from rdkit import Chem
from scipy.stats import wasserstein_distance

from molfm.chem.parse import canonical_smiles, mol_or_none
from molfm.eval.chemnet import fcd_statistics, frechet_distance
from molfm.eval.fingerprints import average_agg_tanimoto, moses_fingerprints
from molfm.eval.moses_features import PROPERTIES, brics_fragments, moses_scaffold
from molfm.eval.moses_reference import MosesReference

__all__ = [
    "TANIMOTO_BATCH",
    "fraction_valid",
    "remove_invalid",
    "fraction_unique",
    "canonical_smiles_set",
    "novelty",
    "internal_diversity",
    "snn",
    "cos_similarity",
    "frag_similarity",
    "scaf_similarity",
    "fcd_distance",
    "property_distance",
]

MolLike = str | Chem.Mol
Reference = MosesReference | Sequence[MolLike]
PropertyName = Literal["logP", "SA", "QED", "weight"]
TANIMOTO_BATCH = 5000  # MOSES's block size for the Tanimoto kernels


def _valid_mols(molecules: Sequence[MolLike], what: str) -> list[Chem.Mol]:
    mols = [mol_or_none(m) for m in molecules]
    n_bad = sum(m is None for m in mols)
    if n_bad:
        raise ValueError(f"{what}: {n_bad} invalid molecule(s); remove them first")
    if not mols:
        raise ValueError(f"{what}: empty set of molecules")
    return mols


def fraction_valid(smiles: Sequence[str]) -> float:
    """Fraction of SMILES that RDKit parses and sanitizes (MOSES ``valid``).

    Parameters
    ----------
    smiles
        Generated strings; the empty string counts as invalid.

    Returns
    -------
    float
        Valid fraction in [0, 1].
    """
    if len(smiles) == 0:
        raise ValueError("fraction_valid of an empty list")
    return 1.0 - sum(mol_or_none(s) is None for s in smiles) / len(smiles)


def remove_invalid(smiles: Sequence[str], *, canonize: bool = True) -> list[str]:
    """Valid SMILES in input order, canonicalized unless ``canonize=False``."""
    if canonize:
        return [c for c in (canonical_smiles(s) for s in smiles) if c is not None]
    return [s for s in smiles if mol_or_none(s) is not None]


def fraction_unique(
    molecules: Sequence[MolLike], k: int | None = None, *, check_validity: bool = True
) -> float:
    """Unique canonical SMILES among the first ``k`` molecules over their number.

    Parameters
    ----------
    molecules
        SMILES or molecules (MOSES passes the valid canonical SMILES).
    k
        Look only at the first ``k``; warns when there are fewer (``unique@k`` is then
        computed over all of them).
    check_validity
        Raise ``ValueError`` when an invalid molecule is present.
    """
    if k is not None:
        if len(molecules) < k:
            warnings.warn(
                f"Can't compute unique@{k}: gen contains only {len(molecules)} molecules",
                stacklevel=2,
            )
        molecules = molecules[:k]
    if len(molecules) == 0:
        raise ValueError("fraction_unique of an empty list")
    canonic = {canonical_smiles(m) for m in molecules}
    if None in canonic and check_validity:
        raise ValueError("Invalid molecule passed to unique@k")
    return len(canonic) / len(molecules)


def canonical_smiles_set(smiles: Sequence[str] | Set[str]) -> Set[str]:
    """Set of canonical SMILES of the valid entries; a ``set`` input is returned unchanged."""
    if isinstance(smiles, Set):
        return smiles
    return {c for c in (canonical_smiles(s) for s in smiles) if c is not None}


def novelty(generated: Sequence[MolLike], train: Sequence[str] | Set[str]) -> float:
    """Fraction of unique valid generated molecules absent from the training set (``Novelty``).

    Parameters
    ----------
    generated
        Generated SMILES or molecules; invalid entries are ignored, duplicates count once.
    train
        Training SMILES. A ``set``/``frozenset`` is used as-is (canonical SMILES expected,
        e.g. from :func:`canonical_smiles_set`); any other sequence is canonicalized first.

    Returns
    -------
    float
        Novel fraction in [0, 1].
    """
    gen = {canonical_smiles(m) for m in generated} - {None}
    if not gen:
        raise ValueError("novelty: no valid generated molecule")
    return len(gen - canonical_smiles_set(train)) / len(gen)


def internal_diversity(
    generated: Sequence[MolLike],
    *,
    p: int = 1,
    device: str = "cpu",
    batch_size: int = TANIMOTO_BATCH,
) -> float:
    """Internal diversity ``1 - mean_i (mean_j T(i, j)**p)**(1/p)`` (``IntDiv``, ``IntDiv2``).

    Parameters
    ----------
    generated
        Valid SMILES or molecules; every ordered pair counts, self-pairs and duplicates too.
    p
        1 for ``IntDiv``, 2 for ``IntDiv2``.
    device, batch_size
        Torch device and block size of the Tanimoto kernel.

    Returns
    -------
    float
        Diversity in [0, 1]; 0 for a set of identical molecules.
    """
    fps = moses_fingerprints(_valid_mols(generated, "internal_diversity"))
    return 1.0 - average_agg_tanimoto(
        fps, fps, agg="mean", p=p, device=device, batch_size=batch_size
    )


def snn(
    generated: Sequence[MolLike],
    reference: Reference,
    *,
    device: str = "cpu",
    batch_size: int = TANIMOTO_BATCH,
) -> float:
    """Similarity to nearest neighbour (``SNN``).

    Parameters
    ----------
    generated
        Valid SMILES or molecules.
    reference
        A :class:`MosesReference` or valid reference molecules.
    device, batch_size
        Torch device and block size of the Tanimoto kernel.

    Returns
    -------
    float
        Mean over generated molecules of their maximal Tanimoto similarity (Morgan r=2,
        1024 bits) to a reference molecule.
    """
    gen = moses_fingerprints(_valid_mols(generated, "snn"))
    if isinstance(reference, MosesReference):
        ref = reference.fingerprints
    else:
        ref = moses_fingerprints(_valid_mols(reference, "snn reference"))
    return average_agg_tanimoto(ref, gen, agg="max", device=device, batch_size=batch_size)


def cos_similarity(ref_counts: Mapping[str, int], gen_counts: Mapping[str, int]) -> float:
    """Cosine similarity of two sparse count vectors (absent keys are 0); NaN if one is empty."""
    if len(ref_counts) == 0 or len(gen_counts) == 0:
        return float("nan")
    keys = sorted(set(ref_counts) | set(gen_counts))
    r = np.array([ref_counts.get(key, 0) for key in keys], dtype=np.float64)
    g = np.array([gen_counts.get(key, 0) for key in keys], dtype=np.float64)
    return float(np.clip(r @ g / np.sqrt((r @ r) * (g @ g)), -1.0, 1.0))


def _counts(mols: Sequence[Chem.Mol], kind: Literal["fragments", "scaffolds"]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for mol in mols:
        keys = brics_fragments(mol) if kind == "fragments" else [moses_scaffold(mol)]
        for key in keys:
            if key is not None:
                counts[key] = counts.get(key, 0) + 1
    return counts


def _count_similarity(
    generated: Sequence[MolLike],
    reference: Reference,
    kind: Literal["fragments", "scaffolds"],
    what: str,
) -> float:
    """:func:`cos_similarity` of the ``kind`` counts of ``reference`` and ``generated``."""
    gen = _counts(_valid_mols(generated, what), kind)
    if isinstance(reference, MosesReference):
        return cos_similarity(getattr(reference, kind), gen)
    return cos_similarity(_counts(_valid_mols(reference, "reference"), kind), gen)


def frag_similarity(generated: Sequence[MolLike], reference: Reference) -> float:
    """Cosine similarity of BRICS fragment count vectors (``Frag``).

    Parameters
    ----------
    generated
        Valid SMILES or molecules.
    reference
        A :class:`MosesReference` or valid reference molecules.

    Returns
    -------
    float
        Similarity in [0, 1]; NaN if either side has no fragment.
    """
    return _count_similarity(generated, reference, "fragments", "frag_similarity")


def scaf_similarity(generated: Sequence[MolLike], reference: Reference) -> float:
    """Cosine similarity of Bemis-Murcko scaffold count vectors (``Scaf``).

    As MOSES, only scaffolds with at least two rings are counted.

    Parameters
    ----------
    generated
        Valid SMILES or molecules.
    reference
        A :class:`MosesReference` or valid reference molecules.

    Returns
    -------
    float
        Similarity in [0, 1]; NaN if either side has no such scaffold.
    """
    return _count_similarity(generated, reference, "scaffolds", "scaf_similarity")


def fcd_distance(
    generated: Sequence[str],
    reference: MosesReference | Sequence[str],
    *,
    device: str = "cpu",
    batch_size: int = 512,
) -> float:
    """Fréchet ChemNet Distance (``FCD``).

    Parameters
    ----------
    generated
        Valid SMILES (canonicalized before ChemNet, as fcd_torch does).
    reference
        A :class:`MosesReference` (its stored statistics) or valid reference SMILES.
    device, batch_size
        Torch device and batch size for ChemNet.

    Returns
    -------
    float
        The distance (>= 0 up to round-off); NaN, with a warning, when a side has fewer than
        two molecules.
    """
    gen = fcd_statistics(generated, canonize=True, batch_size=batch_size, device=device)
    if gen is None:
        return float("nan")
    if isinstance(reference, MosesReference):
        ref = (reference.fcd_mu, reference.fcd_sigma)
    else:
        ref = fcd_statistics(reference, canonize=True, batch_size=batch_size, device=device)
    if ref is None:
        return float("nan")
    return frechet_distance(ref[0], ref[1], gen[0], gen[1])


def property_distance(
    generated: Sequence[MolLike] | np.ndarray,
    reference: MosesReference | Sequence[MolLike] | np.ndarray,
    prop: PropertyName,
) -> float:
    """Wasserstein-1 distance between property distributions (``logP``, ``SA``, ``QED``, ``weight``).

    Parameters
    ----------
    generated
        Valid SMILES or molecules, or a float array of property values.
    reference
        A :class:`MosesReference`, valid molecules, or a float array of values.
    prop
        Property name as MOSES spells it.

    Returns
    -------
    float
        ``scipy.stats.wasserstein_distance(reference_values, generated_values)``.
    """
    if prop not in PROPERTIES:
        raise ValueError(f"unknown property {prop!r}; choose from {list(PROPERTIES)}")
    fn = PROPERTIES[prop]

    def values(side: Sequence[MolLike] | np.ndarray, what: str) -> np.ndarray:
        if isinstance(side, np.ndarray) and side.dtype.kind == "f":
            return side
        return np.array([fn(m) for m in _valid_mols(side, what)], dtype=np.float64)

    ref = (
        reference.properties[prop]
        if isinstance(reference, MosesReference)
        else values(reference, "reference")
    )
    return float(wasserstein_distance(ref, values(generated, "property_distance")))
