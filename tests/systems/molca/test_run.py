"""A MolCA run exports its best validation checkpoint, not its last weights: for stage 1 (whose
Lightning checkpoints hold everything) and fine-tuning (whose checkpoints hold only what trains,
restored into the trained task in place). Tiny models on a CSV of PubChem names."""

import json
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from molfm.systems.molca.config import MolCATrainConfig
from molfm.systems.molca.lm import save_tiny_lm
from molfm.systems.molca.run import train_molca

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def names_csv(tmp_path_factory):
    rows = [line.rstrip("\n").split("\t") for line in open(DATA / "pubchem_names_150.tsv")]
    pairs = [(r[4], r[7]) for r in rows if len(r) > 7 and r[4] and r[7]][:40]
    path = tmp_path_factory.mktemp("molca_run") / "names.csv"
    pd.DataFrame(pairs, columns=["smiles", "name"]).to_csv(path, index=False)
    return path


class SpoilTheLastStep(L.Callback):
    """Adds large noise to the trainable weights after the last training batch, before the
    last validation: that validation is the worst, so the best checkpoint is an earlier one."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == trainer.max_steps:
            generator = torch.Generator().manual_seed(0)
            with torch.no_grad():
                for p in pl_module.parameters():
                    if p.requires_grad:
                        p.add_(torch.randn(p.shape, generator=generator).to(p) * 3.0)


@pytest.mark.parametrize("stage", ["1", "finetune"])
def test_the_exported_model_is_the_best_checkpoint(stage, names_csv, tmp_path):
    fields = {}
    if stage == "finetune":
        save_tiny_lm(tmp_path / "lm", initializer_range=0.3)
        fields = {"lm": str(tmp_path / "lm"), "lora_r": 4}
    out = tmp_path / "run"
    cfg = MolCATrainConfig(
        output_dir=str(out),
        stage=stage,
        data_path=str(names_csv),
        text_column="name",
        task="iupac",
        graph_layers=2,
        graph_dim=32,
        qformer_layers=2,
        batch_size=4,
        limit_train=12,
        limit_val=4,
        max_steps=3,
        warmup_steps=1,
        val_every_n_steps=1,
        eval_limit=0,
        accelerator="cpu",
        progress=False,
        **fields,
    )
    model_dir = train_molca(cfg, callbacks=[SpoilTheLastStep()])
    training = json.loads((out / "metrics.json").read_text())["training"]
    assert training["stage"] == stage and training["steps"] == 3
    assert training["best_val_loss"] < training["final_metrics"]["val/loss"]
    best = json.loads((out / "checkpoints" / "best.json").read_text())["path"]
    stored = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
    exported = load_file(model_dir / "model.safetensors")
    assert exported and set(exported) <= {k.removeprefix("model.") for k in stored}
    for key, value in exported.items():
        torch.testing.assert_close(value, stored[f"model.{key}"], rtol=0, atol=0, msg=key)
