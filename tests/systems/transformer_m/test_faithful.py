"""Transformer-M's faithful mechanisms: the virtual-token bias, the 3D centrality scale, the
paper's cosine denoising loss, the official blocks (post-LN, drop path, activation dropout,
N(0, 0.02) init), and the legacy behaviour older checkpoints keep."""

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from molfm.chem.featurize import mol_to_data
from molfm.chem.io import mol_from_xyz
from molfm.data.dense import DenseGraphDataset, collate_dense
from molfm.data.sources.qm9 import parse_elements, parse_float_lists
from molfm.hub import load_config, resolve_checkpoint
from molfm.systems.transformer_m.config import FAITHFUL, LEGACY, TransformerMConfig
from molfm.systems.transformer_m.graph_attention import BiasedTransformerLayer, DropPath
from molfm.systems.transformer_m.model import TransformerM
from molfm.tasks.config import DEFAULT_PROPERTY_MODEL
from molfm.tasks.property import PropertyModelConfig, PropertyTask

DATA = Path(__file__).parents[2] / "data"
TINY = dict(num_layers=2, dim=32, num_heads=4, ffn_dim=64, num_kernels=16)


def _batch(n: int = 6):
    """The first QM9 molecules with their DFT heavy-atom coordinates, padded into a batch."""
    frame = pd.read_csv(DATA / "qm9_100.csv").iloc[:n]
    graphs = []
    for elements, xyz, smiles in zip(
        parse_elements(frame["Elements"]), parse_float_lists(frame["XYZ_Ang"], 3), frame["SMILES"]
    ):
        mol = mol_from_xyz(elements, xyz, smiles)
        graphs.append(mol_to_data(mol, pos=mol.GetConformer().GetPositions().astype(np.float32)))
    dataset = DenseGraphDataset(graphs, pair_structure=TransformerM.pair_structure)
    return collate_dense([dataset[i] for i in range(len(dataset))])


def _model(preset: str = "small", **overrides) -> TransformerM:
    torch.manual_seed(0)
    return TransformerM(getattr(TransformerMConfig, preset)(**(TINY | overrides))).eval()


def test_presets_carry_the_paper_setting_and_stored_configs_keep_theirs():
    paper, small = TransformerMConfig.paper(), TransformerMConfig.small()
    for config in (paper, small):
        assert {k: getattr(config, k) for k in FAITHFUL} == FAITHFUL
    assert (paper.norm, paper.init, paper.drop_path) == ("post", "normal", 0.1)
    assert (paper.activation_dropout, paper.attn_dropout, paper.dropout) == (0.1, 0.1, 0.0)
    assert (small.norm, small.init, small.drop_path, small.activation_dropout) == (
        "pre",
        "torch",
        0.0,
        0.0,
    )
    # a config stored before these fields existed loads with the behaviour it was trained with
    stored = dataclasses.asdict(small)
    for key in ("graph_token_bias", "centrality_scale", "denoise_loss", "denoise_weight"):
        stored.pop(key)
    legacy = TransformerMConfig(**stored)
    assert {k: getattr(legacy, k) for k in LEGACY} == LEGACY
    # the shipped checkpoint's stored config is one of those
    shipped = load_config(resolve_checkpoint(DEFAULT_PROPERTY_MODEL))["model_config"]
    assert not set(FAITHFUL) & set(shipped["encoder_config"])
    with pytest.raises(ValueError, match="graph_token_bias 'everywhere'"):
        TransformerMConfig.small(graph_token_bias="everywhere")
    with pytest.raises(ValueError, match="drop_path must be in"):
        TransformerMConfig.small(drop_path=1.0)


