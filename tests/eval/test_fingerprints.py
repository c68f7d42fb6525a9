"""The MOSES fingerprints and the dense Tanimoto kernel against RDKit's own similarity."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
from rdkit import Chem, DataStructs, rdBase
from rdkit.Chem import AllChem

from molfm.chem.fingerprints import morgan_fingerprints, tanimoto_matrix
from molfm.eval.fingerprints import (
    PackedFingerprints,
    average_agg_tanimoto,
    dense_tanimoto,
    moses_fingerprints,
)


@pytest.fixture(scope="module")
def mols(read: Callable[[str], list[str]]) -> list[Chem.Mol]:
    smiles = read("moses_test_200.csv")[:40] + read("moses_train_500.csv")[:40]
    return [Chem.MolFromSmiles(s) for s in smiles]


def rdkit_bitvects(mols: list[Chem.Mol]) -> list[DataStructs.ExplicitBitVect]:
    # The call MOSES makes (deprecated in RDKit, still the reference for the bits).
    with warnings.catch_warnings(), rdBase.BlockLogs():
        warnings.simplefilter("ignore")
        return [AllChem.GetMorganFingerprintAsBitVect(m, 2, nBits=1024) for m in mols]


def test_moses_bits_match_rdkit_morgan_bitvect(mols: list[Chem.Mol]) -> None:
    fps = moses_fingerprints(mols)
    assert fps.shape == (80, 1024) and fps.dtype == np.uint8
    for row, bv in zip(fps, rdkit_bitvects(mols), strict=True):
        assert np.flatnonzero(row).tolist() == list(bv.GetOnBits())


def test_dense_kernel_equals_bulk_tanimoto(mols: list[Chem.Mol]) -> None:
    """The torch kernel gives RDKit's BulkTanimotoSimilarity bit for bit (1024 and 2048 bits)."""
    bvs = rdkit_bitvects(mols)
    expected = np.array([DataStructs.BulkTanimotoSimilarity(bv, bvs) for bv in bvs[:30]])
    got = dense_tanimoto(moses_fingerprints(mols[:30]), moses_fingerprints(mols))
    assert got.dtype == np.float64 and got.shape == (30, 80)
    np.testing.assert_array_equal(got, expected)
    assert 0.0 < got[:, 30:].max() < 1.0  # real, non-trivial similarities
    bits_2048 = np.stack([np.array(list(fp), dtype=np.uint8) for fp in morgan_fingerprints(mols)])
    np.testing.assert_array_equal(
        dense_tanimoto(bits_2048[:30], bits_2048),
        tanimoto_matrix(morgan_fingerprints(mols[:30]), morgan_fingerprints(mols)),
    )


def test_empty_fingerprints_count_as_identical() -> None:
    zeros = np.zeros((2, 16), dtype=np.uint8)
    one = np.zeros((1, 16), dtype=np.uint8)
    one[0, 3] = 1
    np.testing.assert_array_equal(dense_tanimoto(zeros, zeros), np.ones((2, 2)))
    assert dense_tanimoto(zeros, one)[0, 0] == 0.0
    assert average_agg_tanimoto(zeros, zeros, agg="mean") == 1.0  # MOSES's 0/0 = 1


def test_packed_fingerprints_roundtrip(mols: list[Chem.Mol]) -> None:
    fps = moses_fingerprints(mols)
    packed = PackedFingerprints.from_bits(fps)
    assert packed.packed.shape == (80, 128) and packed.shape == (80, 1024) and len(packed) == 80
    np.testing.assert_array_equal(packed[5:9], fps[5:9])
    np.testing.assert_array_equal(packed.unpack(), fps)
    with pytest.raises(ValueError):
        PackedFingerprints(packed.packed, 2048)


@pytest.mark.parametrize("p", [1, 2, 3])
def test_average_agg_tanimoto_definitions(mols: list[Chem.Mol], p: int) -> None:
    """SNN / IntDiv reductions of the blocked kernel equal the same reductions of RDKit's matrix."""
    bvs = rdkit_bitvects(mols)
    fps = moses_fingerprints(mols)
    ref, gen = fps[:50], fps[50:]
    sim = np.array([DataStructs.BulkTanimotoSimilarity(bv, bvs[50:]) for bv in bvs[:50]])
    expected_max = sim.max(0).mean()
    expected_mean = ((sim**p).mean(0) ** (1 / p)).mean()
    # Small batches force the blocked accumulation paths; packed input must not change it.
    for r in (ref, PackedFingerprints.from_bits(ref)):
        got_max = average_agg_tanimoto(r, gen, agg="max", batch_size=7)
        got_mean = average_agg_tanimoto(r, gen, agg="mean", p=p, batch_size=7)
        assert got_max == pytest.approx(expected_max, rel=0, abs=1e-12)
        assert got_mean == pytest.approx(expected_mean, rel=0, abs=1e-12)
    assert average_agg_tanimoto(ref, ref, agg="max") == 1.0  # every molecule finds itself


def test_average_agg_tanimoto_rejects_bad_input() -> None:
    fps = np.ones((2, 8), dtype=np.uint8)
    with pytest.raises(ValueError):
        average_agg_tanimoto(fps, fps, agg="min")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        average_agg_tanimoto(fps[:0], fps)
