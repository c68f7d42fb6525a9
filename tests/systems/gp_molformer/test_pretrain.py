"""GP-MoLFormer pretraining task: a resumed run continues exactly; the loss goes down."""

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from molfm.engine.fit import start_or_resume
from molfm.systems.gp_molformer.pretrain import LMTrainConfig, train_causal_lm

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
        data=str(data),
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


def test_export_lightning_checkpoint_matches_final_model(tmp_path, smiles_csv):
    from molfm.hub import from_pretrained
    from molfm.systems.gp_molformer.pretrain import export_checkpoint

    torch.set_num_threads(1)
    cfg = _config(tmp_path / "e", smiles_csv, max_steps=12, val_every_n_steps=12)
    final = from_pretrained(train_causal_lm(cfg))
    last = tmp_path / "e" / "checkpoints" / "last.ckpt"
    exported = from_pretrained(export_checkpoint(last, tmp_path / "exported"))
    ids = torch.tensor([[1, 5, 6, 7, 2]])
    torch.testing.assert_close(exported(ids), final(ids), rtol=0, atol=0)


def test_resume_guard_allows_only_resumable_changes(tmp_path):
    @dataclasses.dataclass
    class Config:
        output_dir: str
        lr: float = 1e-3
        max_steps: int = 10
        devices: int = 1

    out = tmp_path / "run"
    start_or_resume(out, Config(str(out)))  # no checkpoint yet: anything goes
    start_or_resume(out, Config(str(out), lr=5e-4))
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "last.ckpt").write_bytes(b"")
    start_or_resume(out, Config(str(out), lr=5e-4, max_steps=20, devices=2))  # raise the budget
    assert json.loads((out / "train_config.json").read_text())["max_steps"] == 20
    with pytest.raises(ValueError, match=r"lr: 0\.0005 -> 0\.001"):
        start_or_resume(out, Config(str(out), max_steps=20))
    assert json.loads((out / "train_config.json").read_text())["lr"] == 5e-4  # left as it was
