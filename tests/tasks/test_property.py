"""Property prediction on any encoder: masked losses, overfitting, a whole run with its report."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from molfm.chem.featurize import smiles_to_data
from molfm.data.dense import DenseGraphDataset, collate_dense
from molfm.hub import from_pretrained
from molfm.tasks.config import PropertyTrainConfig
from molfm.tasks.property import PropertyModel, PropertyModelConfig, masked_loss
from molfm.tasks.property_run import pair_structure, train_property

DATA = Path(__file__).parents[1] / "data"
TINY_TM = {"num_layers": 1, "dim": 32, "num_heads": 4, "ffn_dim": 64, "num_kernels": 8}
TINY_GINE = {"num_layers": 2, "dim": 32}


@pytest.fixture
def qm9_csv(tmp_path, monkeypatch):
    """SMILES + HOMO-LUMO gap (eV) of the committed QM9 slice, as a user CSV."""
    monkeypatch.setenv("MOLFM_CACHE", str(tmp_path / "cache"))
    frame = pd.read_csv(DATA / "qm9_100.csv")
    path = tmp_path / "qm9.csv"
    pd.DataFrame({"smiles": frame["SMILES"], "gap": frame["HOMO_LUMO_gap_au"] * 27.211386}).to_csv(
        path, index=False
    )
    return path


def test_masked_loss_ignores_missing_labels():
    raw = torch.tensor([[1.0, 5.0], [2.0, -3.0]])
    target = torch.tensor([[0.0, float("nan")], [2.0, float("nan")]])
    assert masked_loss(raw, target, "mae").item() == pytest.approx(0.5)
    assert masked_loss(raw, target, "mse").item() == pytest.approx(0.5)
    nothing = masked_loss(raw, torch.full_like(raw, float("nan")), "mae")
    assert nothing.item() == 0.0 and nothing.requires_grad is False or nothing.item() == 0.0
    with pytest.raises(ValueError, match="unknown loss"):
        masked_loss(raw, target, "hinge")


@pytest.mark.parametrize(("encoder", "sizes"), [("transformer-m", TINY_TM), ("gine", TINY_GINE)])
def test_each_encoder_overfits_a_handful_of_molecules(encoder, sizes):
    smiles = ["CCO", "c1ccccc1", "CC(=O)O", "CCN(CC)CC", "O=C=O", "C1CCCCC1"]
    values = torch.tensor([[0.5], [-1.0], [1.5], [0.0], [2.0], [-0.5]])
    graphs = [smiles_to_data(s) for s in smiles]
    for g, v in zip(graphs, values, strict=True):
        g.y = v.view(1, 1)
    dataset = DenseGraphDataset(graphs, pair_structure=pair_structure(encoder))
    batch = collate_dense([dataset[i] for i in range(len(dataset))])
    torch.manual_seed(0)
    config = PropertyModelConfig(encoder, sizes, targets=["y"], head_hidden=32)
    model = PropertyModel(config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        optimizer.zero_grad()
        loss = masked_loss(model(batch)[0], batch.y, "mse")
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.01, loss.item()


def test_regression_run_writes_model_metrics_and_predictions(qm9_csv, tmp_path):
    out = tmp_path / "run"
    cfg = PropertyTrainConfig(
        output_dir=str(out),
        model="transformer-m",
        data_path=str(qm9_csv),
        target_columns=["gap"],
        encoder_overrides=TINY_TM,
        max_steps=12,
        batch_size=16,
        warmup_steps=2,
        accelerator="cpu",
        progress=False,
    )
    model_dir = train_property(cfg)
    report = json.loads((out / "metrics.json").read_text())
    test = pd.read_csv(out / "test_predictions.csv")
    assert report["n"] == len(test) == 10  # 80/10/10 of the 100 molecules
    mae = np.mean(np.abs(test["gap"] - test["gap_pred"]))
    assert report["metrics"]["gap"]["mae"] == pytest.approx(mae, rel=1e-5)
    assert (out / "test_parity.png").stat().st_size > 0
    model = from_pretrained(model_dir)
    assert model.config.targets == ["gap"] and model.config.units == {"gap": ""}
    # the stored scaler is the training split's: predictions land in the data's range (eV)
    assert 3.0 < model.config.mean[0] < 12.0 and model.config.std[0] > 0.1
    assert set(model.config.domain) == {"atomic_number_ids", "max_atoms", "n_train"}


def test_missing_targets_are_masked_not_dropped(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLFM_CACHE", str(tmp_path / "cache"))
    frame = pd.read_csv(DATA / "qm9_100.csv")
    gap = frame["HOMO_LUMO_gap_au"] * 27.211386
    homo = (frame["HOMO_au"] * 27.211386).where(frame.index % 3 != 0)  # a third unlabelled
    path = tmp_path / "partial.csv"
    pd.DataFrame({"smiles": frame["SMILES"], "gap": gap, "homo": homo}).to_csv(path, index=False)
    out = tmp_path / "run"
    cfg = PropertyTrainConfig(
        output_dir=str(out),
        model="gine",
        data_path=str(path),
        target_columns=["gap", "homo"],
        encoder_overrides=TINY_GINE,
        max_steps=4,
        batch_size=16,
        warmup_steps=1,
        accelerator="cpu",
        progress=False,
    )
    train_property(cfg)
    report = json.loads((out / "metrics.json").read_text())["metrics"]
    test = pd.read_csv(out / "test_predictions.csv")
    assert len(test) == 10 and report["gap"]["n"] == 10  # every molecule kept
    assert report["homo"]["n"] == int(test["homo"].notna().sum()) < 10  # scored where labelled


def test_a_killed_run_resumes_exactly(qm9_csv, tmp_path, kill_before_step):
    """80 training molecules, batch 16: 5 steps an epoch, a checkpoint at each epoch's end."""
    make_stop, killed = kill_before_step

    def config(out):
        return PropertyTrainConfig(
            output_dir=str(out),
            model="gine",
            data_path=str(qm9_csv),
            target_columns=["gap"],
            encoder_overrides={**TINY_GINE, "dropout": 0.2},
            max_steps=15,
            batch_size=16,
            warmup_steps=2,
            accelerator="cpu",
            progress=False,
        )

    straight_model = from_pretrained(train_property(config(tmp_path / "a")))
    with pytest.raises(killed):
        train_property(config(tmp_path / "b"), callbacks=[make_stop(12)])
    resumed_model = from_pretrained(train_property(config(tmp_path / "b")))
    # the exported best model too: the kill fell after step 10's checkpoint, before its validation
    for name, value in straight_model.state_dict().items():
        torch.testing.assert_close(resumed_model.state_dict()[name], value, rtol=0, atol=0)

    def last(run):
        return torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=False)

    straight, resumed = last("a"), last("b")
    assert straight["global_step"] == resumed["global_step"] == 15
    for name, value in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], value, rtol=0, atol=0, msg=name)


