"""Cleaner naming data, with real OPSIN (Java): names that do not map back are dropped, the
small table adds only molecules no split holds, synonyms become extra pairs for training
molecules, verdicts are cached; the seeded random test sample."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from molfm.data.sources.pubchem_names import PubChemNamesSmallSource, PubChemNamesSource
from molfm.systems.molca.data import MolTextDataset, MolTextSplits, pubchem_names_splits
from molfm.systems.molca.evaluate import sample_test_pairs
from molfm.systems.molca.naming_data import OpsinVerdicts, naming_training_set

DATA = Path(__file__).resolve().parents[2] / "data"
pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="OPSIN needs Java")


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("pubchem")
    source = PubChemNamesSource(files={"all": DATA / "pubchem_names_150.tsv"})
    return pubchem_names_splits("iupac", source=source, root=root / "cache"), root


def _small_table(root: Path, splits: MolTextSplits) -> PubChemNamesSmallSource:
    """Two molecules of the splits (one in test), two new ones with right names, one new one
    with a wrong name; the format of the wheel's table."""
    test_smiles, train_smiles = splits.test.smiles[0], splits.train.smiles[0]
    rows = [
        ("1", test_smiles, splits.test.texts[0]),
        ("2", train_smiles, splits.train.texts[0]),
        ("3", "CC(C)O", "propan-2-ol"),
        ("4", "OCC(O)CO", "propane-1,2,3-triol"),
        ("5", "CCCCO", "propan-2-ol"),  # wrong: butan-1-ol
    ]
    lines = ["\t".join([cid, "", "", "", smi, "", "", name, ""]) for cid, smi, name in rows]
    path = root / "small.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return PubChemNamesSmallSource(files={"all": path})


def test_filter_small_table_and_synonyms(splits):
    splits, root = splits
    train = splits.train
    # one training name broken on purpose: OPSIN must drop it
    broken = MolTextDataset(
        train.graphs,
        train.smiles,
        ["not a name at all", *train.texts[1:]],
        names=train.names,
        ids=train.ids,
    )
    base = MolTextSplits(broken, splits.val, splits.test, dict(splits.info))
    cache = root / "verdicts.parquet"
    small = _small_table(root, splits)
    out, info = naming_training_set(
        base, synonyms_per_molecule=1, cache=cache, small_source=small, root=root / "small"
    )
    assert info["opsin_dropped"] >= 1 and "not a name at all" not in out.texts
    assert info["small_rows"] == 5 and info["small_new_molecules"] == 3
    assert info["small_opsin_dropped"] == 1
    assert {"propan-2-ol", "propane-1,2,3-triol"} <= set(out.texts)
    synonyms = [t for t, i in zip(out.texts, out.ids) if str(i).startswith("synonym:")]
    assert len(synonyms) == info["synonym_pairs_added"] > 0
    assert all(any(c.isdigit() for c in s) for s in synonyms)
    assert info["synonym_pairs_added"] <= len(train)
    n_iupac = len(train) - info["opsin_dropped"]
    assert len(out) == n_iupac + 2 + info["synonym_pairs_added"]
    graph = out.graphs[n_iupac]  # the first small-table pair is a real graph
    assert graph.x.shape[0] == 4  # propan-2-ol: 4 heavy atoms
    # a second call reads every verdict from the cache: no OPSIN run
    again, info2 = naming_training_set(
        base, synonyms_per_molecule=1, cache=cache, small_source=small, root=root / "small"
    )
    assert info2["opsin_checked_now"] == 0 and again.texts == out.texts
    assert len(OpsinVerdicts(cache).known) == info["opsin_checked_now"]


def test_the_test_sample_is_seeded_and_random(splits):
    splits, _ = splits
    a = sample_test_pairs(splits.test, 5, seed=0)
    assert a.ids == sample_test_pairs(splits.test, 5, seed=0).ids
    assert a.ids != sample_test_pairs(splits.test, 5, seed=1).ids
    assert a.ids == sorted(a.ids, key=splits.test.ids.index)  # test-split order
    assert sample_test_pairs(splits.test, 10_000, seed=0) is splits.test
    assert np.unique(a.ids).size == 5
