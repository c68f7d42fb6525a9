"""Transformer-M's pair inputs (shortest paths and the bonds along them), checked against
networkx and RDKit, and padded through the shared dense batch."""

from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from rdkit import Chem

from molfm.chem.featurize import smiles_to_data
from molfm.data.dense import DenseGraphDataset, collate_dense
from molfm.systems.transformer_m.model import TransformerM
from molfm.systems.transformer_m.paths import MAX_DISTANCE, GraphPaths, graph_paths

DATA = Path(__file__).parents[2] / "data"


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


def test_collate_pads_and_clips_and_each_molecule_is_computed_once():
    graphs = [smiles_to_data(s) for s in ["CCO", "c1ccccc1CCCCCCCCCCCCCCCCCCCCCCCCC", "C.C"]]
    assert TransformerM.pair_structure is GraphPaths
    dataset = DenseGraphDataset(graphs, pair_structure=TransformerM.pair_structure)
    batch = collate_dense([dataset[i] for i in range(len(dataset))])
    n_max = max(g.num_nodes for g in graphs)
    spd, edge_path = batch.pairs["spd"], batch.pairs["edge_path"]
    assert spd.shape == (3, n_max, n_max)
    assert edge_path.shape == (3, n_max, n_max, 5, graphs[0].edge_attr.shape[1])
    assert spd.max() == MAX_DISTANCE + 1  # far pairs of the long chain are clipped
    assert spd[2, 0, 1] == MAX_DISTANCE + 1  # two fragments: unreachable
    assert spd[0, 0, 2] == 2 and spd[0, 3:].abs().sum() == 0  # padding pairs stay 0
    # one-bond pairs see exactly that bond's features (+1) at hop 0 and nothing after
    bond = graphs[0].edge_attr[0] + 1
    a, b = graphs[0].edge_index[:, 0].tolist()
    assert torch.equal(edge_path[0, a, b, 0], bond)
    assert edge_path[0, a, b, 1:].abs().sum() == 0
    assert dataset._pairs.keys() == {0, 1, 2}  # computed once, kept for the next epoch
    assert dataset[1][1] is dataset._pairs[1]


def test_transformer_m_refuses_a_batch_without_paths():
    from molfm.systems.transformer_m.config import TransformerMConfig

    graphs = [smiles_to_data(s) for s in ("CCO", "c1ccccc1O")]
    batch = collate_dense([(g, None) for g in graphs])
    model = TransformerM(TransformerMConfig(num_layers=1, dim=16, num_heads=2, ffn_dim=16))
    with pytest.raises(ValueError, match="pair_structure=TransformerM.pair_structure"):
        model(batch, mode="2d")
