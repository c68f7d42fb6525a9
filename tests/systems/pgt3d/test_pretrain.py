"""3D-PGT pretraining: targets in batches, the weight search, the objective, a whole run."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from molfm.chem.geometry import geometry_targets_from_positions
from molfm.data.prepare import prepare_dataset
from molfm.data.sources import user_file_source
from molfm.hub import from_pretrained
from molfm.systems.pgt3d.config import PGTPretrainConfig
from molfm.systems.pgt3d.data import (
    TARGETS,
    PretrainDataModule,
    energy_reference,
    geometry_target_cache,
)
from molfm.systems.pgt3d.protocol import qm9_protocol_splits
from molfm.systems.pgt3d.run import pretrain_3dpgt
from molfm.systems.pgt3d.task import PGTPretrainTask
from molfm.systems.pgt3d.weighting import TaskWeights, gradient_alignment

from .conftest import TINY_GPS


def _data_module(sdf, batch_size=16):
    dataset = prepare_dataset(user_file_source(sdf, target_columns=["u0"]), progress=False).dataset
    data = PretrainDataModule(
        dataset,
        target_columns=["u0"],
        split_sizes=(0.8, 0.2, 0.0),
        batch_size=batch_size,
        energy_column="u0",
    )
    data.setup()
    return data


def test_batches_carry_each_molecules_targets_in_bond_order(qm9_sdf):
    data = _data_module(qm9_sdf)
    batch = next(iter(data.val_dataloader()))
    store = data.store
    start_node = start_bond = 0
    for b, index in enumerate(data.split.val[: len(batch)]):
        a, z = store.node_ptr[index], store.node_ptr[index + 1]
        c, d = store.edge_ptr[index], store.edge_ptr[index + 1]
        expected = geometry_targets_from_positions(store.pos[a:z], store.edge_index[:, c:d:2].T)
        n, m = z - a, (d - c) // 2
        graph = batch.graph
        np.testing.assert_allclose(
            graph.bond_length[start_bond : start_bond + m], expected.bond_length
        )
        np.testing.assert_allclose(
            graph.dihedral_sum[start_bond : start_bond + m], expected.dihedral_sum, atol=1e-6
        )
        np.testing.assert_allclose(
            graph.angle_cos_sum[start_node : start_node + n], expected.angle_cos_sum, atol=1e-6
        )
        # the batch's bond list points at this molecule's atoms, bond by bond
        local = batch.bonds[:, start_bond : start_bond + m] - start_node
        np.testing.assert_array_equal(local.numpy(), store.edge_index[:, c:d:2] + 0)
        start_node, start_bond = start_node + n, start_bond + m
        assert graph.energy[b] == pytest.approx(store.y[index, 0], rel=1e-6)


def test_targets_are_cached_once_per_dataset(qm9_sdf):
    data = _data_module(qm9_sdf)
    cache = data.dataset.path / "geometry_targets.npz"
    stamp = cache.stat().st_mtime_ns
    again = geometry_target_cache(data.store, data.dataset.path)
    assert cache.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.bond_length, data.targets.bond_length)


def test_energy_reference_recovers_per_element_and_hydrogen_energies(qm9_sdf):
    store = _data_module(qm9_sdf).store
    n_types = int(store.x[:, 0].max()) + 1
    truth = np.random.default_rng(0).normal(size=n_types + 1)
    molecule = np.repeat(np.arange(len(store)), np.diff(store.node_ptr))
    energy = np.zeros(len(store))
    np.add.at(energy, molecule, truth[store.x[:, 0]] + truth[-1] * store.x[:, 4])
    coef, mean, std = energy_reference(store.x, store.node_ptr, energy, np.arange(len(store)))
    present = np.unique(store.x[:, 0])
    np.testing.assert_allclose(coef[present], truth[present], atol=1e-8)
    np.testing.assert_allclose(coef[-1], truth[-1], atol=1e-8)
    assert abs(mean) < 1e-8 and std == 1.0  # nothing left to explain -> std falls back to 1


def test_fixed_weights_do_not_move_and_searched_weights_follow_alignment():
    fixed = TaskWeights(TARGETS, [1, 0, 0])
    fixed.update(torch.tensor([0.0, 5.0, 5.0]))
    assert fixed.as_dict() == {"bond_length": 3.0, "angle_cos_sum": 0.0, "dihedral_sum": 0.0}
    searched = TaskWeights(TARGETS, search=True, step_size=0.2)
    for _ in range(5):
        searched.update(torch.tensor([1.0, -0.5, 0.1]))
    w = searched.weights
    assert w.sum().item() == pytest.approx(3.0)
    assert w[0] > w[2] > w[1]
    for _ in range(100):  # a task the surrogate keeps rejecting stays at the floor, not at 0
        searched.update(torch.tensor([1.0, -0.5, 0.1]))
    assert searched.weights.min().item() > 0.5 * 3 * searched.floor


def test_alignment_is_the_one_step_hypergradient():
    """dL_E(theta - eta * sum_k w_k g_k) / dw_k == -eta <g_E, g_k> to first order in eta."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x, x_held, y = (torch.randn(16, n, dtype=torch.float64) for n in (4, 4, 3))
    y_held = torch.randn(16, dtype=torch.float64)
    params = list(model.parameters())

    def task_losses(p):
        out = torch.func.functional_call(model, dict(zip(dict(model.named_parameters()), p)), x)
        return {t: ((out[:, k] - y[:, k]) ** 2).mean() for k, t in enumerate(TARGETS)}

    def surrogate(p):
        out = torch.func.functional_call(
            model, dict(zip(dict(model.named_parameters()), p)), x_held
        )
        return ((out.sum(-1) - y_held) ** 2).mean()

    surrogate_grads = torch.autograd.grad(surrogate(params), params)
    alignment = gradient_alignment(task_losses(params), TARGETS, surrogate_grads, params)
    eta, eps = 1e-5, 1e-3
    losses = task_losses(params)
    grads = {t: torch.autograd.grad(losses[t], params, retain_graph=True) for t in TARGETS}
    for k in range(len(TARGETS)):

        def after_step(w_k, k=k):
            w = torch.ones(3, dtype=torch.float64)
            w[k] = w_k
            return surrogate(
                [
                    p - eta * sum(w[j] * grads[name][i] for j, name in enumerate(TARGETS))
                    for i, p in enumerate(params)
                ]
            )

        finite = (after_step(1 + eps) - after_step(1 - eps)) / (2 * eps)
        assert finite.item() == pytest.approx(-eta * alignment[k].item(), rel=1e-2)


