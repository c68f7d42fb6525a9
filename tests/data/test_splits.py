"""Random and balanced-scaffold splits: seeded, disjoint, complete, saved."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem

from molfm.chem.scaffolds import murcko_scaffold
from molfm.data.splits import Split, make_split, random_split, scaffold_split

DATA = Path(__file__).parent


def _moses_scaffolds():
    smiles = pd.read_csv(DATA / "moses_train_500.csv")["SMILES"]
    return [murcko_scaffold(Chem.MolFromSmiles(s)) for s in smiles]


def _check_partition(split: Split, n: int):
    joined = np.concatenate([split.train, split.val, split.test])
    assert sorted(joined.tolist()) == list(range(n))


def test_random_split_sizes_seed_and_partition():
    a = random_split(1000, (0.8, 0.1, 0.1), seed=1)
    _check_partition(a, 1000)
    assert a.sizes() == (800, 100, 100)
    b = random_split(1000, (0.8, 0.1, 0.1), seed=1)
    c = random_split(1000, (0.8, 0.1, 0.1), seed=2)
    assert np.array_equal(a.test, b.test)
    assert not np.array_equal(a.test, c.test)


def test_scaffold_split_keeps_scaffolds_apart():
    scaffolds = _moses_scaffolds()
    split = scaffold_split(scaffolds, (0.8, 0.1, 0.1), seed=0)
    _check_partition(split, len(scaffolds))
    parts = [{scaffolds[i] for i in idx} for idx in (split.train, split.val, split.test)]
    assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]
    # greedy filling up to the 80/10 caps: exact on this slice (mostly one-molecule scaffolds)
    assert split.sizes() == (400, 50, 50)


def test_scaffold_split_big_groups_go_to_train_first():
    scaffolds = ["c1ccccc1"] * 30 + [f"s{i}" for i in range(70)]
    split = scaffold_split(scaffolds, (0.8, 0.1, 0.1), seed=3)
    assert set(range(30)) <= set(split.train.tolist())
    other = scaffold_split(scaffolds, (0.8, 0.1, 0.1), seed=4)
    assert not np.array_equal(split.test, other.test)  # small groups are shuffled by seed


def test_split_file_round_trip(tmp_path):
    split = make_split("scaffold", n=500, scaffolds=_moses_scaffolds(), seed=0)
    path = split.save(tmp_path / "splits" / "s.npz")
    again = Split.load(path)
    for a, b in zip((split.train, split.val, split.test), (again.train, again.val, again.test)):
        assert np.array_equal(a, b) and b.dtype == np.int64


@pytest.mark.parametrize("sizes", [(0.8, 0.1), (0.9, 0.2, 0.1), (1.2, -0.1, -0.1)])
def test_bad_sizes(sizes):
    with pytest.raises(ValueError, match="split sizes"):
        random_split(10, sizes)


def test_unknown_method_and_missing_scaffolds():
    with pytest.raises(ValueError, match="unknown split"):
        make_split("stratified", n=10)
    with pytest.raises(ValueError, match="needs the scaffold"):
        make_split("scaffold", n=10)
