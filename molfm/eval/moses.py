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
MOSES does. Deliberate differences from molsets, none of which changes a published number
beyond round-off:

* the training SMILES are canonicalized with the installed RDKit before the novelty
  comparison (MOSES compares to the stored strings, canonical for its own RDKit; 276 of the
  1.58M MOSES training strings differ under RDKit 2026.09); pass a ``set`` of canonical SMILES
  to skip that step;
* Tanimoto ratios are taken in float64 (MOSES: float32, ~1e-8 apart);
* the FCD matrix-root trace uses symmetric eigendecompositions instead of ``sqrtm``
  (:func:`molfm.eval.chemnet.frechet_distance`; ~1e-9 relative apart on MOSES statistics);
* a set with no valid molecule yields NaN metrics with a warning instead of an exception.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence, Set

import numpy as np
from scipy.stats import wasserstein_distance

from molfm.chem.parse import canonical_smiles
from molfm.eval.chemnet import fcd_statistics, frechet_distance
from molfm.eval.filters import fraction_passes_filters, mol_passes_filters
from molfm.eval.fingerprints import average_agg_tanimoto
from molfm.eval.moses_features import PROPERTIES, parallel_map, set_features
from molfm.eval.moses_metrics import (
    TANIMOTO_BATCH,
    canonical_smiles_set,
    cos_similarity,
    fcd_distance,
    fraction_unique,
    fraction_valid,
    frag_similarity,
    internal_diversity,
    novelty,
    property_distance,
    remove_invalid,
    scaf_similarity,
    snn,
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

MOSES_METRIC_NAMES: tuple[str, ...] = (
    "valid", "unique@1000", "unique@10000",
    "FCD/Test", "SNN/Test", "Frag/Test", "Scaf/Test",
    "FCD/TestSF", "SNN/TestSF", "Frag/TestSF", "Scaf/TestSF",
    "IntDiv", "IntDiv2", "Filters", "logP", "SA", "QED", "weight", "Novelty",
)  # fmt: skip


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
    if len(generated) == 0:
        raise ValueError("compute_moses_metrics: no generated SMILES")
    parsed = parallel_map(canonical_smiles, generated, n_jobs)  # None = invalid
    metrics: dict[str, float] = {"valid": 1.0 - parsed.count(None) / len(parsed)}
    canonical, canonical2 = _canonical_twice([c for c in parsed if c is not None], n_jobs)
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
        metrics["Novelty"] = len(set(canonical2) - canonical_smiles_set(train)) / len(
            set(canonical2)
        )
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