def _task(data, weighting="equal", **kwargs):
    store, train = data.store, data.split.train
    coef, mean, std = energy_reference(store.x, store.node_ptr, store.y[:, 0], train)
    stats = {
        t: (float(getattr(data.targets, t).mean()), float(getattr(data.targets, t).std()))
        for t in TARGETS
    }
    return PGTPretrainTask(
        "gps", TINY_GPS, stats, energy_reference=list(coef), energy_stats=(mean, std),
        weighting=weighting, **kwargs,
    )  # fmt: skip


def test_the_pretext_objective_overfits_a_handful_of_molecules(qm9_sdf):
    data = _data_module(qm9_sdf, batch_size=8)
    torch.manual_seed(0)
    task = _task(data)
    batch = next(iter(data.val_dataloader()))
    optimizer = torch.optim.Adam(task.parameters(), lr=3e-3)
    first = None
    for _ in range(300):
        optimizer.zero_grad()
        losses, probe, _, _ = task.losses(batch)
        total = sum(losses.values()) + probe
        total.backward()
        optimizer.step()
        first = first if first is not None else {t: v.item() for t, v in losses.items()}
    for t in TARGETS:
        assert losses[t].item() < 0.05 * first[t], (t, first[t], losses[t].item())
    assert probe.item() < 0.05


def test_the_search_moves_weights_and_logs_the_trajectory(qm9_sdf):
    data = _data_module(qm9_sdf)
    torch.manual_seed(0)
    task = _task(data, weighting="auto", search_every=1, search_step=0.2)
    task.search_batches = [next(iter(data.val_dataloader()))]
    loader = iter(data.train_dataloader())
    for _ in range(3):
        losses, _, _, _ = task.losses(next(loader))
        task._search_step(losses)
    assert len(task.trajectory) == 3
    assert not torch.allclose(task.task_weights.weights, torch.ones(3))
    assert task.task_weights.weights.sum().item() == pytest.approx(3.0)


