"""One rank of a tiny property run, for tests/engine/test_ddp.py (run directly or by torchrun).

Usage::

    python tests/engine/ddp_run.py OUT DATA_CSV BATCH_SIZE STRATEGY DEVICES

Trains a one-layer Transformer-M in 2D mode (its 3D parameters get no gradient, which DDP
must tolerate) for 10 steps and writes, per rank, ``OUT/rank<r>.pt``: the final weights and
the training loss of every step averaged over the ranks (the loss of the global batch).
"""

from __future__ import annotations

import sys

import lightning as L
import torch
import torch.distributed as dist

from molfm.tasks.config import PropertyTrainConfig
from molfm.tasks.property_run import train_property

TINY_TM = {"num_layers": 1, "dim": 32, "num_heads": 4, "ffn_dim": 64, "num_kernels": 8}


class RecordLoss(L.Callback):
    """The global batch's loss at each step, and the weights this rank ends with."""

    def __init__(self, path: str) -> None:
        self.path, self.losses = path, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"].detach().clone()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(loss)
            loss /= dist.get_world_size()
        self.losses.append(float(loss))

    def on_train_end(self, trainer, pl_module) -> None:
        state = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}
        torch.save(
            {"losses": self.losses, "state": state, "world_size": trainer.world_size},
            f"{self.path}/rank{trainer.global_rank}.pt",
        )


def main() -> None:
    out, data, batch_size, strategy, devices = sys.argv[1:6]
    cfg = PropertyTrainConfig(
        output_dir=f"{out}/run",
        model="transformer-m",
        mode="2d",
        eval_mode="2d",
        data_path=data,
        target_columns=["gap"],
        encoder_overrides=TINY_TM,
        max_steps=10,
        val_every_n_steps=5,
        batch_size=int(batch_size),
        warmup_steps=2,
        accelerator="cpu",
        strategy=strategy,
        devices=devices,
        progress=False,
    )
    train_property(cfg, callbacks=[RecordLoss(out)])


if __name__ == "__main__":
    main()
