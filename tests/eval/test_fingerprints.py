"""Morgan fingerprints and the batched Tanimoto kernels against RDKit's own similarity."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
from rdkit import Chem, DataStructs, rdBase
from rdkit.Chem import AllChem

from molfm.eval.fingerprints import (
    PackedFingerprints,
    average_agg_tanimoto,
    morgan_fingerprint,
    morgan_fingerprints,
    tanimoto_matrix,
)


@pytest.fixture(scope="module")
def mols(read: Callable[[str], list[str]]) -> list[Chem.Mol]:
    smiles = read("moses_test_200.csv")[:40]
    return [Chem.MolFromSmiles(s) for s in smiles]


def rdkit_bitvects(mols: list[Chem.Mol]) -> list[DataStructs.ExplicitBitVect]:
    # The call MOSES makes (deprecated in RDKit, still the reference for the bits).
    with warnings.catch_warnings(), rdBase.BlockLogs():
        warnings.simplefilter("ignore")
        return [AllChem.GetMorganFingerprintAsBitVect(m, 2, nBits=1024) for m in mols]


def test_bits_match_rdkit_morgan_bitvect(mols: list[Chem.Mol]) -> None:
    fps = morgan_fingerprints(mols)
    assert fps.shape == (40, 1024) and fps.dtype == np.uint8
    for row, bv in zip(fps, rdkit_bitvects(mols), strict=True):
        assert np.flatnonzero(row).tolist() == list(bv.GetOnBits())
    np.testing.assert_array_equal(morgan_fingerprint(mols[3]), fps[3])


def test_tanimoto_matrix_matches_rdkit(mols: list[Chem.Mol]) -> None:
    fps = morgan_fingerprints(mols)
    bvs = rdkit_bitvects(mols)
    expected = np.array([DataStructs.BulkTanimotoSimilarity(bv, bvs) for bv in bvs[:15]])
    np.testing.assert_allclose(tanimoto_matrix(fps[:15], fps), expected, rtol=0, atol=1e-6)


def test_empty_fingerprints_count_as_identical() -> None:
    zeros = np.zeros((2, 16), dtype=np.uint8)
    one = np.zeros((1, 16), dtype=np.uint8)
    one[0, 3] = 1
    np.testing.assert_array_equal(tanimoto_matrix(zeros, zeros), np.ones((2, 2)))
    assert tanimoto_matrix(zeros, one)[0, 0] == 0.0


def test_packed_fingerprints_roundtrip(mols: list[Chem.Mol]) -> None:
    fps = morgan_fingerprints(mols)
    packed = PackedFingerprints.from_bits(fps)
    assert packed.packed.shape == (40, 128) and packed.shape == (40, 1024) and len(packed) == 40
    np.testing.assert_array_equal(packed[5:9], fps[5:9])
    np.testing.assert_array_equal(packed.unpack(), fps)
    with pytest.raises(ValueError):
        PackedFingerprints(packed.packed, 2048)


@pytest.mark.parametrize("p", [1, 2, 3])
def test_average_agg_tanimoto_definitions(mols: list[Chem.Mol], p: int) -> None:
    fps = morgan_fingerprints(mols)
    ref, gen = fps[:25], fps[25:]
    sim = tanimoto_matrix(ref, gen)  # (ref, gen)
    expected_max = sim.max(0).mean()
    expected_mean = ((sim**p).mean(0) ** (1 / p)).mean()
    # Small batches force the blocked accumulation paths; packed input must not change it.
    for r in (ref, PackedFingerprints.from_bits(ref)):
        got_max = average_agg_tanimoto(r, gen, agg="max", batch_size=4)
        got_mean = average_agg_tanimoto(r, gen, agg="mean", p=p, batch_size=4)
        assert got_max == pytest.approx(expected_max, abs=1e-9)
        assert got_mean == pytest.approx(expected_mean, abs=1e-9)


def test_average_agg_tanimoto_rejects_bad_input() -> None:
    fps = np.ones((2, 8), dtype=np.uint8)
    with pytest.raises(ValueError):
        average_agg_tanimoto(fps, fps, agg="min")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        average_agg_tanimoto(fps[:0], fps)
