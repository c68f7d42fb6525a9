"""GPS encoder: RWSE equals PyG's transform, the layers are PyG's GPSConv wired as documented,
permutation/batch invariances, 2D only, gradients, and a property model that overfits."""

from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest
import torch
from rdkit import Chem
from torch import nn
from torch_geometric.nn import GINEConv, GPSConv, ResGatedGraphConv, global_mean_pool
from torch_geometric.transforms import AddRandomWalkPE

from molfm.chem.featurize import mol_to_data, smiles_to_data
from molfm.data.dense import DenseGraphDataset, collate_dense
from molfm.hub import get_model_class
from molfm.nn.encoder import FeatureEmbedding
from molfm.nn.gps import GPSConfig, GPSEncoder, random_walk_se
from molfm.tasks.property import PropertyModel, PropertyModelConfig, masked_loss

DATA = Path(__file__).parents[1] / "data"
TINY = dict(num_layers=2, dim=32, num_heads=4, rwse_steps=8, rwse_dim=8)
ODD = ["C", "[Na+].[Cl-]", "CCO.[K+]", "c1ccccc1"]  # single atom, isolated atoms, benzene


def _smiles(name: str, rows: slice) -> list[str]:
    return pd.read_csv(DATA / name)["SMILES"].iloc[rows].tolist()


def _batch(graphs):
    dataset = DenseGraphDataset(graphs)
    return collate_dense([dataset[i] for i in range(len(dataset))])


def _encoder(**overrides) -> GPSEncoder:
    torch.manual_seed(0)
    return GPSEncoder(GPSConfig(**(TINY | overrides)))


@pytest.fixture(scope="module")
def mixed_batch():
    smiles = ODD + _smiles("qm9_100.csv", slice(0, 6)) + _smiles("moses_test_200.csv", slice(0, 6))
    return _batch([smiles_to_data(s) for s in smiles])


@pytest.mark.parametrize("walk_length", [1, 16, 20])
def test_rwse_equals_pyg_add_random_walk_pe_per_molecule(mixed_batch, walk_length):
    graph = mixed_batch.graph
    ours = random_walk_se(graph.edge_index, graph.batch, graph.num_graphs, walk_length)
    reference = torch.cat(
        [AddRandomWalkPE(walk_length)(data.clone()).random_walk_pe for data in graph.to_data_list()]
    )
    assert ours.shape == (graph.num_nodes, walk_length)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    assert ours[:3].abs().sum() == 0  # "C", "[Na+]", "[Cl-]" never leave and never return


@pytest.mark.parametrize("local", ["gine", "gatedgcn"])
def test_encoder_is_pyg_gps_layers_wired_as_documented(mixed_batch, local):
    """A reference composed from fresh PyG modules (weights copied) reproduces the encoder."""
    encoder = _encoder(local=local, attn_dropout=0.0, dropout=0.0)
    config = encoder.config
    assert all(isinstance(layer, GPSConv) for layer in encoder.layers)
    c, k = config.dim, config.rwse_steps

    def local_conv() -> nn.Module:
        if local == "gine":
            return GINEConv(nn.Sequential(nn.Linear(c, c), nn.ReLU(), nn.Linear(c, c)))
        return ResGatedGraphConv(c, c, edge_dim=c)

    atoms = FeatureEmbedding(config.atom_dims, c - config.rwse_dim)
    norm, linear = nn.BatchNorm1d(k), nn.Linear(k, config.rwse_dim)
    bonds = [FeatureEmbedding(config.bond_dims, c) for _ in range(config.num_layers)]
    layers = [
        GPSConv(c, local_conv(), heads=config.num_heads, attn_kwargs={"dropout": 0.0})
        for _ in range(config.num_layers)
    ]
    pairs = [
        (atoms, encoder.atom_embedding),
        (norm, encoder.rwse_norm),
        (linear, encoder.rwse_linear),
        *zip(bonds, encoder.bond_embeddings, strict=True),
        *zip(layers, encoder.layers, strict=True),
    ]
    for module, source in pairs:
        module.load_state_dict(source.state_dict())  # strict: same structure
    graph = mixed_batch.graph
    rwse = torch.cat([AddRandomWalkPE(k)(d.clone()).random_walk_pe for d in graph.to_data_list()])

    def reference(training: bool) -> torch.Tensor:
        for module in [norm, *layers]:
            module.train(training)
        h = torch.cat([atoms(graph.x), linear(norm(rwse))], dim=-1)
        for layer, bond in zip(layers, bonds, strict=True):
            h = layer(h, graph.edge_index, graph.batch, edge_attr=bond(graph.edge_attr))
        return h

    for training in (True, False):  # batch statistics, then the running ones
        expected = reference(training)
        out = encoder.train(training)(mixed_batch)
        torch.testing.assert_close(out.extras["nodes"], expected)
        torch.testing.assert_close(out.node_embeddings[out.node_mask], expected)
        torch.testing.assert_close(out.graph_embedding, global_mean_pool(expected, graph.batch))
    summed = GPSEncoder(GPSConfig(**(TINY | dict(pooling="sum")))).eval()(mixed_batch)
    torch.testing.assert_close(
        summed.graph_embedding,
        summed.node_embeddings.masked_fill(~summed.node_mask[..., None], 0).sum(1),
    )


