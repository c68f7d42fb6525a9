"""Pair mining for pair-tuning on the MOSES fixture: constraints, completeness, seeding."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem, DataStructs
from rdkit.Chem import QED, Crippen, rdFingerprintGenerator

from molfm.chem.fingerprints import tanimoto
from molfm.chem.properties import PROPERTIES, sa_score
from molfm.systems.gp_molformer.pair_tuning.pairs import (
    PROPERTY_FUNCTIONS,
    compute_property,
    lowest_indices,
    make_pairs,
    property_function,
)

DATA = Path(__file__).parents[2] / "data"
SMILES = pd.read_csv(DATA / "moses_train_500.csv")["SMILES"].tolist()
GEN = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)


def rdkit_similarity(a: str, b: str) -> float:
    """Independent path: RDKit bit vectors and DataStructs' Tanimoto."""
    fa = GEN.GetFingerprint(Chem.MolFromSmiles(a))
    fb = GEN.GetFingerprint(Chem.MolFromSmiles(b))
    return DataStructs.TanimotoSimilarity(fa, fb)


@pytest.fixture(scope="module")
def qed_values() -> np.ndarray:
    return compute_property(SMILES, "qed")


def test_compute_property_matches_rdkit(qed_values):
    expected = [QED.qed(Chem.MolFromSmiles(s)) for s in SMILES[:40]]
    np.testing.assert_allclose(qed_values[:40], expected, rtol=0, atol=1e-12)
    plogp = compute_property(SMILES[:10] + ["C1CC", "CC(C)(C)(C)C"], "plogp")
    for s, value in zip(SMILES[:10], plogp[:10], strict=True):
        mol = Chem.MolFromSmiles(s)
        largest = max((len(r) for r in mol.GetRingInfo().AtomRings()), default=0)
        by_hand = Crippen.MolLogP(mol) - sa_score(mol) - max(largest - 6, 0)
        assert value == pytest.approx(by_hand, abs=1e-12)
    assert np.isnan(plogp[10:]).all()  # unclosed ring, pentavalent carbon


def test_compute_property_from_column_and_unknown_name():
    table = pd.DataFrame({"smiles": ["CCO", "c1ccccc1", "CN"], "logS": ["1.5", "", "x"]})
    values = compute_property(table["smiles"].tolist(), "logS", table)
    assert values[0] == 1.5 and np.isnan(values[1:]).all()
    with pytest.raises(ValueError, match="unknown property 'logs'.*plogp, qed.*'logS'"):
        compute_property(table["smiles"].tolist(), "logs", table)
    with pytest.raises(ValueError, match="unknown property"):
        compute_property(["CCO"], "drd2")


def test_pair_tuning_properties_come_from_the_chem_registry():
    assert PROPERTY_FUNCTIONS == {"qed": PROPERTIES["qed"], "plogp": PROPERTIES["plogp"]}
    assert property_function("QED") is PROPERTIES["qed"] and property_function("sa") is None


def test_pairs_satisfy_similarity_and_ordering(qed_values):
    pairs = make_pairs(SMILES, qed_values, min_similarity=0.4, max_pairs_per_source=2, seed=1)
    assert list(pairs.columns) == ["source", "target", "source_value", "target_value", "similarity"]
    assert len(pairs) >= 20  # the fixture holds enough similar pairs for a meaningful check
    lookup = dict(zip(SMILES, qed_values, strict=True))
    for row in pairs.itertuples():
        assert row.source != row.target
        assert row.similarity == rdkit_similarity(row.source, row.target)  # bit for bit
        assert row.similarity >= 0.4
        assert row.source_value == lookup[row.source] and row.target_value == lookup[row.target]
        assert row.target_value > row.source_value
    assert pairs.groupby("source").size().max() <= 2
    assert pairs.attrs["n_molecules"] == 500 and pairs.attrs["n_dropped"] == 0


def test_pairs_are_complete_without_cap(qed_values):
    """Every eligible pair of a brute-force RDKit search is found, and nothing else."""
    subset, values = SMILES[:150], qed_values[:150]
    pairs = make_pairs(
        subset, values, min_similarity=0.3, min_improvement=0.05, max_pairs_per_source=None
    )
    fps = [GEN.GetFingerprint(Chem.MolFromSmiles(s)) for s in subset]
    expected = set()
    for i, fp in enumerate(fps):
        sims = DataStructs.BulkTanimotoSimilarity(fp, fps)
        for j, sim in enumerate(sims):
            if i != j and sim >= 0.3 and values[j] - values[i] > 0.05:
                expected.add((subset[i], subset[j]))
    assert len(expected) > 5
    assert set(zip(pairs["source"], pairs["target"], strict=True)) == expected
    assert len(pairs) == len(expected)


def test_pairs_are_seeded_and_block_size_free(qed_values):
    kwargs = dict(min_similarity=0.25, max_pairs_per_source=1)
    a = make_pairs(SMILES, qed_values, seed=3, **kwargs)
    b = make_pairs(SMILES, qed_values, seed=3, block_size=37, **kwargs)
    c = make_pairs(SMILES, qed_values, seed=4, **kwargs)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)  # sources with several eligible targets draw different ones
    assert a["source"].tolist() == c["source"].tolist()


def test_pairs_value_ranges_and_cleaning(qed_values):
    smiles = SMILES + ["C1CC", SMILES[0]]  # an invalid row and a duplicate molecule
    values = np.append(qed_values, [0.5, 0.1])
    pairs = make_pairs(
        smiles,
        values,
        min_similarity=0.25,
        source_range=(0.5, 0.8),
        target_range=(0.85, 1.0),
        max_pairs_per_source=None,
    )
    assert len(pairs) > 0
    assert pairs["source_value"].between(0.5, 0.8).all()
    assert pairs["target_value"].between(0.85, 1.0).all()
    assert pairs.attrs["n_dropped"] == 2
    with pytest.raises(ValueError, match="values"):
        make_pairs(SMILES, qed_values[:-1])


def test_tanimoto_and_lowest_indices():
    assert tanimoto("CCO", "CCO") == 1.0
    assert tanimoto("CCO", "c1ccccc1") == pytest.approx(rdkit_similarity("CCO", "c1ccccc1"))
    assert np.isnan(tanimoto("C1CC", "CCO"))
    assert lowest_indices([0.5, np.nan, 0.1, 0.3, 0.1], 3).tolist() == [2, 4, 3]
