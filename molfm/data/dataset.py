"""Datasets and a LightningDataModule that feed PyG batches straight from the parquet cache.

The prepared shards are read once into flat numpy arrays plus offsets (:class:`GraphStore`);
``__getitem__`` slices those arrays into a ``torch_geometric.data.Data``. Nothing is
re-featurized and no per-molecule Python objects are kept in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import Dataset
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from molfm.data.cache import PreparedDataset
from molfm.data.splits import Split, make_split

__all__ = ["GraphStore", "MolGraphDataset", "MolDataModule"]


def _flat(table: pa.Table, column: str, dtype) -> np.ndarray:
    # a copy: arrow buffers are read-only and torch.from_numpy needs writable memory
    return np.array(table.column(column).combine_chunks().flatten().to_numpy(), dtype=dtype)


def _offsets(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


class GraphStore:
    """All graphs of a prepared dataset as flat arrays with per-molecule offsets.

    Attributes
    ----------
    x : np.ndarray
        int64 [total_nodes, n_atom_features]
    edge_index : np.ndarray
        int64 [2, total_edges], node indices local to each molecule
    edge_attr : np.ndarray
        int64 [total_edges, n_bond_features]
    pos : np.ndarray | None
        float32 [total_nodes, 3] when the dataset has coordinates
    y : np.ndarray | None
        float32 [n_molecules, n_targets]
    """

    def __init__(self, dataset: PreparedDataset, target_columns: Sequence[str] | None = None):
        manifest = dataset.manifest
        schema = manifest["feature_schema"]
        n_atom, n_bond = len(schema["atom_features"]), len(schema["bond_features"])
        if target_columns is None:
            target_columns = [t for t in manifest["targets"] if t in manifest["columns"]]
        missing = [t for t in target_columns if t not in manifest["columns"]]
        if missing:
            raise KeyError(f"target columns {missing} not in the dataset: {manifest['columns']}")
        self.target_columns = list(target_columns)
        has_pos = "pos" in manifest["columns"]
        columns = ["row", "smiles", "num_nodes", "num_edges", "x", "edge_index", "edge_attr"]
        table = dataset.read_table(columns + (["pos"] if has_pos else []) + self.target_columns)
        self.rows = table.column("row").to_numpy()
        self.smiles = table.column("smiles").to_pylist()
        self.node_ptr = _offsets(table.column("num_nodes").to_numpy())
        self.edge_ptr = _offsets(table.column("num_edges").to_numpy())
        self.x = _flat(table, "x", np.int64).reshape(-1, n_atom)
        # stored per molecule as [E, 2] (source, target) pairs, flattened
        self.edge_index = _flat(table, "edge_index", np.int64).reshape(-1, 2).T.copy()
        self.edge_attr = _flat(table, "edge_attr", np.int64).reshape(-1, n_bond)
        self.pos = _flat(table, "pos", np.float32).reshape(-1, 3) if has_pos else None
        if self.target_columns:
            self.y = np.stack(
                [table.column(t).to_numpy(zero_copy_only=False) for t in self.target_columns],
                axis=1,
            ).astype(np.float32)
        else:
            self.y = None

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, index: int) -> Data:
        a, b = self.node_ptr[index], self.node_ptr[index + 1]
        c, d = self.edge_ptr[index], self.edge_ptr[index + 1]
        data = Data(
            x=torch.from_numpy(self.x[a:b]),
            edge_index=torch.from_numpy(self.edge_index[:, c:d]),
            edge_attr=torch.from_numpy(self.edge_attr[c:d]),
            smiles=self.smiles[index],
            row=int(self.rows[index]),
        )
        data.num_nodes = int(b - a)
        if self.pos is not None:
            data.pos = torch.from_numpy(self.pos[a:b])
        if self.y is not None:
            data.y = torch.from_numpy(self.y[index : index + 1])
        return data


class MolGraphDataset(Dataset):
    """A torch Dataset of PyG graphs over (a subset of) a :class:`GraphStore`."""

    def __init__(self, store: GraphStore, indices: Sequence[int] | np.ndarray | None = None):
        self.store = store
        self.indices = np.arange(len(store)) if indices is None else np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Data:
        return self.store.get(int(self.indices[i]))


class MolDataModule(L.LightningDataModule):
    """Train/val/test PyG loaders over a prepared dataset with a seeded, saved split.

    Parameters
    ----------
    dataset
        A :class:`PreparedDataset` or the path of its directory.
    split, split_sizes, data_seed
        Split method (``"random"`` or ``"scaffold"``), fractions and seed. The index file is
        written to ``<dataset>/splits/`` (or ``split_dir``) and reused when present.
    """

    def __init__(
        self,
        dataset: PreparedDataset | str | Path,
        *,
        target_columns: Sequence[str] | None = None,
        split: str = "random",
        split_sizes: Sequence[float] = (0.8, 0.1, 0.1),
        data_seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
        split_dir: str | Path | None = None,
        split_file: str | Path | None = None,
    ):
        super().__init__()
        if not isinstance(dataset, PreparedDataset):
            dataset = PreparedDataset(Path(dataset))
        self.dataset = dataset
        self.target_columns = target_columns
        self.split_method = split
        self.split_sizes = tuple(float(s) for s in split_sizes)
        self.data_seed = data_seed
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.split_dir = Path(split_dir) if split_dir else self.dataset.path / "splits"
        self.split_file = Path(split_file) if split_file else None
        self.store: GraphStore | None = None
        self.split: Split | None = None

    @property
    def split_path(self) -> Path:
        if self.split_file is not None:
            return self.split_file
        sizes = "-".join(f"{s:g}" for s in self.split_sizes)
        return self.split_dir / f"{self.split_method}_{sizes}_seed{self.data_seed}.npz"

    def setup(self, stage: str | None = None) -> None:
        if self.store is None:
            self.store = GraphStore(self.dataset, self.target_columns)
        if self.split is None:
            if self.split_file is not None:
                self.split = Split.load(self.split_file)
                largest = max(
                    (
                        int(i.max())
                        for i in (self.split.train, self.split.val, self.split.test)
                        if len(i)
                    ),
                    default=-1,
                )
                if largest >= len(self.store):
                    raise ValueError(
                        f"{self.split_file}: index {largest} is out of range for a dataset of "
                        f"{len(self.store)} molecules"
                    )
            elif self.split_path.exists():
                self.split = Split.load(self.split_path)
            else:
                scaffolds = None
                if self.split_method.startswith("scaffold"):
                    scaffolds = self.dataset.read_column("scaffold").tolist()
                self.split = make_split(
                    self.split_method,
                    n=len(self.store),
                    scaffolds=scaffolds,
                    sizes=self.split_sizes,
                    seed=self.data_seed,
                )
                self.split.save(self.split_path)

    def _loader(self, indices: np.ndarray, shuffle: bool) -> DataLoader:
        return DataLoader(
            MolGraphDataset(self.store, indices),
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.split.train, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.split.val, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.split.test, shuffle=False)
