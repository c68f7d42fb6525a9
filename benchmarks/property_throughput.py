"""Training molecules/s of molfm's property run (Transformer-M small, 2D) against chemprop v2,
side by side in one run on the same QM9 molecules.

Each trainer runs as its own command for 1 and for K = ``--epochs`` epochs over the same ``--n-train``
training molecules; the difference of the two wall times is one steady-state epoch (process
start, imports, data loading and the first epoch's one-time work cancel out), so
``(K - 1) n_train / (tK - t1)`` is molecules/s of training, the epoch's validation included. One
untimed molfm run first fills molfm's prepared-data cache, which only the first command of all
would otherwise pay. Each K-epoch run's test MAE (mean over the targets, eV, the same 200
molecules for both) is reported beside its rate, so the speed is not bought with accuracy. The
commands alternate (molfm 1, chemprop 1, molfm K, chemprop K, then again) for ``--rounds``
rounds, so both see the same machine load; the report gives each round and the median.

chemprop runs from its own virtual environment (``benchmarks/qm9_chemprop.py`` says how to make
it) with its defaults, as in RESULTS section 10, except no LR warm-up (it refuses a 1-epoch
run with one; the schedule does not change an epoch's time). Usage::

    python benchmarks/property_throughput.py --chemprop ~/chemprop-venv/bin/chemprop \\
        --n-train 10000 --epochs 5 --rounds 3 --out benchmarks/results/property_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

TARGETS = ["homo", "lumo", "gap"]
BATCH = 64


def write_split(work: Path, n_train: int, n_val: int, n_test: int = 200) -> Path:
    """QM9 (molfm's prepared copy, targets in eV): seeded train/val/test molecules as a CSV
    with chemprop's ``split`` column, and the same split as molfm's ``.npz`` beside it."""
    from molfm.data.dense import DenseDataModule
    from molfm.data.prepare import prepare_dataset
    from molfm.data.sources import get_source

    dataset = prepare_dataset(get_source("qm9"), None, on_invalid="skip", progress=False).dataset
    data = DenseDataModule(dataset, target_columns=TARGETS)
    data.setup()
    store = data.store
    order = np.random.default_rng(0).permutation(len(store))[: n_train + n_val + n_test]
    frame = pd.DataFrame({"smiles": [store.smiles[i] for i in order]})
    for t, name in enumerate(TARGETS):
        frame[name] = store.y[order, t]
    frame["split"] = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    frame.to_csv(work / "split.csv", index=False)
    # the CSV's rows are the prepared data's rows, in order
    rows = np.arange(len(frame))
    np.savez(
        work / "split.npz",
        train=rows[:n_train],
        val=rows[n_train : n_train + n_val],
        test=rows[n_train + n_val :],
    )
    return work / "split.csv"


def molfm_command(split: Path, out: Path, epochs: int, n_train: int) -> list[str]:
    steps = epochs * (n_train // BATCH)
    return [
        *("molfm", "train", "property", "--model", "transformer-m", "--preset", "small"),
        *("--data-path", str(split), "--smiles-column", "smiles"),
        *("--target-columns", ",".join(TARGETS)),
        *("--split-file", str(split.with_suffix(".npz"))),
        *("--mode", "2d", "--eval-mode", "2d", "--batch-size", str(BATCH), "--lr", "5e-4"),
        *("--max-steps", str(steps), "--val-every-n-steps", str(n_train // BATCH)),
        *("--accelerator", "cpu", "--no-progress", "--output-dir", str(out)),
    ]


def chemprop_command(chemprop: str, split: Path, out: Path, epochs: int) -> list[str]:
    return [
        *(chemprop, "train", "--data-path", str(split), "--smiles-columns", "smiles"),
        *("--target-columns", *TARGETS, "--task-type", "regression"),
        *("--splits-column", "split", "--epochs", str(epochs), "--save-dir", str(out)),
        # chemprop refuses fewer epochs than its LR warm-up (2); the schedule does not change
        # the time an epoch takes
        *("--warmup-epochs", "0"),
        *("--num-workers", "0", "--accelerator", "cpu", "--devices", "1", "--metrics", "mae"),
    ]


def timed(command: list[str], out: Path, log: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    with log.open("a") as sink:
        subprocess.run(command, check=True, stdout=sink, stderr=subprocess.STDOUT)
    return time.perf_counter() - start


def test_mae(predictions: Path, truth: pd.DataFrame) -> float:
    """Mean absolute error over ``TARGETS`` of a run's test predictions, matched by SMILES."""
    frame = pd.read_csv(predictions)
    pred = (
        frame[[f"{t}_pred" for t in TARGETS]] if f"{TARGETS[0]}_pred" in frame else frame[TARGETS]
    )
    pred = pred.set_axis(TARGETS, axis=1).set_index(frame["smiles"])
    true = truth.set_index("smiles").loc[pred.index, TARGETS]
    return float(np.abs(pred.to_numpy() - true.to_numpy()).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chemprop", default=str(Path.home() / "chemprop-venv/bin/chemprop"))
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-val", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--epochs", type=int, default=5, help="K: the long run's epochs (the short run has 1)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("runs/property_throughput"))
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/property_throughput.json")
    )
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    split = write_split(args.work, args.n_train, args.n_val)
    log = args.work / "log.txt"
    truth = pd.read_csv(split).query("split == 'test'")
    warm = args.work / "molfm_warm_up"
    timed(molfm_command(split, warm, 1, args.n_train), warm, log)  # fills the data cache
    rounds = []
    for _ in range(args.rounds):
        times: dict[str, dict[int, float]] = {"molfm": {}, "chemprop": {}}
        for epochs in (1, args.epochs):
            out = args.work / f"molfm_{epochs}"
            times["molfm"][epochs] = timed(
                molfm_command(split, out, epochs, args.n_train), out, log
            )
            out = args.work / f"chemprop_{epochs}"
            times["chemprop"][epochs] = timed(
                chemprop_command(args.chemprop, split, out, epochs), out, log
            )
        row = {
            name: {
                "wall_1_epoch_s": t[1],
                f"wall_{args.epochs}_epochs_s": t[args.epochs],
                "epoch_s": (t[args.epochs] - t[1]) / (args.epochs - 1),
                "train_molecules_per_s": (args.epochs - 1) * args.n_train / (t[args.epochs] - t[1]),
            }
            for name, t in times.items()
        }
        row["molfm"]["test_mae_K_epochs_eV"] = test_mae(
            args.work / f"molfm_{args.epochs}" / "test_predictions.csv", truth
        )
        row["chemprop"]["test_mae_K_epochs_eV"] = test_mae(
            args.work / f"chemprop_{args.epochs}" / "model_0" / "test_predictions.csv", truth
        )
        row["ratio_molfm_vs_chemprop"] = (
            row["molfm"]["train_molecules_per_s"] / row["chemprop"]["train_molecules_per_s"]
        )
        print(json.dumps(row, indent=2), flush=True)
        rounds.append(row)
    report = {
        "n_train": args.n_train,
        "n_val": args.n_val,
        "batch_size": BATCH,
        "threads": args.threads,
        "load_average_at_end": os.getloadavg()[0],
        "rounds": rounds,
        "median": {
            name: float(np.median([r[name]["train_molecules_per_s"] for r in rounds]))
            for name in ("molfm", "chemprop")
        },
        "median_ratio": float(np.median([r["ratio_molfm_vs_chemprop"] for r in rounds])),
        "epochs_K": args.epochs,
        "median_test_mae_K_epochs_eV": {
            name: float(np.median([r[name]["test_mae_K_epochs_eV"] for r in rounds]))
            for name in ("molfm", "chemprop")
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["median"] | {"ratio": report["median_ratio"]}), file=sys.stderr)


if __name__ == "__main__":
    main()
