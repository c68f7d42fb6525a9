"""The training engine: the resume guard, the stored RNG, and an exact resume through
fit_resumable (GP-MoLFormer's own resume test is tests/systems/gp_molformer/test_pretrain.py)."""

import dataclasses
import json

import lightning as L
import pytest
import torch

from molfm.engine.fit import RESUMABLE_CHANGES, RngStateMixin, fit_resumable, start_or_resume
from molfm.engine.hardware import seed_everything


@dataclasses.dataclass
class Config:
    output_dir: str
    lr: float = 1e-3
    batch_size: int = 8
    data: str = "moses"
    max_steps: int = 10
    val_every_n_steps: int = 5
    progress: bool = True
    accelerator: str = "auto"
    devices: int = 1
    num_workers: int = 0
    cache_dir: str | None = None


def _fake_checkpoint(out):
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "last.ckpt").write_bytes(b"")


def test_resume_guard_allows_only_resumable_changes(tmp_path):
    out = tmp_path / "run"
    start_or_resume(out, Config(str(out)))  # no checkpoint yet: anything goes
    start_or_resume(out, Config(str(out), lr=5e-4))
    assert json.loads((out / "train_config.json").read_text())["lr"] == 5e-4
    _fake_checkpoint(out)
    resumable = dict(
        max_steps=20, val_every_n_steps=7, progress=False, accelerator="cpu", devices=2,
        num_workers=3, cache_dir="elsewhere",  # the cache may move: prepared data is re-found
    )  # fmt: skip
    assert set(resumable) == RESUMABLE_CHANGES
    moved = tmp_path / "moved"  # the run directory may be renamed
    start_or_resume(out, Config(str(moved), lr=5e-4, **resumable))
    stored = json.loads((out / "train_config.json").read_text())
    assert stored["max_steps"] == 20 and stored["devices"] == 2  # the budget was raised


def test_resume_guard_names_every_changed_setting(tmp_path):
    out = tmp_path / "run"
    start_or_resume(out, Config(str(out), lr=5e-4))
    _fake_checkpoint(out)
    before = (out / "train_config.json").read_text()
    with pytest.raises(ValueError) as err:
        start_or_resume(out, Config(str(out), batch_size=16, data="zinc", max_steps=20))
    message = str(err.value)
    for changed in ("lr: 0.0005 -> 0.001", "batch_size: 8 -> 16", "data: 'moses' -> 'zinc'"):
        assert changed in message, message
    assert "max_steps" not in message.split("(only")[0]  # a resumable change is not listed
    assert "new output directory" in message and str(out) in message
    assert (out / "train_config.json").read_text() == before  # left as it was
    with pytest.raises(ValueError, match=r"^[^\n]*$"):  # one line
        start_or_resume(out, Config(str(out), lr=1.0))


def test_rng_state_mixin_restores_the_torch_rng():
    mixin = RngStateMixin()
    torch.manual_seed(3)
    torch.rand(5)
    checkpoint = {}
    mixin.on_save_checkpoint(checkpoint)
    expected = torch.rand(4)
    torch.rand(100)  # the run goes on drawing
    mixin.on_load_checkpoint(checkpoint)
    assert torch.equal(torch.rand(4), expected)
    # a checkpoint written without the mixin leaves the RNG alone
    state = torch.get_rng_state()
    mixin.on_load_checkpoint({"state_dict": {}})
    assert torch.equal(torch.get_rng_state(), state)


class _Data(L.LightningDataModule):
    """Three fixed batches per epoch, in order (no sampler state to resume)."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(12, 6, generator=generator)
        self.y = self.x.sum(1, keepdim=True)

    def train_dataloader(self):
        dataset = torch.utils.data.TensorDataset(self.x, self.y)
        return torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=False)

    def val_dataloader(self):
        return self.train_dataloader()


class _Plain(L.LightningModule):
    """Dropout draws from the global torch RNG on every step."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(6, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 1)
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


class _WithRng(RngStateMixin, _Plain):
    pass


def _run(cls, out, callbacks=None):
    seed_everything(0)
    task = cls()
    fit_resumable(
        task, _Data(), out, max_steps=7, val_every_n_steps=3, batches_per_epoch=3,
        accelerator="cpu", progress=False, callbacks=callbacks,
    )  # fmt: skip
    return {k: v.detach().clone() for k, v in task.state_dict().items()}


def test_fit_resumable_resumes_exactly_with_the_rng_mixin(tmp_path, kill_before_step):
    stop_at, killed = kill_before_step
    torch.set_num_threads(1)
    straight = _run(_WithRng, tmp_path / "a")
    assert (tmp_path / "a" / "checkpoints" / "last.ckpt").exists()
    with pytest.raises(killed):
        _run(_WithRng, tmp_path / "b", callbacks=[stop_at(5)])  # last checkpoint: step 3
    torch.rand(10)  # another process would not continue the killed run's RNG
    resumed = _run(_WithRng, tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b" / "logs").iterdir()) == ["version_0", "version_1"]
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0, msg=key)
    # the control: without the stored RNG the resumed dropout masks differ
    plain_straight = _run(_Plain, tmp_path / "c")
    with pytest.raises(killed):
        _run(_Plain, tmp_path / "d", callbacks=[stop_at(5)])
    torch.rand(10)
    plain = _run(_Plain, tmp_path / "d")
    assert all(torch.equal(plain_straight[k], straight[k]) for k in straight)
    assert any(not torch.equal(plain[k], straight[k]) for k in straight)
