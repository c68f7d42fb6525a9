"""The shared dense batch: padding, targets, the sparse graph, and an encoder's pair structure
computed once per molecule (Transformer-M's own paths: tests/systems/transformer_m)."""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch_geometric.data import Data

from molfm.chem.featurize import smiles_to_data
from molfm.data.dense import DenseGraphDataset, collate_dense


@dataclass(frozen=True)
class AtomPairs:
    """A stand-in pair structure: 1 on every pair of real atoms; counts its computations."""

    n: int
    computed = 0

    @classmethod
    def of(cls, data: Data) -> "AtomPairs":
        AtomPairs.computed += 1
        return cls(int(data.num_nodes))

    @classmethod
    def collate(cls, items: Sequence[tuple[Data, "AtomPairs"]], n_max: int) -> dict:
        ones = torch.zeros(len(items), n_max, n_max, dtype=torch.long)
        for b, (_, pairs) in enumerate(items):
            ones[b, : pairs.n, : pairs.n] = 1
        return {"ones": ones}


def test_collate_pads_atoms_and_keeps_targets_and_the_graph():
    graphs = [smiles_to_data(s) for s in ["CCO", "c1ccccc1CC", "C.C"]]
    for g in graphs:
        g.y = torch.tensor([[1.0, float("nan")]])
    batch = collate_dense([(g, None) for g in graphs])
    n_max = max(g.num_nodes for g in graphs)
    assert batch.x.shape == (3, n_max, graphs[0].x.shape[1])
    assert batch.node_mask.sum(1).tolist() == [g.num_nodes for g in graphs]
    assert batch.x[0, 3:].abs().sum() == 0  # padding atoms
    assert batch.degree[0, :3].tolist() == [1, 2, 1]
    assert batch.degree[2, :2].tolist() == [0, 0]  # two fragments, no bond
    assert not batch.has_pos.any() and batch.y.shape == (3, 2)
    assert batch.pairs is None  # no encoder asked for pairs
    assert batch.graph.num_graphs == 3
    assert torch.equal(
        batch.graph.edge_index[:, : graphs[0].edge_index.shape[1]], graphs[0].edge_index
    )


def test_a_pair_structure_is_computed_once_per_molecule_and_padded_into_pairs():
    graphs = [smiles_to_data(s) for s in ("CCO", "c1ccccc1O", "CC(=O)N")]
    AtomPairs.computed = 0
    dataset = DenseGraphDataset(graphs, pair_structure=AtomPairs)
    for _ in range(2):  # two epochs
        batch = collate_dense([dataset[i] for i in range(3)])
    assert AtomPairs.computed == 3
    assert batch.pairs["ones"].sum((1, 2)).tolist() == [g.num_nodes**2 for g in graphs]
    light = collate_dense([DenseGraphDataset(graphs)[i] for i in range(3)])
    assert light.pairs is None
    for name in ("x", "node_mask", "degree", "pos", "has_pos"):
        assert torch.equal(getattr(light, name), getattr(batch, name)), name
    assert light.graph.num_graphs == 3 and batch.graph is None  # pairs replace the sparse batch
    moved = batch.to("cpu")
    assert torch.equal(moved.pairs["ones"], batch.pairs["ones"])
