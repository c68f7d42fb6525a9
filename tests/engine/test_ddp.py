"""Multi-process training: two gloo processes on the CPU against one process at the same
global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from molfm.data.samplers import SeededSampler
from molfm.engine.hardware import HardwareError, lightning_kwargs, one_process

HERE = Path(__file__).parent
DATA = HERE.parent / "data"


class _Trainer:
    """What SeededSampler reads of a Lightning trainer."""

    def __init__(self, rank: int, world_size: int, step: int = 0, epoch: int = 0) -> None:
        self.global_rank, self.world_size = rank, world_size
        self.global_step, self.current_epoch = step, epoch


def _shards(n: int, batch: int, world: int, step: int = 0, epoch: int = 0) -> list[list[int]]:
    shards = []
    for rank in range(world):
        sampler = SeededSampler(n, seed=3)
        sampler.resume(_Trainer(rank, world, step, epoch), batch)
        shards.append(list(sampler))
        if step == 0:  # a whole epoch: the batches Lightning counts are the ones yielded
            assert len(sampler) // batch == len(shards[-1]) // batch
    return shards


@pytest.mark.parametrize(("step", "epoch"), [(0, 0), (3, 0), (5, 1)])
def test_ranks_split_each_global_batch_of_the_one_process_order(step, epoch):
    n, batch, world = 53, 4, 2  # 6 global batches of 8 an epoch, 5 molecules left over
    single = _shards(n, batch * world, 1, step, epoch)[0]
    shards = _shards(n, batch, world, step, epoch)
    assert len(shards[0]) == len(shards[1])
    for k in range(len(shards[0]) // batch):
        together = shards[0][k * batch : (k + 1) * batch] + shards[1][k * batch : (k + 1) * batch]
        assert sorted(together) == sorted(single[k * batch * world : (k + 1) * batch * world])
    assert not set(shards[0]) & set(shards[1])


def test_strategy_and_nodes_reach_the_trainer_and_leave_evaluation():
    kwargs = lightning_kwargs("cpu", "2", strategy="ddp", num_nodes=2)
    assert kwargs["num_nodes"] == 2 and type(kwargs["strategy"]).__name__ == "DDPStrategy"
    assert one_process(kwargs) == {"accelerator": "cpu", "devices": 1, "precision": "32-true"}
    assert "strategy" not in lightning_kwargs("cpu", 1)
    with pytest.raises(HardwareError, match="--num-nodes 2 needs --strategy ddp"):
        lightning_kwargs("cpu", 1, num_nodes=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def qm9_csv(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLFM_CACHE", str(tmp_path / "cache"))
    frame = pd.read_csv(DATA / "qm9_100.csv")
    path = tmp_path / "qm9.csv"
    gap = frame["HOMO_LUMO_gap_au"] * 27.211386
    pd.DataFrame({"smiles": frame["SMILES"], "gap": gap}).to_csv(path, index=False)
    return path


def test_two_gloo_processes_match_one_process_at_the_same_global_batch(qm9_csv, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    worker = str(HERE / "ddp_run.py")
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    # one process, batch 32 (it also prepares the cache the two ranks then read)
    subprocess.run(
        [sys.executable, worker, str(one), str(qm9_csv), "32", "auto", "1"],
        env=env,
        check=True,
        timeout=300,
    )
    launch = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        str(_free_port()),
    ]
    subprocess.run(
        [*launch, worker, str(two), str(qm9_csv), "16", "ddp", "2"],
        env=env,
        check=True,
        timeout=300,
    )
    single = torch.load(one / "rank0.pt")
    ranks = [torch.load(two / f"rank{r}.pt") for r in (0, 1)]
    assert ranks[0]["world_size"] == 2 and len(ranks[0]["losses"]) == 10
    for name, value in ranks[0]["state"].items():  # every rank ends with the same weights
        torch.testing.assert_close(ranks[1]["state"][name], value, rtol=0, atol=0, msg=name)
    # the global batch's loss follows the one-process curve, and so do the weights
    torch.testing.assert_close(
        torch.tensor(ranks[0]["losses"]), torch.tensor(single["losses"]), rtol=1e-4, atol=1e-5
    )
    for name, value in single["state"].items():
        torch.testing.assert_close(ranks[0]["state"][name], value, rtol=1e-3, atol=1e-4, msg=name)
    # rank 0 alone exported the best model and scored the test split
    report = json.loads((two / "run" / "metrics.json").read_text())
    assert report["training"]["steps"] == 10 and (two / "run" / "model").is_dir()
    val = [pd.read_csv(next((d / "run" / "logs").glob("*/metrics.csv"))) for d in (one, two)]
    val = [v["val/loss"].dropna().to_numpy() for v in val]
    assert len(val[0]) == len(val[1]) == 5  # every 2 steps (an epoch of 2 global batches)
    torch.testing.assert_close(torch.tensor(val[1]), torch.tensor(val[0]), rtol=1e-4, atol=1e-5)
