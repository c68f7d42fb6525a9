"""MosesReference: computing, the pickle-free file format, and MOSES's published statistics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from molfm.chem.parse import mol_or_none
from molfm.eval.fingerprints import moses_fingerprints
from molfm.eval.moses_features import PROPERTIES, brics_fragments, moses_scaffold
from molfm.eval.moses_reference import (
    MosesReference,
    _molsets_smiles,
    compute_reference,
    read_molsets_stats,
)


@pytest.fixture(scope="module")
def small_ref(read: Callable[[str], list[str]]) -> MosesReference:
    return compute_reference(read("moses_test_scaffolds_200.csv")[:30])


def test_compute_reference_contents(
    small_ref: MosesReference, read: Callable[[str], list[str]]
) -> None:
    smiles = read("moses_test_scaffolds_200.csv")[:30]
    mols = [mol_or_none(s) for s in smiles]
    assert len(small_ref) == 30
    assert small_ref.fcd_mu.shape == (512,) and small_ref.fcd_sigma.shape == (512, 512)
    np.testing.assert_array_equal(small_ref.fingerprints.unpack(), moses_fingerprints(mols))
    assert small_ref.fragments == Counter(f for m in mols for f in brics_fragments(m))
    scaffolds = [moses_scaffold(m) for m in mols]
    assert small_ref.scaffolds == Counter(s for s in scaffolds if s is not None)
    assert set(small_ref.properties) == set(PROPERTIES)
    np.testing.assert_allclose(
        small_ref.properties["weight"], [PROPERTIES["weight"](m) for m in mols]
    )


def test_compute_reference_drops_invalid() -> None:
    with pytest.warns(UserWarning, match="dropped 2 invalid"):
        ref = compute_reference(["CCO", "xyz", "c1ccccc1", ""])
    assert len(ref) == 2
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="at least 2"):
        compute_reference(["CCO", "xyz"])


def test_save_and_load_roundtrip(small_ref: MosesReference, tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ref.npz"
    small_ref.save(path)
    with np.load(path, allow_pickle=False) as data:  # no object arrays inside
        assert all(data[k].dtype != object for k in data.files)
    loaded = MosesReference.load_file(path)
    np.testing.assert_array_equal(loaded.fcd_mu, small_ref.fcd_mu)
    np.testing.assert_array_equal(loaded.fcd_sigma, small_ref.fcd_sigma)
    np.testing.assert_array_equal(loaded.fingerprints.packed, small_ref.fingerprints.packed)
    assert loaded.fragments == small_ref.fragments and loaded.scaffolds == small_ref.scaffolds
    for name in PROPERTIES:
        np.testing.assert_array_equal(loaded.properties[name], small_ref.properties[name])
    assert loaded.provenance == small_ref.provenance


def test_load_validates_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown MOSES subset"):
        MosesReference.load("train", cache=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="source"):
        MosesReference.load("test", source="web", cache=tmp_path)  # type: ignore[arg-type]


def test_published_moses_statistics_match_recomputation(read: Callable[[str], list[str]]) -> None:
    ref = read_molsets_stats("test")
    all_smiles = _molsets_smiles("test")
    assert len(ref) == len(all_smiles) == 176074
    assert ref.fcd_mu.shape == (512,) and ref.fcd_sigma.shape == (512, 512)
    # Our descriptors of the 200 fixture molecules equal MOSES's rows for them.
    index = {s: i for i, s in enumerate(all_smiles)}
    fixture = read("moses_test_200.csv")
    rows = np.array([index[s] for s in fixture])
    mols = [mol_or_none(s) for s in fixture]
    np.testing.assert_array_equal(ref.fingerprints.unpack()[rows], moses_fingerprints(mols))
    for name, fn in PROPERTIES.items():
        np.testing.assert_allclose(ref.properties[name][rows], [fn(m) for m in mols], atol=1e-9)
    ours = Counter(f for m in mols for f in brics_fragments(m))
    assert set(ours) <= set(ref.fragments)
    assert all(ref.fragments[f] >= n for f, n in ours.items())
    scaffolds = {moses_scaffold(m) for m in mols} - {None}
    assert scaffolds <= set(ref.scaffolds)
    assert "c1ccccc1" not in ref.scaffolds  # MOSES keeps >= 2-ring scaffolds only
