"""Morgan fingerprints and Tanimoto similarity against RDKit's own routines on MOSES molecules."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from rdkit import Chem, DataStructs, rdBase
from rdkit.Chem import AllChem

from molfm.chem.fingerprints import (
    bulk_tanimoto,
    morgan_bits,
    morgan_fingerprint,
    morgan_fingerprints,
    tanimoto,
    tanimoto_matrix,
)


@pytest.fixture(scope="module")
def mols(moses_smiles: list[str]) -> list[Chem.Mol]:
    return [Chem.MolFromSmiles(s) for s in moses_smiles[:60]]


def legacy_bitvect(mol: Chem.Mol, radius: int, n_bits: int) -> DataStructs.ExplicitBitVect:
    # The deprecated call that MOSES and Jin et al. make: the reference for the bits.
    with warnings.catch_warnings(), rdBase.BlockLogs():
        warnings.simplefilter("ignore")
        return AllChem.GetMorganFingerprintAsBitVect(mol, radius, nBits=n_bits)


@pytest.mark.parametrize(("radius", "n_bits"), [(2, 2048), (2, 1024), (3, 512)])
def test_bits_match_the_legacy_rdkit_fingerprint(
    mols: list[Chem.Mol], radius: int, n_bits: int
) -> None:
    bits = morgan_bits(mols, radius=radius, n_bits=n_bits)
    assert bits.shape == (len(mols), n_bits) and bits.dtype == np.uint8
    assert set(np.unique(bits)) == {0, 1}
    fps = morgan_fingerprints(mols, radius=radius, n_bits=n_bits)
    for mol, row, fp in zip(mols, bits, fps, strict=True):
        expected = list(legacy_bitvect(mol, radius, n_bits).GetOnBits())
        assert np.flatnonzero(row).tolist() == expected
        assert list(fp.GetOnBits()) == expected
    assert (
        list(morgan_fingerprint(mols[7]).GetOnBits())
        == np.flatnonzero(morgan_bits([mols[7]])[0]).tolist()
    )


def test_similarity_matches_rdkit_by_hand(mols: list[Chem.Mol]) -> None:
    legacy = [legacy_bitvect(m, 2, 2048) for m in mols]
    fps = morgan_fingerprints(mols)
    matrix = tanimoto_matrix(fps[:12], fps)
    assert matrix.shape == (12, len(mols)) and matrix.dtype == np.float64
    bits = morgan_bits(mols).astype(np.int64)
    for i in range(12):
        expected = DataStructs.BulkTanimotoSimilarity(legacy[i], legacy)
        np.testing.assert_array_equal(matrix[i], expected)
        np.testing.assert_array_equal(bulk_tanimoto(fps[i], fps), expected)
        inter = bits @ bits[i]
        by_hand = inter / (bits.sum(1) + bits[i].sum() - inter)
        np.testing.assert_allclose(matrix[i], by_hand, rtol=0, atol=1e-15)
    assert np.all(np.diag(matrix[:, :12]) == 1.0)
    off = matrix[:, 12:]
    assert 0.0 <= off.min() and off.max() < 1.0  # distinct MOSES molecules


def test_tanimoto_of_molecules_and_smiles(moses_smiles: list[str]) -> None:
    a, b = moses_smiles[0], moses_smiles[1]
    expected = DataStructs.TanimotoSimilarity(
        legacy_bitvect(Chem.MolFromSmiles(a), 2, 2048),
        legacy_bitvect(Chem.MolFromSmiles(b), 2, 2048),
    )
    assert 0.0 < expected < 1.0
    assert tanimoto(a, b) == expected
    assert tanimoto(Chem.MolFromSmiles(a), b) == expected
    assert tanimoto("CCO", "OCC") == 1.0  # two spellings of one molecule
    assert tanimoto(a, b, n_bits=1024) != tanimoto(a, b, radius=1)
    for bad in ("C1CC", "", None):
        assert np.isnan(tanimoto(a, bad)) and np.isnan(tanimoto(bad, a))
