"""Padded dense batches for graph encoders, with the per-pair inputs a graph transformer needs.

:func:`collate_dense` pads a list of molecules to the largest one in the batch::

    x           long  [B, N, F_atom]   atom feature ids (0 on padding)
    node_mask   bool  [B, N]           true on real atoms
    degree      long  [B, N]           number of bonds
    pos         float [B, N, 3]        coordinates (zeros where a molecule has none)
    has_pos     bool  [B]              the molecule came with coordinates
    y           float [B, T]           targets (NaN = missing), when present
    graph       the same molecules as one sparse PyG ``Batch`` (for message-passing encoders;
                None when the encoder reads ``pairs`` instead)
    pairs       the encoder's per-pair inputs (``dict`` of padded tensors), or None

A graph transformer that attends over all atom pairs may need structure a sparse batch does not
carry (Transformer-M: shortest-path distances and the bonds along them). It depends only on the
molecular graph, so the encoder class names a :class:`PairStructure` (its ``pair_structure``
attribute); :class:`DenseGraphDataset` computes it once per molecule (first access) and keeps
it, so an epoch never recomputes it. Message-passing encoders (GINE, GPS) name none, and their
batches carry ``pairs=None``. The pair structure itself lives with the one system that reads it
(:mod:`molfm.systems.transformer_m.paths`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch_geometric.data import Batch, Data

from molfm.data.dataset import MolDataModule, MolGraphDataset
from molfm.data.samplers import seeded_loader

__all__ = [
    "PairStructure",
    "DenseBatch",
    "DenseGraphDataset",
    "collate_dense",
    "split_fractions",
    "DenseDataModule",
]


class PairStructure(Protocol):
    """Per-pair inputs of one molecule, named by an encoder class as ``pair_structure``."""

    @classmethod
    def of(cls, data: Data) -> PairStructure:
        """Computed once per molecule (kept by :class:`DenseGraphDataset`)."""
        ...

    @classmethod
    def collate(
        cls, items: Sequence[tuple[Data, PairStructure]], n_max: int
    ) -> dict[str, torch.Tensor]:
        """A batch of them padded to ``n_max`` atoms (``DenseBatch.pairs``)."""
        ...


@dataclass
class DenseBatch:
    """A padded batch; see the module docstring for shapes."""

    x: torch.Tensor
    node_mask: torch.Tensor
    degree: torch.Tensor
    pos: torch.Tensor
    has_pos: torch.Tensor
    y: torch.Tensor | None = None
    graph: Batch | None = None
    pairs: dict[str, torch.Tensor] | None = None

    def to(self, device: torch.device | str) -> DenseBatch:
        def move(value):
            if isinstance(value, dict):  # pairs
                return {key: tensor.to(device) for key, tensor in value.items()}
            return None if value is None else value.to(device)

        return DenseBatch(**{f.name: move(getattr(self, f.name)) for f in fields(self)})

    def __len__(self) -> int:
        return self.num_graphs

    @property
    def num_graphs(self) -> int:
        return int(self.x.shape[0])


class DenseGraphDataset(Dataset):
    """PyG molecules plus their pair structure (when the encoder names one), computed once per
    molecule and kept.

    Parameters
    ----------
    graphs
        Anything indexable that returns ``torch_geometric.data.Data`` with ``x``,
        ``edge_index``, ``edge_attr`` and optionally ``pos`` and ``y`` (a list, a
        ``MolGraphDataset`` over the parquet cache, ...).
    pair_structure
        The encoder's ``pair_structure`` (None: the batches carry no pairs).
    """

    def __init__(
        self, graphs: Sequence[Data], pair_structure: type[PairStructure] | None = None
    ) -> None:
        self.graphs = graphs
        self.pair_structure = pair_structure
        self._pairs: dict[int, PairStructure] = {}

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> tuple[Data, PairStructure | None]:
        data = self.graphs[index]
        if self.pair_structure is None:  # message-passing encoders read only ``graph``
            return data, None
        pairs = self._pairs.get(index)
        if pairs is None:
            pairs = self._pairs[index] = self.pair_structure.of(data)
        return data, pairs


def collate_dense(items: Sequence[tuple[Data, PairStructure | None]]) -> DenseBatch:
    """Pad ``(Data, pair structure or None)`` items (from :class:`DenseGraphDataset`) into a
    :class:`DenseBatch` (see the module docstring).

    Whole-batch operations: the molecules' atoms are concatenated and scattered into the padded
    tensors at once. ``graph`` (the sparse batch) is built only for message-passing encoders,
    whose items carry no pair structure; an encoder that reads ``pairs`` gets ``graph=None``."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    batch_size = len(items)
    graphs = [data for data, _ in items]
    sizes = torch.tensor([int(data.num_nodes) for data in graphs])
    n_max = int(sizes.max())
    # (molecule, atom) of every atom of the batch, in order
    owner = torch.repeat_interleave(torch.arange(batch_size), sizes)
    atom = torch.arange(int(sizes.sum())) - torch.repeat_interleave(sizes.cumsum(0) - sizes, sizes)
    x = torch.zeros(batch_size, n_max, graphs[0].x.shape[1], dtype=torch.long)
    x[owner, atom] = torch.cat([data.x for data in graphs])
    node_mask = torch.zeros(batch_size, n_max, dtype=torch.bool)
    node_mask[owner, atom] = True
    # bonds per atom: both directions of each bond are present, so count the sources
    starts = sizes.cumsum(0) - sizes
    sources = torch.cat([data.edge_index[0] + start for data, start in zip(graphs, starts)])
    degree = torch.zeros(batch_size, n_max, dtype=torch.long)
    degree[owner, atom] = torch.bincount(sources, minlength=len(owner))
    pos = torch.zeros(batch_size, n_max, 3)
    has_pos = torch.tensor([getattr(data, "pos", None) is not None for data in graphs])
    if has_pos.any():
        with_pos = has_pos[owner]
        pos[owner[with_pos], atom[with_pos]] = torch.cat(
            [data.pos.float() for data in graphs if getattr(data, "pos", None) is not None]
        )
    targets = [
        data.y.reshape(-1).float() for data in graphs if getattr(data, "y", None) is not None
    ]
    y = torch.stack(targets) if len(targets) == batch_size else None
    first = items[0][1]
    if first is None:  # message-passing encoders read the sparse batch
        graph = Batch.from_data_list(
            [
                Data(x=d.x, edge_index=d.edge_index, edge_attr=d.edge_attr, num_nodes=d.num_nodes)
                for d in graphs
            ]
        )
        pairs = None
    else:
        graph, pairs = None, type(first).collate(items, n_max)
    return DenseBatch(x, node_mask, degree, pos, has_pos, y, graph, pairs)


