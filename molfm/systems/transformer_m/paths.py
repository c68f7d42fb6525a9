"""Transformer-M's 2D pair inputs: shortest-path distances and the bonds along one shortest
path, for every atom pair.

They depend only on the molecular graph, so :class:`GraphPaths` is the encoder's
``pair_structure``: :class:`~molfm.data.dense.DenseGraphDataset` computes it once per molecule
(:meth:`GraphPaths.of`) and keeps it, and :func:`~molfm.data.dense.collate_dense` pads a batch
of them (:meth:`GraphPaths.collate`) into ``DenseBatch.pairs``::

    spd        long [B, N, N]              bond-count distance; ``MAX_DISTANCE + 1`` when
                                           unreachable or farther; 0 on padding pairs
    edge_path  long [B, N, N, H, F_bond]   bond feature ids + 1 of the first H bonds on a
                                           shortest path from i to j (0 = no bond at that hop)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path
from torch_geometric.data import Data

from molfm.systems.transformer_m.config import MAX_DISTANCE, MAX_HOPS

__all__ = ["MAX_DISTANCE", "MAX_HOPS", "GraphPaths", "graph_paths"]


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

    @classmethod
    def of(cls, data: Data) -> GraphPaths:
        """The paths of one PyG molecule (``edge_index``, ``num_nodes``)."""
        return graph_paths(data.edge_index.numpy(), data.num_nodes)

    @classmethod
    def collate(
        cls, items: Sequence[tuple[Data, GraphPaths]], n_max: int
    ) -> dict[str, torch.Tensor]:
        """``spd`` and ``edge_path`` of a batch padded to ``n_max`` atoms (module docstring).

        One scatter for the whole batch: the molecules' pairs are concatenated, and each
        pair's place in the padded ``[B, N, N]`` grid is computed with array arithmetic, so
        the cost does not grow with a per-molecule loop of tensor operations."""
        first = items[0][0]
        n_bond = first.edge_attr.shape[1] if first.edge_attr is not None else 0
        max_hops = items[0][1].path_edges.shape[-1]
        batch = len(items)
        sizes = np.array([int(data.num_nodes) for data, _ in items], dtype=np.int64)
        pairs = sizes * sizes
        # pair p of molecule b: its (i, j) from p's offset in that molecule's block
        owner = np.repeat(np.arange(batch), pairs)
        local = np.arange(int(pairs.sum())) - np.repeat(np.cumsum(pairs) - pairs, pairs)
        width = sizes[owner]
        flat = torch.from_numpy(owner * n_max * n_max + (local // width) * n_max + local % width)
        dist = torch.from_numpy(np.concatenate([paths.spd.reshape(-1) for _, paths in items]))
        far = (dist < 0) | (dist > MAX_DISTANCE)
        spd = torch.zeros(batch * n_max * n_max, dtype=torch.long)
        spd[flat] = torch.where(far, MAX_DISTANCE + 1, dist)
        edge_path = torch.zeros(batch * n_max * n_max, max_hops, n_bond, dtype=torch.long)
        if n_bond:
            edges = [int(data.edge_attr.shape[0]) for data, _ in items]
            if sum(edges):
                # each molecule's edge indices shifted into the concatenated edge_attr
                shift = np.repeat(np.cumsum(edges) - edges, pairs)[:, None]
                ids = np.concatenate([paths.path_edges.reshape(-1, max_hops) for _, paths in items])
                ids = torch.from_numpy(np.where(ids >= 0, ids + shift, -1))
                bond_ids = torch.cat([data.edge_attr for data, _ in items])[ids.clamp(min=0)] + 1
                edge_path[flat] = torch.where((ids >= 0).unsqueeze(-1), bond_ids, 0)
        return {
            "spd": spd.view(batch, n_max, n_max),
            "edge_path": edge_path.view(batch, n_max, n_max, max_hops, n_bond),
        }


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
