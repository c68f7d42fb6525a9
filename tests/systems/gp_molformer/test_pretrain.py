"""GP-MoLFormer pretraining task: a resumed run continues exactly; the loss goes down."""

from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from molfm.systems.gp_molformer.config import LMTrainConfig
from molfm.systems.gp_molformer.pretrain import train_causal_lm

DATA = Path(__file__).parents[2] / "data"
TINY = dict(n_layer=2, n_head=2, n_embd=32, ffn_dim=64, dropout=0.1)


@pytest.fixture(scope="module")
def smiles_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "train.csv"
    smiles = pd.read_csv(DATA / "moses_train_500.csv")["SMILES"].tolist()[:80]
    pd.DataFrame({"smiles": smiles}).to_csv(path, index=False)
    return path


def _config(out: Path, data: Path, **kw) -> LMTrainConfig:
    base = dict(
        output_dir=str(out),
        data_path=str(data),
        model_overrides=TINY,
        max_length=80,
        batch_size=8,
        lr=3e-3,
        warmup_steps=2,
        max_steps=14,
        val_size=8,
        val_every_n_steps=6,
        progress=False,
        accelerator="cpu",
    )
    return LMTrainConfig(**(base | kw))


def test_resumed_run_matches_uninterrupted_run(tmp_path, smiles_csv, kill_before_step):
    stop_at, killed = kill_before_step
    torch.set_num_threads(1)
    straight = train_causal_lm(_config(tmp_path / "a", smiles_csv))
    # 72 training SMILES / batch 8 = 9 steps per epoch: the step-6 checkpoint is mid-epoch
    with pytest.raises(killed):
        train_causal_lm(_config(tmp_path / "b", smiles_csv), callbacks=[stop_at(7)])
    assert (tmp_path / "b" / "checkpoints" / "last.ckpt").exists()
    # other settings would be another run: refused, naming what changed
    with pytest.raises(ValueError, match=r"lr: 0\.003 -> 0\.001.*new output directory"):
        train_causal_lm(_config(tmp_path / "b", smiles_csv, lr=1e-3))
    resumed = train_causal_lm(_config(tmp_path / "b", smiles_csv))
    logs = sorted(p.name for p in (tmp_path / "b" / "logs").iterdir())
    assert logs == ["version_0", "version_1"]  # the resumed run kept the first run's log
    a = load_file(str(straight / "model.safetensors"))
    b = load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    different_seed = train_causal_lm(_config(tmp_path / "c", smiles_csv, seed=1))
    c = load_file(str(different_seed / "model.safetensors"))
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_training_reduces_validation_loss(tmp_path, smiles_csv):
    torch.set_num_threads(1)
    cfg = _config(tmp_path / "d", smiles_csv, max_steps=60, val_every_n_steps=30)
    model_dir = train_causal_lm(cfg)
    metrics = pd.read_csv(tmp_path / "d" / "logs" / "version_0" / "metrics.csv")
    val = metrics["val/loss"].dropna().tolist()
    assert len(val) >= 2 and val[-1] < 0.8 * val[0]
    assert (model_dir / "config.json").exists() and (tmp_path / "d" / "tokenizer.json").exists()


def test_export_lightning_checkpoint_matches_the_exported_best_model(tmp_path, smiles_csv):
    """The run exports its best validation checkpoint; exporting that .ckpt by hand gives the
    same model."""
    from molfm.hub import from_pretrained
    from molfm.systems.gp_molformer.pretrain import export_checkpoint

    torch.set_num_threads(1)
    cfg = _config(tmp_path / "e", smiles_csv, max_steps=12, val_every_n_steps=12)
    final = from_pretrained(train_causal_lm(cfg))
    best = tmp_path / "e" / "checkpoints" / "best.ckpt"
    exported = from_pretrained(export_checkpoint(best, tmp_path / "exported"))
    ids = torch.tensor([[1, 5, 6, 7, 2]])
    torch.testing.assert_close(exported(ids), final(ids), rtol=0, atol=0)


def test_runs_that_cannot_train_are_refused_before_writing(tmp_path, smiles_csv):
    from molfm.engine.hardware import HardwareError

    out = tmp_path / "run"
    for bad, match in [
        # 72 training SMILES cut to 5 fill no batch of 8: 0 steps, an untrained model
        (dict(limit_train=5), r"5 training molecules fill no batch of 8 .* 0 steps"),
        (dict(batch_size=100), r"72 training molecules fill no batch of 100"),
        (dict(max_steps=0), "max_steps must be >= 1"),
        (dict(preset="huge"), "preset 'huge'"),
        (dict(on_invalid="bogus"), "on_invalid"),
        (dict(model_overrides={"n_head": 3, "n_embd": 32}), "n_head=3"),
        (dict(model_overrides={"depth": 2}), "unknown keys"),
        (dict(devices="two"), "--devices 'two'"),
    ]:
        with pytest.raises((ValueError, FileNotFoundError), match=match):
            train_causal_lm(_config(out, smiles_csv, **bad))
        assert not out.exists()
    with pytest.raises(FileNotFoundError, match="missing.csv"):  # refused as the config is built
        train_causal_lm(_config(out, tmp_path / "missing.csv"))
    assert not out.exists()
    if not torch.cuda.is_available():
        with pytest.raises(HardwareError, match="no CUDA device"):
            train_causal_lm(_config(out, smiles_csv, accelerator="cuda"))
        assert not out.exists()