def test_virtual_token_bias_sits_on_its_row_and_column_and_changes_attention():
    model = _model()
    atom_bias = torch.randn(2, 4, 3, 3)
    with torch.no_grad():
        model.graph_token_bias.copy_(torch.arange(4.0).view(1, 4, 1, 1) + 1)
    full = model._with_graph_token(atom_bias)
    token = torch.arange(4.0).view(1, 4, 1) + 1
    assert torch.equal(full[:, :, 1:, 1:], atom_bias)
    assert torch.equal(full[:, :, 0, 1:], token.expand(2, 4, 3))
    assert torch.equal(full[:, :, 1:, 0], token.expand(2, 4, 3))
    assert torch.equal(full[:, :, 0, 0], torch.zeros(2, 4))
    # it changes the encoder's outputs, and a loss has a gradient for it
    batch = _batch()
    before = model(batch, mode="2d3d").graph_embedding
    with torch.no_grad():
        model.graph_token_bias.zero_()
    after = model(batch, mode="2d3d").graph_embedding
    assert (after - before).abs().max() > 1e-2
    (after * torch.randn_like(after)).sum().backward()
    assert model.graph_token_bias.grad.abs().min() > 1e-3


def test_uniform_virtual_token_bias_is_the_legacy_no_op():
    model = _model(graph_token_bias="uniform")
    batch = _batch()
    before = model(batch, mode="2d3d").graph_embedding
    with torch.no_grad():
        model.graph_token_bias.add_(2.0)
    after = model(batch, mode="2d3d").graph_embedding
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    (after * torch.randn_like(after)).sum().backward()
    assert model.graph_token_bias.grad.abs().max() < 1e-6


def test_centrality_scale_multiplies_the_3d_atom_term():
    # scaling the centrality by s equals scaling its linear map's weight and bias by s
    batch = _batch()
    scaled = _model(centrality_scale=0.01)
    reference = _model(centrality_scale=1.0)
    reference.load_state_dict(scaled.state_dict())
    with torch.no_grad():
        reference.centrality_3d.weight.mul_(0.01)
        reference.centrality_3d.bias.mul_(0.01)
    torch.testing.assert_close(
        scaled(batch, mode="3d").graph_embedding,
        reference(batch, mode="3d").graph_embedding,
        atol=1e-5,
        rtol=1e-5,
    )


def _noisy_forward(model: TransformerM, mode_probs, seed: int = 0):
    model.config.mode_probs = mode_probs
    batch = _batch()
    torch.manual_seed(seed)
    return batch, model.train()(batch)


def test_cosine_denoising_is_the_paper_loss_on_3d_only_molecules():
    model = _model(dropout=0.0)
    batch, encoded = _noisy_forward(model, (0.5, 0.0, 0.5), seed=3)
    extras = encoded.extras
    only_3d = (extras["use_3d"] == 1) & (extras["use_2d"] == 0)
    assert 0 < only_3d.sum() < len(only_3d)  # a mixed batch
    loss = model.auxiliary_loss(batch, encoded)
    # reference: numpy cosine per atom, mean over each 3D-only molecule, summed / batch size
    pred = model.denoising_head(
        encoded.node_embeddings, extras["pos"], extras["bias_3d"], batch.node_mask
    )
    pred, noise = pred.detach().numpy(), extras["noise"].numpy()
    total = 0.0
    for b in np.flatnonzero(only_3d.numpy()):
        atoms = batch.node_mask[b].numpy()
        p, t = pred[b, atoms], noise[b, atoms]
        cos = (p * t).sum(-1) / np.linalg.norm(p, axis=-1) / np.linalg.norm(t, axis=-1)
        total += (1 - cos).mean()
    assert loss.item() == pytest.approx(total / len(only_3d), rel=1e-5)
    # molecules that also ran 2D carry no denoising loss; the MSE form covers every 3D molecule
    batch, encoded = _noisy_forward(model, (1.0, 0.0, 0.0))
    assert model.auxiliary_loss(batch, encoded) is None
    model.config.denoise_loss = "mse"
    assert model.auxiliary_loss(batch, encoded) > 0


def test_cosine_denoising_can_be_learned():
    batch = _batch(2)
    model = _model().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(60):
        torch.manual_seed(0)  # the same noise every step: an overfit test of the head + encoder
        optimizer.zero_grad()
        loss = model.auxiliary_loss(batch, model(batch, mode="3d"))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # untrained about 1 - 0 (random directions); learned, the directions align
    assert losses[0] > 0.5 and min(losses[-10:]) < 0.4 * losses[0], (losses[0], losses[-1])