def test_classification_run_reports_roc_auc_and_draws_the_curve(tmp_path, monkeypatch):
    """B3DB blood-brain-barrier labels (BBB+ = 1): a binary task with the BCE head."""
    monkeypatch.setenv("MOLFM_CACHE", str(tmp_path / "cache"))
    frame = pd.read_csv(DATA / "b3db_classification_150.tsv", sep="\t")
    path = tmp_path / "bbb.csv"
    labels = (frame["BBB+/BBB-"] == "BBB+").astype(float)
    pd.DataFrame({"smiles": frame["SMILES"], "bbb": labels}).to_csv(path, index=False)
    out = tmp_path / "run"
    cfg = PropertyTrainConfig(
        output_dir=str(out),
        model="gine",
        data_path=str(path),
        target_columns=["bbb"],
        task="classification",
        encoder_overrides=TINY_GINE,
        max_steps=6,
        batch_size=16,
        warmup_steps=1,
        split="scaffold",
        accelerator="cpu",
        progress=False,
    )
    model = from_pretrained(train_property(cfg))
    assert model.config.task == "classification" and model.config.mean == [0.0]
    report = json.loads((out / "metrics.json").read_text())["metrics"]["bbb"]
    test = pd.read_csv(out / "test_predictions.csv")
    assert set(test["bbb"].unique()) <= {0.0, 1.0} and test["bbb_pred"].between(0, 1).all()
    from sklearn.metrics import roc_auc_score

    assert report["roc_auc"] == pytest.approx(roc_auc_score(test["bbb"], test["bbb_pred"]))
    assert (out / "test_roc.png").stat().st_size > 0


def test_a_saved_split_file_decides_the_parts(qm9_csv, tmp_path):
    """A protocol's split file (row positions) replaces --split/--split-sizes; a message-passing
    encoder's batches skip the dense pair structure."""
    from molfm.data.splits import Split

    split = Split(np.arange(0, 60), np.arange(60, 70), np.arange(90, 100)).save(tmp_path / "s.npz")
    out = tmp_path / "run"
    cfg = PropertyTrainConfig(
        output_dir=str(out),
        model="gps",
        data_path=str(qm9_csv),
        target_columns=["gap"],
        encoder_overrides={"num_layers": 1, "dim": 32, "num_heads": 2, "rwse_dim": 8},
        split_file=str(split),
        max_steps=2,
        batch_size=16,
        warmup_steps=1,
        accelerator="cpu",
        progress=False,
    )
    train_property(cfg)
    test = pd.read_csv(out / "test_predictions.csv")
    assert list(test["row"]) == list(range(90, 100))
    bad = Split(np.arange(0, 60), np.arange(60, 70), np.arange(95, 105)).save(tmp_path / "b.npz")
    cfg.output_dir, cfg.split_file = str(tmp_path / "bad"), str(bad)
    with pytest.raises(ValueError, match="index 104 is out of range"):
        train_property(cfg)
