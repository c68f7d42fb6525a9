"""The official code's pretext heads (``heads="official"``): the bond head reads [h_i, h_j, e_ij]
per directed edge and predicts the squared distance; the dihedral head reads the edge state."""

import pytest
import torch

from molfm.systems.pgt3d.data import TARGETS, PretrainDataModule, energy_reference, target_stats
from molfm.systems.pgt3d.model import PretextHeads
from molfm.systems.pgt3d.task import PGTPretrainTask

from .conftest import TINY_GPS
from .test_pretrain import _data_module


def _official_task(data, **overrides):
    store, train = data.store, data.split.train
    coef, mean, std = energy_reference(store.x, store.node_ptr, store.y[:, 0], train)
    encoder = TINY_GPS | {"local": "gatedgcn_edges", "dropout": 0.0} | overrides
    return PGTPretrainTask(
        "gps", encoder, target_stats(data, train), energy_reference=list(coef),
        energy_stats=(mean, std), weighting="equal", heads="official",
    )  # fmt: skip


def test_official_heads_read_both_atoms_and_the_edge_state_per_direction(qm9_sdf):
    data: PretrainDataModule = _data_module(qm9_sdf, batch_size=8)
    torch.manual_seed(0)
    task = _official_task(data).eval()
    batch = next(iter(data.val_dataloader()))
    graph = batch.graph
    encoded = task.encoder(batch)
    h, edges = encoded.extras["nodes"], encoded.extras["edges"]
    predicted = task.heads(h, batch.bonds, edges, graph.edge_index)
    n_edges = graph.edge_index.shape[1]
    assert predicted["bond_length"].shape == predicted["dihedral_sum"].shape == (n_edges,)
    k = 5  # one directed edge by hand
    i, j = graph.edge_index[:, k]
    by_hand = task.heads.bond_length(torch.cat([h[i], h[j], edges[k]]))
    torch.testing.assert_close(predicted["bond_length"][k], by_hand.squeeze())
    torch.testing.assert_close(
        predicted["dihedral_sum"][k], task.heads.dihedral(edges[k]).squeeze()
    )
    # the targets: squared distance, standardized, and each bond once per direction
    targets = task._standardized(batch)
    mean, std = target_stats(data, data.split.train)["bond_length_squared"]
    expected = (graph.bond_length[k // 2] ** 2 - mean) / std
    torch.testing.assert_close(targets["bond_length"][k], expected.float())
    assert targets["dihedral_sum"].shape == (n_edges,)
    # a perfect squared-distance prediction scores 0 Angstrom MAE on the bond length
    assert task._mae(0, targets["bond_length"], batch).item() == pytest.approx(0, abs=1e-5)


def test_the_official_heads_train(qm9_sdf):
    data = _data_module(qm9_sdf, batch_size=8)
    torch.manual_seed(0)
    task = _official_task(data)
    batch = next(iter(data.val_dataloader()))
    optimizer = torch.optim.Adam(task.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        optimizer.zero_grad()
        losses, _, _, _ = task.losses(batch)
        sum(losses[t] for t in TARGETS).backward()
        optimizer.step()
        first = first if first is not None else {t: losses[t].item() for t in TARGETS}
    for t in TARGETS:
        assert losses[t].item() < 0.1 * first[t], (t, first[t], losses[t].item())


def test_official_heads_need_edge_states(qm9_sdf):
    data = _data_module(qm9_sdf, batch_size=8)
    batch = next(iter(data.val_dataloader()))
    task = _official_task(data, local="gine")  # an encoder without an edge stream
    with pytest.raises(ValueError, match="edge states"):
        task.losses(batch)
    with pytest.raises(ValueError, match="heads must be one of"):
        PretextHeads(8, form="graphgps")