def test_the_task_takes_the_encoders_denoising_weight_unless_told():
    batch = _batch()

    def step(weight, **overrides):
        config = PropertyModelConfig(
            "transformer-m",
            dataclasses.asdict(TransformerMConfig.small(**(TINY | overrides))),
            targets=["homo"],
        )
        torch.manual_seed(0)
        task = PropertyTask(dataclasses.asdict(config), auxiliary_weight=weight)
        task.log = lambda *args, **kwargs: None  # no Trainer to log to
        batch.y = torch.zeros(batch.num_graphs, 1)
        torch.manual_seed(1)
        return task.training_step(batch, 0).item()

    default = step(None)
    assert default == pytest.approx(step(1.0))
    assert abs(default - step(0.0)) > 1e-3
    assert step(None, denoise_weight=0.0) == pytest.approx(step(0.0))


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_blocks_match_torchs_transformer_layer(norm):
    # with no pair bias, a block is a standard transformer layer (pre-LN or post-LN)
    torch.manual_seed(0)
    ours = BiasedTransformerLayer(32, 4, 64, norm=norm).eval()
    reference = nn.TransformerEncoderLayer(
        32, 4, 64, dropout=0.0, activation="gelu", batch_first=True, norm_first=norm == "pre"
    ).eval()
    with torch.no_grad():
        reference.self_attn.in_proj_weight.copy_(ours.attn.qkv.weight)
        reference.self_attn.in_proj_bias.copy_(ours.attn.qkv.bias)
        reference.self_attn.out_proj.load_state_dict(ours.attn.out.state_dict())
        reference.linear1.load_state_dict(ours.ffn[0].state_dict())
        reference.linear2.load_state_dict(ours.ffn[2].state_dict())
        reference.norm1.load_state_dict(ours.norm1.state_dict())
        reference.norm2.load_state_dict(ours.norm2.state_dict())
    x = torch.randn(3, 7, 32)
    keep = torch.ones(3, 7, dtype=torch.bool)
    keep[0, 5:] = False
    out = ours(x, torch.zeros(3, 4, 7, 7), keep)
    expected = reference(x, src_key_padding_mask=~keep)
    torch.testing.assert_close(out[keep], expected[keep], atol=1e-5, rtol=1e-5)


def test_drop_path_drops_whole_samples_and_keeps_the_mean():
    torch.manual_seed(0)
    drop = DropPath(0.3).train()
    out = drop(torch.ones(20_000, 5))
    rows = out[:, 0]
    assert torch.equal(out, rows[:, None].expand(-1, 5))  # a whole sample or nothing
    np.testing.assert_allclose(rows.unique().numpy(), [0.0, 1 / 0.7], rtol=1e-6)
    assert abs((rows == 0).float().mean() - 0.3) < 0.02 and abs(rows.mean() - 1) < 0.03
    assert torch.equal(drop.eval()(out), out)
    model = _model("paper", num_layers=5)
    rates = [layer.drop_path.p for layer in model.layers]
    np.testing.assert_allclose(rates, [0.0, 0.025, 0.05, 0.075, 0.1], atol=1e-7)
    assert model.layers[2].ffn[1][1].p == 0.1  # FFN activation dropout


def test_paper_preset_init_and_post_ln_encoder():
    model = _model("paper")
    linear = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, nn.Linear)])
    assert abs(linear.std().item() - 0.02) < 0.002
    assert all(
        m.bias.abs().max() == 0
        for m in model.modules()
        if isinstance(m, nn.Linear) and m.bias is not None
    )
    assert model.edge_embedding.embedding.weight[0].abs().max() == 0  # padding row
    assert torch.all(model.gaussian.mul.weight == 1)  # the Gaussian basis keeps its own init
    assert isinstance(model.input_norm, nn.LayerNorm) and isinstance(model.final_norm, nn.Identity)
    # still invariant to a rotation of the coordinates, and 2D still ignores them
    batch = _batch()
    reference = model(batch, mode="2d3d").graph_embedding
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(1)))
    moved = _batch()
    moved.pos = batch.pos @ q.T + 2.0
    torch.testing.assert_close(
        model(moved, mode="2d3d").graph_embedding, reference, atol=1e-4, rtol=1e-4
    )
    moved.pos = torch.randn_like(batch.pos)
    torch.testing.assert_close(
        model(moved, mode="2d").graph_embedding, model(batch, mode="2d").graph_embedding
    )
