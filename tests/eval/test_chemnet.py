"""ChemNet encoding/activations against the ``fcd`` package, and the Fréchet distance."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import linalg

from molfm.eval.chemnet import (
    CHEMNET_VOCAB,
    chemnet_activations,
    chemnet_one_hot,
    fcd_statistics,
    frechet_distance,
)

fcd = pytest.importorskip("fcd")
from fcd.utils import get_one_hot  # noqa: E402


@pytest.fixture(scope="module")
def smiles(read: Callable[[str], list[str]]) -> list[str]:
    return read("moses_test_200.csv")


def test_one_hot_matches_fcd_package(smiles: list[str]) -> None:
    for s in [*smiles[:50], "ClC(Br)[Si](C)(C)C", "C[C@@H](N)C(=O)O", "[nH]1cccc1"]:
        np.testing.assert_array_equal(chemnet_one_hot(s), get_one_hot(s, pad_len=350))


def test_one_hot_follows_fcd_torch_corner_cases() -> None:
    end = CHEMNET_VOCAB.index(".")
    # fcd_torch stops at the first '.': only the first fragment is encoded.
    x = chemnet_one_hot("CC.O")
    assert x.argmax(1)[:3].tolist() == [0, 0, end] and x[3:].sum() == 0
    # Over-long strings are cut at pad_len - 1 symbols plus the end symbol.
    y = chemnet_one_hot("C" * 400)
    assert y.shape == (350, 35) and y.sum() == 350 and y[349, end] == 1
    # Unknown symbols map to 'X'; any letter followed by r/i/l is read as one symbol, so
    # fcd_torch sees "Li" as a single unknown (the fcd package sees two).
    z = chemnet_one_hot("[Li]Cl")
    assert [CHEMNET_VOCAB[i] for i in z.argmax(1)[:5]] == ["[", "X", "]", "Cl", "."]
    assert z[5:].sum() == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fcd calls np.row_stack
def test_activations_match_fcd_package(smiles: list[str]) -> None:
    batch = smiles[:12]
    ours = chemnet_activations(batch, canonize=False, batch_size=5)
    theirs = fcd.get_predictions(fcd.load_ref_model(), batch, batch_size=12, n_jobs=0, device="cpu")
    assert ours.shape == (12, 512) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_canonize_makes_activations_spelling_invariant() -> None:
    a = chemnet_activations(["OCC", "c1ccccc1C"], canonize=True)
    b = chemnet_activations(["CCO", "Cc1ccccc1"], canonize=True)
    np.testing.assert_allclose(a, b, atol=1e-7)
    with pytest.raises(ValueError, match="invalid SMILES"):
        chemnet_activations(["C1CC"], canonize=True)


def test_frechet_distance_closed_forms() -> None:
    # 1-D: (m1 - m2)^2 + s1 + s2 - 2 sqrt(s1 s2)
    assert frechet_distance(
        np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[1.0]])
    ) == (pytest.approx(4.0 + 4.0 + 1.0 - 2 * 2.0))
    # Diagonal covariances: sum over dimensions of the 1-D terms.
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 2.0, 9.0]), np.array([4.0, 2.0, 1.0])
    expected = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected)
    with pytest.raises(ValueError):
        frechet_distance(mu1, np.diag(v1), mu2[:2], np.diag(v2[:2]))


@pytest.mark.parametrize("n_samples", [200, 30])  # full-rank and rank-deficient covariances
def test_frechet_distance_matches_sqrtm_formula(n_samples: int) -> None:
    # The formula fcd/fcd_torch evaluate, with scipy's general matrix square root.
    rng = np.random.default_rng(n_samples)
    x = rng.normal(size=(n_samples, 64)) @ rng.normal(size=(64, 64))
    y = rng.normal(0.3, 1.0, size=(n_samples, 64)) @ rng.normal(size=(64, 64))
    mu1, s1, mu2, s2 = x.mean(0), np.cov(x.T), y.mean(0), np.cov(y.T)
    root = linalg.sqrtm(s1 @ s2).real
    expected = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-6 * np.trace(s1))


def test_fcd_statistics_needs_two_molecules() -> None:
    with pytest.warns(UserWarning, match="fewer than 2"):
        assert fcd_statistics(["CCO"]) is None
