"""The MOSES metric suite (Polykovskiy et al. 2020, "Molecular Sets (MOSES)").

Definitions follow molsets 0.3.1 (``moses/metrics/metrics.py`` and ``utils.py``):

``valid``
    Fraction of generated strings that RDKit parses (the empty string is invalid).
``unique@k``
    Unique canonical SMILES among the first ``k`` valid molecules, divided by ``min(k, n)``;
    warns when fewer than ``k`` valid molecules exist.
``FCD/*``
    Fréchet ChemNet Distance to the reference statistics (:mod:`molfm.eval.chemnet`).
``SNN/*``
    Mean over generated molecules of the maximal Tanimoto similarity (Morgan r=2, 1024 bits) to
    a reference molecule.
``Frag/*``, ``Scaf/*``
    Cosine similarity of BRICS-fragment and Murcko-scaffold count vectors (NaN if either set
    has none).
``IntDiv``, ``IntDiv2``
    ``1 - mean_i (mean_j T(i, j)**p)**(1/p)`` over all ordered pairs of generated molecules,
    self-pairs and duplicates included, ``p = 1, 2``. (The paper writes the power outside the
    double mean; the code, which produced the published numbers, applies it per molecule.)
``Filters``
    Fraction passing the MCF/PAINS/atom/charge/ring filters (:mod:`molfm.eval.filters`).
``logP``, ``SA``, ``QED``, ``weight``
    Wasserstein-1 distance between generated and reference property values.
``Novelty``
    Fraction of unique valid generated canonical SMILES absent from the training set.

All metrics after ``valid`` are computed on the valid molecules only, duplicates kept, as
MOSES does. Unlike MOSES, the training SMILES are canonicalized with the installed RDKit
before the novelty comparison (MOSES compares to the stored strings, which its own RDKit
version had canonicalized); pass a ``set`` of canonical SMILES to skip that step.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence, Set
from typing import Literal

import numpy as np
from rdkit import Chem
from scipy.stats import wasserstein_distance

from molfm.eval.chemnet import fcd_statistics, frechet_distance
from molfm.eval.filters import fraction_passes_filters, mol_passes_filters
from molfm.eval.fingerprints import average_agg_tanimoto, morgan_fingerprints
from molfm.eval.moses_features import (
    PROPERTIES,
    brics_fragments,
    canonical_smiles,
    get_mol,
    moses_scaffold,
    parallel_map,
    set_features,
)
from molfm.eval.moses_reference import MosesReference, compute_reference

__all__ = [
    "MOSES_METRIC_NAMES",
    "MosesReference",
    "compute_reference",
    "compute_moses_metrics",
    "fraction_valid",
    "remove_invalid",
    "fraction_unique",
    "novelty",
    "internal_diversity",
    "snn",
    "frag_similarity",
    "scaf_similarity",
    "cos_similarity",
    "fraction_passes_filters",
    "mol_passes_filters",
    "fcd_distance",
    "property_distance",
]

MolLike = str | Chem.Mol
Reference = MosesReference | Sequence[MolLike]
PropertyName = Literal["logP", "SA", "QED", "weight"]
TANIMOTO_BATCH = 5000  # MOSES's block size for the Tanimoto kernels

MOSES_METRIC_NAMES: tuple[str, ...] = (
    "valid", "unique@1000", "unique@10000",
    "FCD/Test", "SNN/Test", "Frag/Test", "Scaf/Test",
    "FCD/TestSF", "SNN/TestSF", "Frag/TestSF", "Scaf/TestSF",
    "IntDiv", "IntDiv2", "Filters", "logP", "SA", "QED", "weight", "Novelty",
)  # fmt: skip


def _valid_mols(molecules: Sequence[MolLike], what: str) -> list[Chem.Mol]:
    mols = [get_mol(m) for m in molecules]
    n_bad = sum(m is None for m in mols)
    if n_bad:
        raise ValueError(f"{what}: {n_bad} invalid molecule(s); remove them first")
    if not mols:
        raise ValueError(f"{what}: empty set of molecules")
    return mols


def fraction_valid(smiles: Sequence[str]) -> float:
    """Fraction of SMILES that RDKit parses and sanitizes (``""`` counts as invalid)."""
    if len(smiles) == 0:
        raise ValueError("fraction_valid of an empty list")
    return 1.0 - sum(get_mol(s) is None for s in smiles) / len(smiles)


def remove_invalid(smiles: Sequence[str], *, canonize: bool = True) -> list[str]:
    """Valid SMILES in input order, canonicalized unless ``canonize=False``."""
    if canonize:
        return [c for c in (canonical_smiles(s) for s in smiles) if c is not None]
    return [s for s in smiles if get_mol(s) is not None]


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


def _canonical_set(smiles: Sequence[str] | Set[str]) -> Set[str]:
    if isinstance(smiles, Set):
        return smiles
    return {c for c in (canonical_smiles(s) for s in smiles) if c is not None}


def novelty(generated: Sequence[MolLike], train: Sequence[str] | Set[str]) -> float:
    """Fraction of unique valid generated molecules whose canonical SMILES is not in ``train``.

    ``train`` given as a ``set``/``frozenset`` is used as-is (canonical SMILES expected);
    any other sequence is canonicalized first. Invalid generated entries are ignored.
    """
    gen = {canonical_smiles(m) for m in generated} - {None}
    if not gen:
        raise ValueError("novelty: no valid generated molecule")
    return len(gen - _canonical_set(train)) / len(gen)


def internal_diversity(
    generated: Sequence[MolLike],
    *,
    p: int = 1,
    device: str = "cpu",
    batch_size: int = TANIMOTO_BATCH,
) -> float:
    """``IntDiv_p = 1 - mean_i (mean_j T(i, j)**p)**(1/p)`` over all pairs, self-pairs included."""
    fps = morgan_fingerprints(_valid_mols(generated, "internal_diversity"))
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
    """Mean over generated molecules of the max Tanimoto similarity to the reference set."""
    gen = morgan_fingerprints(_valid_mols(generated, "snn"))
    if isinstance(reference, MosesReference):
        ref = reference.fingerprints
    else:
        ref = morgan_fingerprints(_valid_mols(reference, "snn reference"))
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


def frag_similarity(generated: Sequence[MolLike], reference: Reference) -> float:
    """Cosine similarity of BRICS fragment counts (``Frag``)."""
    gen = _counts(_valid_mols(generated, "frag_similarity"), "fragments")
    if isinstance(reference, MosesReference):
        return cos_similarity(reference.fragments, gen)
    return cos_similarity(_counts(_valid_mols(reference, "reference"), "fragments"), gen)


def scaf_similarity(generated: Sequence[MolLike], reference: Reference) -> float:
    """Cosine similarity of Murcko scaffold counts, scaffolds with >= 2 rings (``Scaf``)."""
    gen = _counts(_valid_mols(generated, "scaf_similarity"), "scaffolds")
    if isinstance(reference, MosesReference):
        return cos_similarity(reference.scaffolds, gen)
    return cos_similarity(_counts(_valid_mols(reference, "reference"), "scaffolds"), gen)


def fcd_distance(
    generated: Sequence[str],
    reference: MosesReference | Sequence[str],
    *,
    device: str = "cpu",
    batch_size: int = 512,
) -> float:
    """Fréchet ChemNet Distance; NaN (with a warning) for fewer than 2 molecules on a side."""
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

    Either side may be given as molecules/SMILES or directly as an array of values.
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


def compute_moses_metrics(
    generated: Sequence[str],
    *,
    train: Sequence[str] | Set[str] | None,
    test: MosesReference | None,
    test_scaffolds: MosesReference | None,
    k: tuple[int, ...] = (1000, 10000),
    n_jobs: int = 1,
    device: str = "cpu",
    batch_size: int = 512,
) -> dict[str, float]:
    """All MOSES metrics of a generated set, keyed as MOSES names them.

    Parameters
    ----------
    generated
        Generated SMILES, invalid ones included (they count against ``valid``).
    train
        Training SMILES for ``Novelty`` (a ``set`` is taken as canonical); ``None`` skips it.
    test, test_scaffolds
        Reference statistics (e.g. ``MosesReference.load("test")``); ``None`` skips the
        ``*/Test`` (and, for ``test``, the property) or ``*/TestSF`` metrics.
    k
        Prefix sizes for ``unique@k``.
    n_jobs
        Worker processes for the per-molecule descriptors.
    device, batch_size
        Torch device and batch size for ChemNet (FCD) and the Tanimoto kernels.

    Returns
    -------
    dict[str, float]
        In MOSES's order: ``valid``, ``unique@k``..., ``FCD/Test``, ``SNN/Test``, ``Frag/Test``,
        ``Scaf/Test``, the same for ``TestSF``, ``IntDiv``, ``IntDiv2``, ``Filters``, ``logP``,
        ``SA``, ``QED``, ``weight``, ``Novelty``. With no valid molecule every metric after
        ``valid`` is NaN (and a warning is issued).
    """
    metrics: dict[str, float] = {"valid": fraction_valid(generated)}
    canonical, canonical2 = _canonical_twice(remove_invalid(generated, canonize=True), n_jobs)
    keys = _metric_keys(k, test, test_scaffolds, train)
    if not canonical:
        warnings.warn("no valid generated molecule: MOSES metrics are NaN", stacklevel=2)
        return metrics | {key: float("nan") for key in keys}
    for k_i in k:
        metrics[f"unique@{k_i}"] = _unique_at(canonical2, k_i)
    # Descriptors of the molecules parsed from the canonical SMILES (MOSES's ``mols``); FCD on
    # their canonical SMILES (fcd_torch canonicalizes its input again).
    feats = set_features(canonical, with_filters=True, n_jobs=n_jobs)
    gen_fcd = fcd_statistics(canonical2, canonize=False, batch_size=batch_size, device=device)
    tanimoto = {"device": device, "batch_size": TANIMOTO_BATCH}
    for suffix, ref in (("Test", test), ("TestSF", test_scaffolds)):
        if ref is None:
            continue
        metrics[f"FCD/{suffix}"] = (
            float("nan")
            if gen_fcd is None
            else frechet_distance(ref.fcd_mu, ref.fcd_sigma, gen_fcd[0], gen_fcd[1])
        )
        metrics[f"SNN/{suffix}"] = average_agg_tanimoto(
            ref.fingerprints, feats.fingerprints, agg="max", **tanimoto
        )
        metrics[f"Frag/{suffix}"] = cos_similarity(ref.fragments, feats.fragments)
        metrics[f"Scaf/{suffix}"] = cos_similarity(ref.scaffolds, feats.scaffolds)
    for name, p in (("IntDiv", 1), ("IntDiv2", 2)):
        metrics[name] = 1.0 - average_agg_tanimoto(
            feats.fingerprints, feats.fingerprints, agg="mean", p=p, **tanimoto
        )
    metrics["Filters"] = float(np.mean(feats.passes_filters))
    if test is not None:
        for name in PROPERTIES:
            metrics[name] = float(
                wasserstein_distance(test.properties[name], feats.properties[name])
            )
    if train is not None:
        metrics["Novelty"] = len(set(canonical2) - _canonical_set(train)) / len(set(canonical2))
    return metrics


def _canonical_twice(canonical: list[str], n_jobs: int) -> tuple[list[str], list[str]]:
    """Pairs (canonical SMILES, canonical SMILES of its re-parsed molecule), dropping any that
    fail to re-parse (MOSES would crash on them)."""
    again = parallel_map(canonical_smiles, canonical, n_jobs)
    pairs = [(c, c2) for c, c2 in zip(canonical, again, strict=True) if c2 is not None]
    if len(pairs) < len(canonical):
        warnings.warn(
            f"{len(canonical) - len(pairs)} canonical SMILES did not parse again; dropped",
            stacklevel=3,
        )
    return [c for c, _ in pairs], [c2 for _, c2 in pairs]


def _unique_at(canonical: list[str], k: int) -> float:
    if len(canonical) < k:
        warnings.warn(
            f"Can't compute unique@{k}: gen contains only {len(canonical)} molecules",
            stacklevel=3,
        )
    return len(set(canonical[:k])) / len(canonical[:k])


def _metric_keys(
    k: tuple[int, ...],
    test: MosesReference | None,
    test_scaffolds: MosesReference | None,
    train: object,
) -> list[str]:
    keys = [f"unique@{k_i}" for k_i in k]
    for suffix, ref in (("Test", test), ("TestSF", test_scaffolds)):
        if ref is not None:
            keys += [f"{m}/{suffix}" for m in ("FCD", "SNN", "Frag", "Scaf")]
    keys += ["IntDiv", "IntDiv2", "Filters"]
    if test is not None:
        keys += list(PROPERTIES)
    if train is not None:
        keys.append("Novelty")
    return keys