def split_fractions(sizes: Sequence[float], n: int) -> tuple[float, float, float]:
    """Split sizes as fractions; sizes above 1 are molecule counts (e.g. QM9's 110000, 10000,
    rest: ``(110000, 10000, -1)``, where -1 takes the rest).

    Counts are turned into ``(count + 0.5) / n`` so that ``int(fraction * n)`` in the splitters
    gives back exactly ``count``.
    """
    sizes = [float(s) for s in sizes]
    if len(sizes) != 3:
        raise ValueError(f"--split-sizes needs three values (train, val, test), got {sizes}")
    if all(0 <= s <= 1 for s in sizes):
        return sizes[0], sizes[1], sizes[2]
    counts = [s if s >= 0 else None for s in sizes]
    known = sum(c for c in counts if c is not None)
    if known > n or counts.count(None) > 1:
        raise ValueError(f"split counts {sizes} do not fit {n} molecules")
    counts = [n - known if c is None else c for c in counts]
    train, val = (counts[0] + 0.5) / n, (counts[1] + 0.5) / n
    return train, val, max(0.0, 1.0 - train - val)


class DenseDataModule(MolDataModule):
    """:class:`~molfm.data.dataset.MolDataModule` that yields :class:`DenseBatch` es.

    ``limit_train`` keeps the first N molecules of the (seeded, shuffled) training split, so
    every experiment row with the same ``data_seed`` and limit sees the same subset.
    ``pair_structure`` is the encoder's (None for message-passing encoders).
    """

    def __init__(
        self,
        *args,
        limit_train: int | None = None,
        pair_structure: type[PairStructure] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.limit_train = limit_train
        self.pair_structure = pair_structure
        self._datasets: dict[str, DenseGraphDataset] = {}

    def indices(self, part: str) -> np.ndarray:
        index = getattr(self.split, part)
        if part == "train" and self.limit_train is not None:
            order = np.random.default_rng(self.data_seed).permutation(len(index))
            index = np.sort(index[order[: self.limit_train]])
        return index

    def part_dataset(self, part: str) -> DenseGraphDataset:
        if part not in self._datasets:  # kept: the pair structure is computed once per molecule
            graphs = MolGraphDataset(self.store, self.indices(part))
            self._datasets[part] = DenseGraphDataset(graphs, pair_structure=self.pair_structure)
        return self._datasets[part]

    def _dense_loader(self, part: str, shuffle: bool) -> DataLoader:
        return seeded_loader(
            self.part_dataset(part),
            batch_size=self.batch_size,
            shuffle=shuffle,
            collate_fn=collate_dense,
            seed=self.data_seed,
            num_workers=self.num_workers,
            trainer=getattr(self, "trainer", None),
        )

    def train_dataloader(self) -> DataLoader:
        return self._dense_loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._dense_loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._dense_loader("test", shuffle=False)
