"""Layout, keys and reading of molfm's prepared-dataset cache (parquet shards).

A prepared dataset lives in ``<cache>/datasets/<name>-<subset>-<key>/``::

    manifest.json          written last; its presence means the dataset is complete
    shards/shard-00000.parquet ...     one per ``shard_size`` input rows, written atomically
    invalid/invalid-00000.parquet ...  the rejected rows of each shard (row, smiles, reason)
    invalid.csv            all rejected rows, merged when the dataset completes
    splits/                index files written by :mod:`molfm.data.splits`

``key`` hashes everything that changes the bytes of a shard: the source fingerprint (pinned
wheel sha256 + subset + source format version), the feature-schema fingerprint and version,
the standardization options, the heavy-atom limit, the row limit and the shard size. Change
any of them and the data lands in a new directory; nothing is ever overwritten in place.

Graph columns are stored flattened (``x`` holds ``num_nodes * n_atom_features`` values), so a
whole column reads back as one numpy array plus offsets without building Python objects.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from molfm.atomic import atomic_writer
from molfm.data.fetch import cache_dir

__all__ = [
    "MANIFEST_NAME",
    "GRAPH_COLUMNS",
    "PreparedDataset",
    "dataset_key",
    "dataset_dir",
    "find_prepared",
    "atomic_write_table",
]

MANIFEST_NAME = "manifest.json"
GRAPH_COLUMNS = ("num_nodes", "num_edges", "x", "edge_index", "edge_attr", "pos")


def dataset_key(parts: dict[str, Any]) -> str:
    """Stable 16-hex-digit hash of a JSON-serializable description of a prepared dataset."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def datasets_root(root: str | os.PathLike | None = None) -> Path:
    return Path(root) if root is not None else cache_dir() / "datasets"


def dataset_dir(name: str, subset: str, key: str, root: str | os.PathLike | None = None) -> Path:
    safe = name.replace("/", "_")
    return datasets_root(root) / f"{safe}-{subset}-{key}"


def atomic_write_table(table: pa.Table, path: Path) -> None:
    """Write a parquet file so that readers see either nothing or the whole file."""
    with atomic_writer(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


@dataclass
class PreparedDataset:
    """A complete prepared dataset on disk (its manifest exists)."""

    path: Path

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.path / MANIFEST_NAME).read_text(encoding="utf-8"))

    @property
    def shard_paths(self) -> list[Path]:
        return [self.path / "shards" / name for name in self.manifest["shards"]]

    @property
    def invalid_csv(self) -> Path:
        return self.path / "invalid.csv"

    @property
    def num_molecules(self) -> int:
        return int(self.manifest["n_valid"])

    def read_table(self, columns: list[str] | None = None) -> pa.Table:
        """All shards concatenated in row order (optionally only some columns)."""
        tables = [pq.read_table(p, columns=columns) for p in self.shard_paths]
        if not tables:
            return pa.table({})
        return pa.concat_tables(tables)

    def read_column(self, column: str) -> np.ndarray:
        """One scalar column as a numpy array (strings come back as an object array)."""
        return self.read_table([column]).column(column).to_numpy(zero_copy_only=False)

    def read_frame(self, columns: list[str] | None = None):
        """Non-graph columns as a pandas DataFrame (row, smiles, canonical_smiles, targets...)."""
        if columns is None:
            columns = [c for c in self.manifest["columns"] if c not in GRAPH_COLUMNS]
        return self.read_table(columns).to_pandas()


def find_prepared(
    name: str, root: str | os.PathLike | None = None, subset: str | None = None
) -> list[PreparedDataset]:
    """Complete prepared datasets for a source name (newest first)."""
    base = datasets_root(root)
    if not base.exists():
        return []
    pattern = f"{name.replace('/', '_')}-{subset}-*" if subset else f"{name.replace('/', '_')}-*"
    found = []
    for path in base.glob(pattern):
        manifest = path / MANIFEST_NAME
        if manifest.exists():
            data = json.loads(manifest.read_text(encoding="utf-8"))
            if data.get("name") == name and (subset is None or data.get("subset") == subset):
                found.append(PreparedDataset(path))
    return sorted(found, key=lambda d: (d.path / MANIFEST_NAME).stat().st_mtime, reverse=True)
