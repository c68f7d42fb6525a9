"""Transformer-M encoder: invariances, mode switches, checkpoint round trip, overfit."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from molfm.chem.featurize import mol_to_data, smiles_to_data
from molfm.chem.io import mol_from_xyz
from molfm.data.dense import DenseGraphDataset, collate_dense
from molfm.data.sources.qm9 import parse_elements, parse_float_lists
from molfm.hub import from_pretrained, save_pretrained
from molfm.systems.transformer_m.config import TransformerMConfig
from molfm.systems.transformer_m.model import TransformerM

DATA = Path(__file__).parents[2] / "data"


def _qm9(n: int = 6):
    """The first QM9 molecules with their DFT heavy-atom coordinates, as PyG graphs."""
    frame = pd.read_csv(DATA / "qm9_100.csv").iloc[:n]
    graphs = []
    for elements, xyz, smiles in zip(
        parse_elements(frame["Elements"]), parse_float_lists(frame["XYZ_Ang"], 3), frame["SMILES"]
    ):
        mol = mol_from_xyz(elements, xyz, smiles)
        pos = mol.GetConformer().GetPositions().astype(np.float32)
        graphs.append(mol_to_data(mol, pos=pos))
    return graphs


def _batch(graphs):
    dataset = DenseGraphDataset(graphs, pair_structure=TransformerM.pair_structure)
    return collate_dense([dataset[i] for i in range(len(dataset))])


def _model(**overrides):
    torch.manual_seed(0)
    config = TransformerMConfig(num_layers=2, dim=32, num_heads=4, ffn_dim=64, num_kernels=16)
    for key, value in overrides.items():
        setattr(config, key, value)
    return TransformerM(config).eval()


def _random_rotation(seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed)))
    return q


def test_invariant_to_rotation_translation_and_atom_order():
    graphs = _qm9()
    model = _model()
    reference = model(_batch(graphs), mode="2d3d")
    rotation = _random_rotation(1)
    moved = []
    for g in graphs:
        h = g.clone()
        h.pos = g.pos @ rotation.T + torch.tensor([3.0, -1.0, 7.5])
        moved.append(h)
    out = model(_batch(moved), mode="2d3d")
    torch.testing.assert_close(out.graph_embedding, reference.graph_embedding, atol=1e-4, rtol=1e-4)
    # permute the atoms of every molecule: node outputs permute, graph outputs stay
    permuted, perms = [], []
    for i, g in enumerate(graphs):
        perm = torch.randperm(g.num_nodes, generator=torch.Generator().manual_seed(i))
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(len(perm))
        h = g.clone()
        h.x, h.pos = g.x[perm], g.pos[perm]
        h.edge_index = inverse[g.edge_index]
        permuted.append(h)
        perms.append(perm)
    out = model(_batch(permuted), mode="2d3d")
    torch.testing.assert_close(out.graph_embedding, reference.graph_embedding, atol=1e-4, rtol=1e-4)
    for b, perm in enumerate(perms):
        n = len(perm)
        torch.testing.assert_close(
            out.node_embeddings[b, :n], reference.node_embeddings[b, perm], atol=1e-4, rtol=1e-4
        )


def test_2d_mode_ignores_coordinates_and_3d_mode_uses_them():
    graphs = _qm9()
    model = _model()
    batch = _batch(graphs)
    noisy = _batch(graphs)
    noisy.pos = batch.pos + torch.randn_like(batch.pos)
    two_d = model(batch, mode="2d").graph_embedding
    torch.testing.assert_close(model(noisy, mode="2d").graph_embedding, two_d, atol=0, rtol=0)
    three_d = model(batch, mode="3d").graph_embedding
    assert (model(noisy, mode="3d").graph_embedding - three_d).abs().max() > 1e-3
    assert (three_d - two_d).abs().max() > 1e-3
    # without coordinates, eval runs 2D; asking for 3D is a clear error
    flat = _batch([smiles_to_data("CCO"), smiles_to_data("c1ccccc1")])
    assert not flat.has_pos.any()
    model(flat)
    with pytest.raises(ValueError, match="needs coordinates"):
        model(flat, mode="3d")


def test_training_draws_modes_with_the_configured_probabilities():
    graphs = _qm9(4) * 500
    model = _model(mode_probs=(0.2, 0.2, 0.6)).train()
    torch.manual_seed(0)
    switches = model.select_modes(_batch(graphs))
    both = (switches.sum(1) == 2).float().mean()
    only_2d = ((switches[:, 0] == 1) & (switches[:, 1] == 0)).float().mean()
    only_3d = ((switches[:, 0] == 0) & (switches[:, 1] == 1)).float().mean()
    assert abs(both - 0.2) < 0.03 and abs(only_2d - 0.2) < 0.03 and abs(only_3d - 0.6) < 0.03


def test_checkpoint_round_trip(tmp_path):
    graphs = _qm9()
    model = _model()
    save_pretrained(model, tmp_path / "tm")
    loaded = from_pretrained(tmp_path / "tm")
    batch = _batch(graphs)
    torch.testing.assert_close(
        loaded(batch).graph_embedding, model(batch).graph_embedding, atol=0, rtol=0
    )


def test_paper_size():
    config = TransformerMConfig.paper()
    assert (config.num_layers, config.dim, config.num_heads, config.num_kernels) == (
        12,
        768,
        32,
        128,
    )


def test_denoising_head_is_equivariant():
    from molfm.systems.transformer_m.denoise import PositionDenoisingHead

    torch.manual_seed(0)
    batch = _batch(_qm9())
    head = PositionDenoisingHead(32, 4)
    nodes = torch.randn(*batch.node_mask.shape, 32)
    bias = torch.randn(batch.num_graphs, 4, *batch.node_mask.shape[1:2] * 2)
    out = head(nodes, batch.pos, bias, batch.node_mask)
    rotation = _random_rotation(3)
    moved = batch.pos @ rotation.T + torch.tensor([1.0, 2.0, -4.0])
    torch.testing.assert_close(
        head(nodes, moved, bias, batch.node_mask), out @ rotation.T, atol=1e-5, rtol=1e-4
    )
    assert out[~batch.node_mask].abs().sum() == 0 and out.abs().sum() > 0


def test_denoising_loss_runs_only_on_3d_molecules_and_can_be_learned():
    graphs = _qm9(2)
    batch = _batch(graphs)
    model = _model().train()
    assert model.auxiliary_loss(batch, model(batch, mode="2d")) is None
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(100):
        torch.manual_seed(0)  # the same noise every step: an overfit test of the head + encoder
        optimizer.zero_grad()
        loss = model.auxiliary_loss(batch, model(batch, mode="3d"))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # untrained, the error is about the noise itself (~3 per atom: 3 unit-variance coordinates)
    assert losses[0] > 1.5 and min(losses[-10:]) < 0.2 * losses[0], (losses[0], losses[-1])
