"""`prepare_dataset`: every row accounted for, cache reuse, parallel == sequential, resume."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from molfm.chem import smiles_to_data
from molfm.chem.parse import InvalidMoleculeError
from molfm.data.cache import find_prepared
from molfm.data.dataset import GraphStore, MolDataModule
from molfm.data.prepare import prepare_dataset
from molfm.data.sources import get_source
from molfm.data.sources.qm9 import QM9Source

DATA = Path(__file__).parent
BAD = ["", "C1CC", "N(C)(C)(C)(C)C", "c1cccc1", "not a smiles", "C\u00e9C"]
# what invalid.csv says about each (RDKit's wording for the chemistry, molfm's for the text)
BAD_REASONS = {
    "": "empty SMILES",
    "C1CC": "unclosed ring",
    "N(C)(C)(C)(C)C": "Explicit valence for atom # 0 N, 5",
    "c1cccc1": "Can't kekulize mol",
    "not a smiles": "whitespace or control character ' ' at position 3",
    "C\u00e9C": "non-ASCII character '\u00e9' at position 1",
}


@pytest.fixture
def mixed_csv(tmp_path):
    """Real MOSES rows with bad rows interleaved at known positions, plus a target."""
    smiles = pd.read_csv(DATA / "moses_train_500.csv")["SMILES"].tolist()[:60]
    rows = []
    for i, s in enumerate(smiles):
        rows.append(s)
        if i % 10 == 3:
            rows.append(BAD[(i // 10) % len(BAD)])
    frame = pd.DataFrame({"smiles": rows, "y": np.arange(len(rows), dtype=float)})
    path = tmp_path / "mixed.csv"
    frame.to_csv(path, index=False)
    return path, frame


def _source(path):
    return get_source("csv", path=path, smiles_column="smiles", target_columns=["y"])


def test_skip_accounts_for_every_row(mixed_csv, tmp_path):
    path, frame = mixed_csv
    result = prepare_dataset(
        _source(path), on_invalid="skip", root=tmp_path / "cache", shard_size=16, progress=False
    )
    bad_rows = [i for i, s in enumerate(frame.smiles) if s in BAD]
    assert result.n_invalid == len(bad_rows) == 6
    assert result.n_valid + result.n_invalid == result.n_rows == len(frame)
    invalid = pd.read_csv(result.invalid_csv, keep_default_na=False)
    assert invalid["row"].tolist() == bad_rows
    assert invalid["smiles"].tolist() == [frame.smiles[i] for i in bad_rows]
    for smiles, reason in zip(invalid["smiles"], invalid["reason"], strict=True):
        assert BAD_REASONS[smiles] in reason, (smiles, reason)
    table = result.dataset.read_frame()
    assert sorted(table["row"].tolist() + bad_rows) == list(range(len(frame)))
    assert np.allclose(table["y"], frame.y[table["row"]])  # targets stay with their molecule
    assert result.dataset.manifest["n_invalid"] == 6


def test_error_names_row_value_and_reason(mixed_csv, tmp_path):
    path, frame = mixed_csv
    with pytest.raises(InvalidMoleculeError) as info:
        prepare_dataset(_source(path), root=tmp_path / "c", shard_size=1000, progress=False)
    first_bad = next(i for i, s in enumerate(frame.smiles) if s in BAD)
    assert info.value.row == first_bad
    assert f"row {first_bad}" in str(info.value)
    # rerunning with error still raises (a completed shard holding bad rows is not a pass)
    with pytest.raises(InvalidMoleculeError):
        prepare_dataset(_source(path), root=tmp_path / "c", shard_size=1000, progress=False)


def test_cache_hit_and_key_changes(mixed_csv, tmp_path):
    path, _ = mixed_csv
    root = tmp_path / "cache"
    first = prepare_dataset(_source(path), on_invalid="skip", root=root, progress=False)
    again = prepare_dataset(_source(path), on_invalid="skip", root=root, progress=False)
    assert again.cached and again.dataset.path == first.dataset.path
    limited = prepare_dataset(_source(path), on_invalid="skip", root=root, limit=10, progress=False)
    assert limited.dataset.path != first.dataset.path and limited.n_rows == 10
    assert len(find_prepared("csv", root)) == 2


def test_parallel_equals_sequential(mixed_csv, tmp_path):
    path, _ = mixed_csv
    kw = dict(on_invalid="skip", shard_size=12, progress=False)
    seq = prepare_dataset(_source(path), root=tmp_path / "a", processes=1, **kw)
    par = prepare_dataset(_source(path), root=tmp_path / "b", processes=2, **kw)
    assert seq.dataset.read_table().equals(par.dataset.read_table())
    assert seq.invalid_csv.read_text() == par.invalid_csv.read_text()


def test_store_batches_match_direct_featurization(mixed_csv, tmp_path):
    path, _ = mixed_csv
    dataset = prepare_dataset(
        _source(path), on_invalid="skip", root=tmp_path, shard_size=7, progress=False
    ).dataset
    store = GraphStore(dataset)
    assert len(store) == dataset.num_molecules
    for i in (0, 5, len(store) - 1):
        got, want = store.get(i), smiles_to_data(store.smiles[i])
        for key in ("x", "edge_index", "edge_attr"):
            assert torch.equal(got[key], want[key]), key
        assert got.y.shape == (1, 1)
    dm = MolDataModule(dataset, split="scaffold", split_sizes=(0.8, 0.1, 0.1), batch_size=8)
    dm.setup()
    assert dm.split_path.exists()
    batch = next(iter(dm.train_dataloader()))
    assert batch.num_graphs == 8 and batch.x.shape[1] == 9 and batch.y.shape == (8, 1)
    assert int(batch.edge_index.max()) < batch.num_nodes


def test_qm9_positions_come_from_dft_geometry(tmp_path):
    files = {"parts": DATA / "qm9_100.csv", "polarizability": DATA / "qm9_polarizability_100.csv"}
    source = QM9Source(files=files)
    result = prepare_dataset(source, on_invalid="skip", root=tmp_path, progress=False)
    assert result.n_valid == 100 and result.n_invalid == 0  # every fixture row maps onto its xyz
    store = GraphStore(result.dataset)
    assert store.pos is not None and store.pos.shape == (store.x.shape[0], 3)
    frame = source.load()
    data = store.get(0)
    raw = frame.loc[data.row]
    heavy = np.array([e != "H" for e in raw["elements"]])
    np.testing.assert_allclose(data.pos.numpy(), np.asarray(raw["positions"])[heavy], atol=1e-5)
    assert "gap" in result.dataset.manifest["targets"]


RESUME_SCRIPT = """
import sys
from molfm.data.prepare import prepare_dataset
from molfm.data.sources import get_source
src = get_source("csv", path=sys.argv[1], smiles_column="smiles")
prepare_dataset(src, root=sys.argv[2], shard_size=200, on_invalid="skip", progress=False)
"""


def test_kill_and_resume_leaves_no_corrupt_shard(tmp_path):
    smiles = pd.read_csv(DATA / "moses_train_500.csv")["SMILES"].tolist() * 24  # 12k rows
    path = tmp_path / "big.csv"
    pd.DataFrame({"smiles": smiles}).to_csv(path, index=False)
    root = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", RESUME_SCRIPT, str(path), str(root)])
    deadline = time.time() + 120
    shards = []
    while time.time() < deadline and proc.poll() is None:
        shards = list(root.glob("*/shards/shard-*.parquet"))
        if len(shards) >= 3:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert shards, "the run finished or failed before any shard was written"
    dataset_dir = shards[0].parents[1]
    if not (dataset_dir / "manifest.json").exists():  # killed mid-run: whole shards only
        for shard in dataset_dir.glob("shards/shard-*.parquet"):
            pq.read_table(shard)
    done_before = {p.name for p in dataset_dir.glob("shards/shard-*.parquet")}
    source = get_source("csv", path=path, smiles_column="smiles")
    resumed = prepare_dataset(source, root=root, shard_size=200, on_invalid="skip", progress=False)
    assert resumed.dataset.path == dataset_dir
    assert resumed.n_valid == len(smiles) and resumed.n_invalid == 0
    assert not list(dataset_dir.glob("**/.tmp-*"))
    rows = resumed.dataset.read_column("row")
    assert np.array_equal(rows, np.arange(len(smiles)))
    assert done_before <= {p.name for p in dataset_dir.glob("shards/shard-*.parquet")}


def test_conformers_give_smiles_sources_coordinates(tmp_path):
    from molfm.chem.conformers import ConformerOptions

    csv = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": ["CCO", "c1ccccc1O", "CC(=O)Nc1ccccc1"]}).to_csv(csv, index=False)
    source = get_source("csv", path=csv)
    plain = prepare_dataset(source, root=tmp_path / "cache", progress=False)
    assert "pos" not in plain.dataset.manifest["columns"]
    options = ConformerOptions(seed=3)
    with_3d = prepare_dataset(source, root=tmp_path / "cache", progress=False, conformers=options)
    assert with_3d.dataset.path != plain.dataset.path  # the options are part of the cache key
    assert with_3d.dataset.manifest["conformers"]["seed"] == 3
    store = GraphStore(with_3d.dataset)
    assert store.pos.shape == (store.x.shape[0], 3)
    # bonded heavy atoms sit 1.2-1.6 Angstrom apart in a real conformer
    src, dst = store.edge_index[:, : store.edge_ptr[1]]
    lengths = np.linalg.norm(store.pos[src] - store.pos[dst], axis=1)
    assert ((lengths > 1.2) & (lengths < 1.6)).all()
    again = prepare_dataset(source, root=tmp_path / "cache", progress=False, conformers=options)
    assert again.cached and again.dataset.path == with_3d.dataset.path
