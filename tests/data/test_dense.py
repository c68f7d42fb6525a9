"""Dense pair structure for graph transformers, checked against networkx and RDKit."""

from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from rdkit import Chem

from molfm.chem.featurize import smiles_to_data
from molfm.data.dense import (
    MAX_DISTANCE,
    DenseGraphDataset,
    collate_dense,
    graph_paths,
)

DATA = Path(__file__).parent


def _smiles(n: int = 40) -> list[str]:
    frame = pd.read_csv(DATA / "moses_test_200.csv")
    return frame.iloc[:n, 0].tolist()


@pytest.mark.parametrize("smiles", _smiles(25) + ["CCO.c1ccccc1", "[Na+].[Cl-]", "C"])
def test_shortest_paths_match_rdkit_and_networkx(smiles):
    data = smiles_to_data(smiles)
    paths = graph_paths(data.edge_index.numpy(), data.num_nodes, max_hops=5)
    mol = Chem.MolFromSmiles(smiles)
    rdkit_dist = Chem.GetDistanceMatrix(mol)
    expected = np.where(rdkit_dist >= 1e7, -1, rdkit_dist).astype(int)
    np.testing.assert_array_equal(paths.spd, expected)

    graph = nx.Graph()
    graph.add_nodes_from(range(data.num_nodes))
    edges = data.edge_index.numpy().T
    graph.add_edges_from(map(tuple, edges))
    lengths = dict(nx.all_pairs_shortest_path_length(graph))
    for i in range(data.num_nodes):
        for j in range(data.num_nodes):
            hops = [e for e in paths.path_edges[i, j] if e >= 0]
            if j not in lengths[i]:
                assert paths.spd[i, j] == -1 and not hops
                continue
            assert paths.spd[i, j] == lengths[i][j]
            assert len(hops) == min(lengths[i][j], 5)
            # the listed bonds walk from i towards j along a shortest path
            node = i
            for e in hops:
                a, b = edges[e]
                assert a == node
                assert lengths[b][j] == lengths[node][j] - 1
                node = b


def test_collate_pads_and_clips():
    graphs = [smiles_to_data(s) for s in ["CCO", "c1ccccc1CCCCCCCCCCCCCCCCCCCCCCCCC", "C.C"]]
    for g in graphs:
        g.y = torch.tensor([[1.0, float("nan")]])
    dataset = DenseGraphDataset(graphs)
    batch = collate_dense([dataset[i] for i in range(len(dataset))])
    n_max = max(g.num_nodes for g in graphs)
    assert batch.x.shape == (3, n_max, graphs[0].x.shape[1])
    assert batch.node_mask.sum(1).tolist() == [g.num_nodes for g in graphs]
    assert batch.spd.max() == MAX_DISTANCE + 1  # far pairs of the long chain are clipped
    assert batch.spd[2, 0, 1] == MAX_DISTANCE + 1  # two fragments: unreachable
    assert batch.degree[0, :3].tolist() == [1, 2, 1]
    # one-bond pairs see exactly that bond's features (+1) at hop 0 and nothing after
    bond = graphs[0].edge_attr[0] + 1
    a, b = graphs[0].edge_index[:, 0].tolist()
    assert torch.equal(batch.edge_path[0, a, b, 0], bond)
    assert batch.edge_path[0, a, b, 1:].abs().sum() == 0
    assert not batch.has_pos.any() and batch.y.shape == (3, 2)
    assert dataset._paths.keys() == {0, 1, 2}  # computed once, kept for the next epoch


def test_without_pair_structure_batches_keep_the_graph_and_skip_the_pairs():
    from molfm.chem.featurize import smiles_to_data

    graphs = [smiles_to_data(s) for s in ("CCO", "c1ccccc1O", "CC(=O)N")]
    full = collate_dense([DenseGraphDataset(graphs)[i] for i in range(3)])
    light = collate_dense([DenseGraphDataset(graphs, pair_structure=False)[i] for i in range(3)])
    assert light.edge_path.shape[3] == 0 and not light.spd.any()
    for name in ("x", "node_mask", "degree", "pos", "has_pos"):
        assert torch.equal(getattr(light, name), getattr(full, name)), name
    assert torch.equal(light.graph.edge_index, full.graph.edge_index)
    assert torch.equal(light.graph.edge_attr, full.graph.edge_attr)