@pytest.mark.parametrize("local", ["gine", "gatedgcn", "gatedgcn_edges"])
def test_permuting_atoms_permutes_nodes_and_keeps_the_graph_embedding(local):
    encoder = _encoder(local=local).eval()
    mol = Chem.MolFromSmiles(_smiles("moses_test_200.csv", slice(3, 4))[0])
    order = torch.randperm(mol.GetNumAtoms(), generator=torch.Generator().manual_seed(1)).tolist()
    shuffled = Chem.RenumberAtoms(mol, order)  # new atom i is old atom order[i]
    base = encoder(_batch([mol_to_data(mol)]))
    moved = encoder(_batch([mol_to_data(shuffled)]))
    torch.testing.assert_close(
        moved.node_embeddings[0], base.node_embeddings[0, order], atol=1e-5, rtol=1e-4
    )
    torch.testing.assert_close(moved.graph_embedding, base.graph_embedding, atol=1e-5, rtol=1e-4)


def test_a_molecule_is_encoded_the_same_alone_and_in_a_padded_batch():
    encoder = _encoder(local="gatedgcn")
    encoder(_batch([smiles_to_data(s) for s in _smiles("moses_test_200.csv", slice(0, 16))]))
    encoder.eval()  # running statistics now differ from the initial ones
    small = smiles_to_data("CC(=O)Nc1ccc(O)cc1")
    large = [smiles_to_data(s) for s in _smiles("moses_test_200.csv", slice(20, 24))]
    alone = encoder(_batch([small]))
    inside = encoder(_batch([large[0], small, *large[1:]]))
    n = small.num_nodes
    assert inside.node_mask.shape[1] > n and not inside.node_mask[1, n:].any()
    torch.testing.assert_close(
        inside.node_embeddings[1, :n], alone.node_embeddings[0], atol=1e-5, rtol=1e-4
    )
    torch.testing.assert_close(
        inside.graph_embedding[1], alone.graph_embedding[0], atol=1e-5, rtol=1e-4
    )


def test_coordinates_do_not_change_the_outputs():
    encoder = _encoder().eval()
    smiles = _smiles("qm9_100.csv", slice(0, 5))
    plain = encoder(_batch([smiles_to_data(s) for s in smiles]))
    graphs = [smiles_to_data(s) for s in smiles]
    for g in graphs:
        g.pos = torch.randn(g.num_nodes, 3) * 5
    with_pos = _batch(graphs)
    assert with_pos.has_pos.all()
    out = encoder(with_pos, mode="3d")
    torch.testing.assert_close(out.node_embeddings, plain.node_embeddings)
    torch.testing.assert_close(out.graph_embedding, plain.graph_embedding)


