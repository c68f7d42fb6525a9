"""Rebuild tests/data/tiny-gp-molformer (a 2-layer GP-MoLFormer trained on the fixture slice).

The checkpoint is committed so tests of sampling, decoration and the CLI run without
training; the regression test pins what it generates. Run from the repository root:

    python tests/data/make_tiny_checkpoint.py
"""

import shutil
import tempfile
from pathlib import Path

import torch

from molfm.systems.gp_molformer.config import LMTrainConfig
from molfm.systems.gp_molformer.pretrain import train_causal_lm

HERE = Path(__file__).parent

if __name__ == "__main__":
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = train_causal_lm(
            LMTrainConfig(
                output_dir=tmp,
                data_path=str(HERE / "moses_train_500.csv"),
                smiles_column="SMILES",
                model_overrides=dict(n_layer=2, n_head=4, n_embd=64, ffn_dim=128, dropout=0.0),
                max_length=80,
                batch_size=32,
                lr=3e-3,
                warmup_steps=20,
                max_steps=400,
                val_size=50,
                val_every_n_steps=100,
                accelerator="cpu",
                progress=False,
            )
        )
        target = HERE / "tiny-gp-molformer"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(model_dir, target)
    print(f"wrote {target}")
