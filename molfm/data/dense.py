"""Padded dense batches for graph transformers (Transformer-M, Graphormer-style biases).

A graph transformer attends over all atom pairs, so it needs per-pair structure that a sparse
PyG batch does not carry: the shortest-path distance ``[N, N]`` and, for the multi-hop edge
encoding, the bonds along one shortest path between each pair ``[N, N, max_hops]``. These
depend only on the molecular graph, so :class:`DenseGraphDataset` computes them once per
molecule (first access) and keeps them; an epoch never recomputes them.

:func:`collate_dense` pads a list of molecules to the largest one in the batch::

    x           long  [B, N, F_atom]   atom feature ids (0 on padding)
    node_mask   bool  [B, N]           true on real atoms
    degree      long  [B, N]           number of bonds
    spd         long  [B, N, N]        bond-count distance; ``max_distance + 1`` when
                                       unreachable or farther; 0 on padding pairs
    edge_path   long  [B, N, N, H, F_bond]  bond feature ids + 1 of the first H bonds on a
                                       shortest path from i to j (0 = no bond at that hop)
    pos         float [B, N, 3]        coordinates (zeros where a molecule has none)
    has_pos     bool  [B]              the molecule came with coordinates
    y           float [B, T]           targets (NaN = missing), when present
    graph       the same molecules as one sparse PyG ``Batch`` (for message-passing encoders)

Message-passing encoders (GINE, GPS) need no pair structure: a dataset built with
``pair_structure=False`` skips it, and its batches carry an all-zero ``spd`` and an
``edge_path`` with zero hops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path
from torch.utils.data import DataLoader, Dataset
from torch_geometric.data import Batch, Data

from molfm.data.dataset import MolDataModule, MolGraphDataset
from molfm.data.samplers import seeded_loader

__all__ = [
    "MAX_DISTANCE",
    "MAX_HOPS",
    "GraphPaths",
    "graph_paths",
    "DenseBatch",
    "DenseGraphDataset",
    "collate_dense",
    "split_fractions",
    "DenseDataModule",
]

MAX_DISTANCE = 20
"""Distances above this share one embedding (Graphormer/Transformer-M clip SPD similarly)."""
MAX_HOPS = 5
"""Bonds per shortest path seen by the multi-hop edge encoding (Transformer-M: 5)."""


@dataclass(frozen=True)
class GraphPaths:
    """Pair structure of one molecular graph.

    Attributes
    ----------
    spd : np.ndarray
        int64 ``[N, N]`` bond-count distances, ``-1`` for unreachable pairs.
    path_edges : np.ndarray
        int64 ``[N, N, max_hops]`` directed-edge indices (columns of ``edge_index``) of the
        first ``max_hops`` bonds on a shortest path from i to j, in order from i; ``-1`` after
        the path ends (and everywhere for i == j or unreachable pairs).
    """

    spd: np.ndarray
    path_edges: np.ndarray


def graph_paths(edge_index: np.ndarray, num_nodes: int, max_hops: int = MAX_HOPS) -> GraphPaths:
    """Shortest-path distances and the bonds along one shortest path, for every atom pair.

    Breadth-first search from every atom (scipy ``csgraph``, with predecessors), then one
    vectorized walk over all pairs at once: the next atom after ``c`` on a shortest path to
    ``j`` is ``predecessor[j, c]`` (the graph is undirected). Cost ``O(N^2 * max_hops)`` numpy
    work after the ``O(N * E)`` search.

    Parameters
    ----------
    edge_index
        int ``[2, E]`` directed edges, both directions of each bond present (molfm's layout).
    num_nodes
        Number of atoms (isolated atoms allowed).
    """
    edge_index = np.asarray(edge_index, dtype=np.int64).reshape(2, -1)
    n = int(num_nodes)
    if n == 0:
        return GraphPaths(np.zeros((0, 0), np.int64), np.zeros((0, 0, max_hops), np.int64))
    src, dst = edge_index
    adjacency = csr_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    dist, pred = shortest_path(adjacency, unweighted=True, directed=False, return_predecessors=True)
    reachable = np.isfinite(dist)
    spd = np.where(reachable, dist, -1).astype(np.int64)
    edge_id = np.full((n, n), -1, dtype=np.int64)
    edge_id[src, dst] = np.arange(len(src))
    path = np.full((n, n, max_hops), -1, dtype=np.int64)
    target = np.broadcast_to(np.arange(n)[None, :], (n, n))
    current = np.broadcast_to(np.arange(n)[:, None], (n, n)).copy()
    for hop in range(max_hops):
        active = reachable & (current != target)
        if not active.any():
            break
        nxt = np.where(active, pred[target, current], current)
        path[..., hop] = np.where(active, edge_id[current, nxt], -1)
        current = nxt
    return GraphPaths(spd, path)


@dataclass
class DenseBatch:
    """A padded batch; see the module docstring for shapes."""

    x: torch.Tensor
    node_mask: torch.Tensor
    degree: torch.Tensor
    spd: torch.Tensor
    edge_path: torch.Tensor
    pos: torch.Tensor
    has_pos: torch.Tensor
    y: torch.Tensor | None = None
    graph: Batch | None = None

    def to(self, device: torch.device | str) -> DenseBatch:
        moved = {
            f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
            for f in fields(self)
        }
        return DenseBatch(**moved)

    def __len__(self) -> int:
        return self.num_graphs

    @property
    def num_graphs(self) -> int:
        return int(self.x.shape[0])


class DenseGraphDataset(Dataset):
    """PyG molecules plus their :class:`GraphPaths`, computed once per molecule and kept.

    Parameters
    ----------
    graphs
        Anything indexable that returns ``torch_geometric.data.Data`` with ``x``,
        ``edge_index``, ``edge_attr`` and optionally ``pos`` and ``y`` (a list, a
        ``MolGraphDataset`` over the parquet cache, ...).
    """

    def __init__(
        self, graphs: Sequence[Data], max_hops: int = MAX_HOPS, pair_structure: bool = True
    ) -> None:
        self.graphs = graphs
        self.max_hops = max_hops
        self.pair_structure = pair_structure
        self._paths: dict[int, GraphPaths] = {}

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> tuple[Data, GraphPaths | None]:
        data = self.graphs[index]
        if not self.pair_structure:  # message-passing encoders read only ``graph``
            return data, None
        paths = self._paths.get(index)
        if paths is None:
            paths = graph_paths(data.edge_index.numpy(), data.num_nodes, self.max_hops)
            self._paths[index] = paths
        return data, paths


def collate_dense(
    items: Sequence[tuple[Data, GraphPaths | None]], max_distance: int = MAX_DISTANCE
) -> DenseBatch:
    """Pad ``(Data, GraphPaths)`` items (from :class:`DenseGraphDataset`) into a :class:`DenseBatch`
    (``GraphPaths`` None: no pair structure, see the module docstring)."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    batch_size = len(items)
    n_max = max(int(data.num_nodes) for data, _ in items)
    n_atom = items[0][0].x.shape[1]
    n_bond = items[0][0].edge_attr.shape[1] if items[0][0].edge_attr is not None else 0
    pairs = items[0][1] is not None
    max_hops = items[0][1].path_edges.shape[-1] if pairs else 0
    x = torch.zeros(batch_size, n_max, n_atom, dtype=torch.long)
    node_mask = torch.zeros(batch_size, n_max, dtype=torch.bool)
    degree = torch.zeros(batch_size, n_max, dtype=torch.long)
    spd = torch.zeros(batch_size, n_max, n_max, dtype=torch.long)
    edge_path = torch.zeros(batch_size, n_max, n_max, max_hops, n_bond, dtype=torch.long)
    pos = torch.zeros(batch_size, n_max, 3)
    has_pos = torch.zeros(batch_size, dtype=torch.bool)
    targets = []
    for b, (data, paths) in enumerate(items):
        n = int(data.num_nodes)
        x[b, :n] = data.x
        node_mask[b, :n] = True
        degree[b, :n] = torch.bincount(data.edge_index[0], minlength=n)
        if paths is not None:
            dist = torch.from_numpy(paths.spd)
            spd[b, :n, :n] = torch.where((dist < 0) | (dist > max_distance), max_distance + 1, dist)
        if paths is not None and n_bond and data.edge_attr.shape[0]:
            ids = torch.from_numpy(paths.path_edges)  # [n, n, H]
            has_edge = ids >= 0
            bond_ids = data.edge_attr[ids.clamp(min=0)] + 1  # [n, n, H, F_bond]
            edge_path[b, :n, :n] = torch.where(has_edge.unsqueeze(-1), bond_ids, 0)
        if getattr(data, "pos", None) is not None:
            pos[b, :n] = data.pos.float()
            has_pos[b] = True
        if getattr(data, "y", None) is not None:
            targets.append(data.y.reshape(-1).float())
    y = torch.stack(targets) if len(targets) == batch_size else None
    graph = Batch.from_data_list(
        [
            Data(x=d.x, edge_index=d.edge_index, edge_attr=d.edge_attr, num_nodes=d.num_nodes)
            for d, _ in items
        ]
    )
    return DenseBatch(x, node_mask, degree, spd, edge_path, pos, has_pos, y, graph)


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
    ``pair_structure=False`` skips the per-pair structure (for message-passing encoders).
    """

    def __init__(
        self, *args, limit_train: int | None = None, pair_structure: bool = True, **kwargs
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
