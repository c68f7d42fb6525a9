"""MOSES metrics: hand-computable cases per metric, then the whole suite on real MOSES slices."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from rdkit import Chem, DataStructs, rdBase
from rdkit.Chem import AllChem, Crippen
from scipy.stats import wasserstein_distance

from molfm.eval.moses import (
    MOSES_METRIC_NAMES,
    MosesReference,
    compute_moses_metrics,
    cos_similarity,
    fcd_distance,
    fraction_passes_filters,
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
from molfm.eval.moses_metrics import canonical_smiles_set


def rdkit_tanimoto(a: str, b: str) -> float:
    with warnings.catch_warnings(), rdBase.BlockLogs():
        warnings.simplefilter("ignore")
        fa, fb = (
            AllChem.GetMorganFingerprintAsBitVect(Chem.MolFromSmiles(s), 2, nBits=1024)
            for s in (a, b)
        )
    return DataStructs.TanimotoSimilarity(fa, fb)


# --- validity, uniqueness, novelty -------------------------------------------------------


def test_fraction_valid() -> None:
    assert fraction_valid(["C", "invalid", "CC"]) == pytest.approx(2 / 3)
    assert fraction_valid(["", "C1CC", "c1cccc1", "CCO"]) == pytest.approx(1 / 4)
    with pytest.raises(ValueError):
        fraction_valid([])


def test_remove_invalid_canonicalizes() -> None:
    assert remove_invalid(["OCC", "xyz", "C1=CC=CC=C1"]) == ["CCO", "c1ccccc1"]
    assert remove_invalid(["OCC", "xyz"], canonize=False) == ["OCC"]


def test_fraction_unique_sees_through_spelling() -> None:
    gen = ["CCO", "OCC", "C(C)O", "c1ccccc1", "C1=CC=CC=C1"]
    assert fraction_unique(gen) == pytest.approx(2 / 5)
    assert fraction_unique(gen, k=3) == pytest.approx(1 / 3)
    with pytest.warns(UserWarning, match="unique@10"):
        assert fraction_unique(gen, k=10) == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="Invalid"):
        fraction_unique(["CCO", "xyz"])
    assert fraction_unique(["CCO", "xyz"], check_validity=False) == pytest.approx(1.0)


def test_novelty_counts_unique_valid_molecules() -> None:
    gen = ["CCO", "OCC", "CCN", "c1ccccc1", "xyz"]
    # unique valid: {CCO, CCN, c1ccccc1}; train holds ethanol spelled differently.
    assert novelty(gen, ["C(C)O", "CCCC"]) == pytest.approx(2 / 3)
    assert novelty(gen, {"CCO", "CCN", "c1ccccc1"}) == 0.0
    assert novelty(gen, {"C(C)O"}) == 1.0  # a set is taken as canonical, not re-canonicalized
    with pytest.raises(ValueError):
        novelty(["xyz"], ["CCO"])


# --- fingerprint metrics -----------------------------------------------------------------

A, B = "CC(=O)Oc1ccccc1C(=O)O", "CC(=O)Nc1ccc(O)cc1"  # aspirin, paracetamol


def test_internal_diversity_of_identical_molecules_is_zero() -> None:
    assert internal_diversity(["CCO", "OCC", "CCO"]) == pytest.approx(0.0, abs=1e-12)
    assert internal_diversity(["CCO"] * 4, p=2) == pytest.approx(0.0, abs=1e-12)


def test_internal_diversity_of_a_pair() -> None:
    t = rdkit_tanimoto(A, B)
    assert 0 < t < 1
    # all ordered pairs with self-pairs: each row's mean similarity is (1 + t) / 2
    assert internal_diversity([A, B]) == pytest.approx(1 - (1 + t) / 2, abs=1e-9)
    assert internal_diversity([A, B], p=2) == pytest.approx(1 - math.sqrt((1 + t**2) / 2), abs=1e-9)


def test_snn(read: Callable[[str], list[str]]) -> None:
    gen = read("moses_test_200.csv")[:30]
    assert snn(gen, gen) == pytest.approx(1.0)
    assert snn([A], [B, "CCCC"]) == pytest.approx(rdkit_tanimoto(A, B), abs=1e-9)
    with pytest.raises(ValueError, match="invalid"):
        snn(["xyz"], gen)


# --- fragments and scaffolds -------------------------------------------------------------


def test_cos_similarity() -> None:
    assert cos_similarity({"a": 1, "b": 1}, {"a": 1}) == pytest.approx(1 / math.sqrt(2))
    assert cos_similarity({"a": 2, "b": 4}, {"a": 1, "b": 2}) == pytest.approx(1.0)
    assert cos_similarity({"a": 1}, {"b": 1}) == 0.0
    assert math.isnan(cos_similarity({}, {"a": 1}))


def test_frag_similarity(read: Callable[[str], list[str]]) -> None:
    gen = read("moses_test_200.csv")[:30]
    assert frag_similarity(gen, gen) == pytest.approx(1.0)
    assert frag_similarity(gen, list(reversed(gen))) == pytest.approx(1.0)  # counts, not order
    assert frag_similarity(["CCO"], ["c1ccccc1"]) == 0.0  # no shared BRICS fragment
    # aspirin -> acetyl + aryl pieces; paracetamol shares the acetyl fragment [1*]C(C)=O
    assert 0 < frag_similarity([A], [B]) < 1


def test_scaf_similarity_uses_two_ring_scaffolds_only(read: Callable[[str], list[str]]) -> None:
    gen = read("moses_test_200.csv")[:30]
    assert scaf_similarity(gen, gen) == pytest.approx(1.0)
    # naphthalene core in both; a single benzene ring is not a MOSES scaffold (min_rings=2).
    assert scaf_similarity(["Cc1ccc2ccccc2c1"], ["c1ccc2ccccc2c1", "Cc1ccccc1"]) == 1.0
    assert math.isnan(scaf_similarity(["Cc1ccccc1"], ["c1ccccc1"]))


# --- FCD, filters, properties ------------------------------------------------------------


def test_fcd_orders_sets_by_closeness(read: Callable[[str], list[str]]) -> None:
    test = read("moses_test_200.csv")[:60]
    scaffolds = read("moses_test_scaffolds_200.csv")[:60]
    alkanes = ["C" * n for n in range(1, 12)] + ["CC(C)" + "C" * n for n in range(1, 10)]
    near = fcd_distance(test, scaffolds)
    far = fcd_distance(test, alkanes)
    assert 0 < near < far
    with pytest.warns(UserWarning, match="fewer than 2"):
        assert math.isnan(fcd_distance(["CCO"], test))


def test_fraction_passes_filters_accepts_smiles_workflow() -> None:
    mols = [Chem.MolFromSmiles(s) for s in ("CCO", "CCC=O")]
    assert fraction_passes_filters(mols) == 0.5


def test_property_distance_is_scipy_wasserstein() -> None:
    rng = np.random.default_rng(0)
    u, v = rng.normal(0, 1, 50), rng.normal(0.5, 2, 70)
    assert property_distance(u, v, "logP") == pytest.approx(wasserstein_distance(v, u))
    gen, ref = ["CCO", "CCCCO", "c1ccccc1O"], ["CCN", "CCCCCCN"]
    logp = lambda ss: [Crippen.MolLogP(Chem.MolFromSmiles(s)) for s in ss]  # noqa: E731
    assert property_distance(gen, ref, "logP") == pytest.approx(
        wasserstein_distance(logp(ref), logp(gen))
    )
    assert property_distance(gen, gen, "QED") == 0.0
    with pytest.raises(ValueError, match="unknown property"):
        property_distance(gen, ref, "TPSA")  # type: ignore[arg-type]


# --- the suite ---------------------------------------------------------------------------


def test_suite_on_a_small_hand_set() -> None:
    gen = ["CCO", "OCC", "xyz", "", "c1ccccc1", "CCC=O"]
    ref = MosesReference.from_smiles(["CCO", "c1ccccc1", "CCN"])
    with pytest.warns(UserWarning, match="unique@"):
        m = compute_moses_metrics(gen, train=["CCO"], test=ref, test_scaffolds=None, k=(3, 10))
    assert list(m) == [
        "valid", "unique@3", "unique@10", "FCD/Test", "SNN/Test", "Frag/Test", "Scaf/Test",
        "IntDiv", "IntDiv2", "Filters", "logP", "SA", "QED", "weight", "Novelty",
    ]  # fmt: skip
    assert m["valid"] == pytest.approx(4 / 6)
    assert m["unique@3"] == pytest.approx(2 / 3)  # CCO, CCO, c1ccccc1
    assert m["unique@10"] == pytest.approx(3 / 4)  # all 4 valid: 3 distinct
    assert m["Novelty"] == pytest.approx(2 / 3)  # benzene and propanal are new
    assert m["Filters"] == pytest.approx(3 / 4)  # propanal is an aldehyde (MCF7)
    valid = ["CCO", "CCO", "c1ccccc1", "CCC=O"]
    assert m["SNN/Test"] == pytest.approx(snn(valid, ["CCO", "c1ccccc1", "CCN"]))
    assert m["IntDiv"] == pytest.approx(internal_diversity(valid))
    assert math.isnan(m["Scaf/Test"])  # no two-ring scaffolds anywhere


def test_suite_against_its_own_reference_is_perfect(read: Callable[[str], list[str]]) -> None:
    gen = read("moses_test_200.csv")[:40]
    ref = MosesReference.from_smiles(gen)
    m = compute_moses_metrics(gen, train=None, test=None, test_scaffolds=ref, k=(40,))
    assert list(m) == [
        "valid", "unique@40", "FCD/TestSF", "SNN/TestSF", "Frag/TestSF", "Scaf/TestSF",
        "IntDiv", "IntDiv2", "Filters",
    ]  # fmt: skip
    assert m["SNN/TestSF"] == pytest.approx(1.0)
    assert m["Frag/TestSF"] == pytest.approx(1.0)
    assert m["Scaf/TestSF"] == pytest.approx(1.0)
    assert abs(m["FCD/TestSF"]) < 1e-3


def test_suite_without_valid_molecules_is_nan() -> None:
    with pytest.warns(UserWarning, match="no valid"):
        m = compute_moses_metrics(["xyz", ""], train=None, test=None, test_scaffolds=None)
    assert m["valid"] == 0.0
    assert list(m) == ["valid", "unique@1000", "unique@10000", "IntDiv", "IntDiv2", "Filters"]
    assert all(math.isnan(v) for k, v in m.items() if k != "valid")


def test_suite_on_real_moses_data(read: Callable[[str], list[str]]) -> None:
    gen = read("moses_test_200.csv")
    train = read("moses_train_500.csv")
    ref = MosesReference.from_smiles(read("moses_test_scaffolds_200.csv"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unique@k with k > 200
        m = compute_moses_metrics(gen, train=train, test=ref, test_scaffolds=None)
    assert list(m) == [name for name in MOSES_METRIC_NAMES if not name.endswith("/TestSF")]
    # Test-set molecules: all valid, distinct, absent from train, and they pass the filters
    # MOSES built the data set with.
    for key in ("valid", "unique@1000", "unique@10000", "Novelty", "Filters"):
        assert m[key] == 1.0, key
    # MOSES reports IntDiv 0.857 / IntDiv2 0.851 for its sets; 200 molecules carry 1/200
    # self-similarity, which lowers them a little.
    assert 0.83 < m["IntDiv"] < 0.87 and 0.81 < m["IntDiv2"] < m["IntDiv"]
    # Against scaffold-split molecules: similar chemistry, different scaffolds.
    assert 0.3 < m["SNN/Test"] < 0.7
    assert m["Frag/Test"] > 0.9
    assert m["Scaf/Test"] < 0.2
    assert 0.5 < m["FCD/Test"] < 20
    assert 0 < m["logP"] < 0.5 and 0 < m["SA"] < 0.5 and 0 < m["QED"] < 0.05
    assert 0 < m["weight"] < 15
    # The suite agrees with the stand-alone functions.
    assert m["SNN/Test"] == pytest.approx(snn(gen, ref))
    assert m["Frag/Test"] == pytest.approx(frag_similarity(gen, ref))
    assert m["Scaf/Test"] == pytest.approx(scaf_similarity(gen, ref))
    assert m["weight"] == pytest.approx(property_distance(gen, ref, "weight"))
    assert m["IntDiv2"] == pytest.approx(internal_diversity(gen, p=2))


def test_worker_processes_give_identical_results(read: Callable[[str], list[str]]) -> None:
    gen = read("moses_test_200.csv")[:24] + ["xyz"]
    kwargs = {"train": read("moses_train_500.csv"), "test": None, "test_scaffolds": None}
    serial = compute_moses_metrics(gen, k=(10,), n_jobs=1, **kwargs)
    parallel = compute_moses_metrics(gen, k=(10,), n_jobs=2, **kwargs)
    assert serial == parallel
    assert serial["valid"] == pytest.approx(24 / 25)


def test_package_reexports_and_input_checks() -> None:
    import molfm.eval

    assert molfm.eval.compute_moses_metrics is compute_moses_metrics
    assert molfm.eval.MosesReference is MosesReference
    assert canonical_smiles_set(["OCC", "xyz", "C(C)O"]) == {"CCO"}
    with pytest.raises(ValueError, match="no generated"):
        compute_moses_metrics([], train=None, test=None, test_scaffolds=None)


def test_package_reexports_every_moses_name() -> None:
    # molfm.eval lists the names itself to stay lazy; the two lists must not drift apart.
    import molfm.eval
    import molfm.eval.moses

    assert molfm.eval.__all__ == molfm.eval.moses.__all__