@pytest.mark.parametrize("local", ["gine", "gatedgcn", "gatedgcn_edges"])
def test_both_local_convs_train_and_every_parameter_gets_a_gradient(mixed_batch, local):
    encoder = _encoder(local=local, dropout=0.1).train()
    out = encoder(mixed_batch)
    assert out.node_embeddings.shape == (16, mixed_batch.x.shape[1], 32)
    assert (
        out.graph_embedding.shape == (16, 32)
        and out.extras["nodes"].shape[0] == mixed_batch.graph.num_nodes
    )
    loss = out.graph_embedding.square().sum() + out.extras["nodes"].sum()
    if local == "gatedgcn_edges":  # the last layer's edge update reaches only the edge output
        assert out.extras["edges"].shape == (mixed_batch.graph.num_edges, 32)
        loss = loss + out.extras["edges"].square().sum()
    loss.backward()
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0, name


def test_presets_and_registration():
    paper = GPSConfig.paper()
    assert (paper.num_layers, paper.dim, paper.num_heads) == (5, 300, 4)
    assert paper.local == "gatedgcn_edges"
    assert (paper.rwse_steps, paper.rwse_dim, paper.attn_dropout) == (16, 32, 0.5)
    small = GPSConfig.small(num_layers=2)
    assert small.local == "gine" and small.dim == 128 and small.num_layers == 2
    assert get_model_class("gps") is GPSEncoder
    with pytest.raises(ValueError, match="local"):
        GPSConfig(local="gcn")


def test_property_model_on_gps_overfits_a_handful_of_molecules():
    smiles = _smiles("qm9_100.csv", slice(0, 8))
    values = torch.linspace(-1.5, 1.5, 8)[
        torch.randperm(8, generator=torch.Generator().manual_seed(0))
    ]
    graphs = [smiles_to_data(s) for s in smiles]
    for g, v in zip(graphs, values, strict=True):
        g.y = v.view(1, 1)
    batch = _batch(graphs)
    torch.manual_seed(0)
    encoder_config = asdict(GPSConfig.small(**TINY, attn_dropout=0.0))
    model = PropertyModel(PropertyModelConfig("gps", encoder_config, targets=["y"], head_hidden=32))
    optimizer = torch.optim.Adam(model.train().parameters(), lr=3e-3)
    for _ in range(150):
        optimizer.zero_grad()
        loss = masked_loss(model(batch)[0], batch.y, "mae")
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05, loss.item()


def test_the_edge_stream_is_the_gatedgcn_layer_inside_gpsconv(mixed_batch):
    """GPSConv's residual and dropout around the node update plus the edge residual equal the
    official layer's own (GatedGCNConv with residual), and edge states pass from layer to layer."""
    from molfm.nn.gatedgcn import GatedGCNConv

    encoder = _encoder(local="gatedgcn_edges", attn_dropout=0.0, dropout=0.0).eval()
    assert len(encoder.bond_embeddings) == 1  # bonds are embedded once
    graph = mixed_batch.graph
    x = torch.randn(graph.num_nodes, 32)
    e = torch.randn(graph.num_edges, 32)
    local = encoder.layers[0].conv
    whole = GatedGCNConv(32, residual=True).eval()
    whole.load_state_dict(local.conv.state_dict())
    expected_x, expected_e = whole(x, graph.edge_index, e)
    torch.testing.assert_close(local(x, graph.edge_index, e) + x, expected_x)
    torch.testing.assert_close(local.take_edges(), expected_e)
    # the encoder by hand: bond embedding once, then each GPSConv with the previous edges
    h = encoder.embed(graph)
    edges = encoder.bond_embeddings[0](graph.edge_attr)
    for layer in encoder.layers:
        h = layer(h, graph.edge_index, graph.batch, edge_attr=edges)
        edges = layer.conv.take_edges()
    out = encoder(mixed_batch)
    torch.testing.assert_close(out.extras["nodes"], h)
    torch.testing.assert_close(out.extras["edges"], edges)
    assert not torch.allclose(edges, encoder.bond_embeddings[0](graph.edge_attr))


def test_paper_preset_parameter_counts():
    """The counts docs/pgt3d.md states (PyG's ResGatedGraphConv kept as ``gatedgcn``)."""
    counts = {
        local: sum(p.numel() for p in GPSEncoder(GPSConfig.paper(local=local)).parameters())
        for local in ("gatedgcn_edges", "gatedgcn")
    }
    assert counts == {"gatedgcn_edges": 5_934_108, "gatedgcn": 6_842_208}