def test_the_official_loss_adds_the_raw_energy_through_the_angle_head(qm9_sdf):
    data = _data_module(qm9_sdf)
    torch.manual_seed(0)
    task = _task(data, weighting="official").eval()  # no dropout: two passes agree
    batch = next(iter(data.val_dataloader()))
    losses, _, _, _ = task.losses(batch)
    assert set(losses) == {*TARGETS, "energy"}
    # the fourth task by hand: U0 in Hartree, unstandardized, from the mean-pooled embedding
    h = task.encoder(batch).extras["nodes"]
    graph = batch.graph
    pooled = torch.stack([h[graph.batch == b].mean(0) for b in range(len(batch))])
    hartree = (graph.energy.double() / 27.211386245988).float()
    expected = ((task.heads.angle(pooled).squeeze(-1) - hartree) ** 2).mean()
    torch.testing.assert_close(losses["energy"], expected)
    assert losses["energy"].item() > 100 * sum(losses[t].item() for t in TARGETS)  # it dominates
    # it trains the encoder (unlike the detached probe), and the weights never move
    grads = torch.autograd.grad(
        losses["energy"], list(task.encoder.parameters()), allow_unused=True
    )
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert not task.task_weights.search


def test_automatic_weights_need_an_energy():
    for weighting in ("auto", "official"):
        with pytest.raises(ValueError, match="total energy"):
            PGTPretrainTask("gps", TINY_GPS, {t: (0.0, 1.0) for t in TARGETS}, weighting=weighting)


def test_protocol_splits_are_disjoint_and_sized(tmp_path):
    pre, fine = qm9_protocol_splits(
        1000, tmp_path, n_pretrain=400, n_heldout=50, n_finetune=500, seed=3
    )
    a, b = np.load(pre), np.load(fine)
    pretrain = np.concatenate([a["train"], a["val"]])
    finetune = np.concatenate([b["train"], b["val"], b["test"]])
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (400, 50, 0)
    assert (len(b["train"]), len(b["val"]), len(b["test"])) == (400, 50, 50)
    assert len(np.intersect1d(pretrain, finetune)) == 0
    assert len(np.unique(finetune)) == 500
    with pytest.raises(ValueError, match="needs"):
        qm9_protocol_splits(100, tmp_path)


def _config(out, sdf, **overrides):
    values = dict(
        output_dir=str(out), data_path=str(sdf), energy_column="u0",
        encoder_overrides=TINY_GPS, batch_size=16, max_steps=10, warmup_steps=2,
        search_every=2, search_batches=2, val_every_n_steps=5, split_sizes=[0.8, 0.2, 0.0],
        accelerator="cpu", progress=False,
    )  # fmt: skip
    return PGTPretrainConfig(**(values | overrides))


def test_a_run_exports_the_encoder_weights_and_scores(qm9_sdf, tmp_path):
    out = tmp_path / "run"
    model_dir = pretrain_3dpgt(_config(out, qm9_sdf))
    encoder = from_pretrained(model_dir)
    assert type(encoder).model_type == "gps"
    trajectory = pd.read_csv(out / "task_weights.csv")
    assert list(trajectory["step"]) == [0, 2, 4, 6, 8]
    np.testing.assert_allclose(trajectory[list(TARGETS)].sum(axis=1), 3.0, rtol=1e-5)
    report = json.loads((out / "metrics.json").read_text())
    assert report["n_pretrain"] == 80 and report["n_heldout"] == 20
    for key in ("bond_length_mae", "angle_cos_sum_mae", "dihedral_sum_mae", "energy_mae"):
        assert np.isfinite(report["heldout"][key])
    assert report["geometry_targets_seconds_per_molecule"] > 0
    assert report["final_task_weights"] == pytest.approx(
        trajectory.iloc[-1][list(TARGETS)].to_dict(), rel=0.2
    )


def test_a_killed_run_resumes_exactly(qm9_sdf, tmp_path, kill_before_step):
    make_stop, killed = kill_before_step
    straight = from_pretrained(pretrain_3dpgt(_config(tmp_path / "a", qm9_sdf)))
    with pytest.raises(killed):
        pretrain_3dpgt(_config(tmp_path / "b", qm9_sdf), callbacks=[make_stop(7)])
    resumed = from_pretrained(pretrain_3dpgt(_config(tmp_path / "b", qm9_sdf)))
    for name, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, rtol=0, atol=0, msg=name)
    a = pd.read_csv(tmp_path / "a" / "task_weights.csv")
    b = pd.read_csv(tmp_path / "b" / "task_weights.csv")
    pd.testing.assert_frame_equal(a, b)
