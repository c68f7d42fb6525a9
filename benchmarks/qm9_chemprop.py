"""The chemprop v2 peer for benchmarks/qm9_transformer_m.py: same split, targets, CPU budget.

chemprop pins an RDKit release other than molfm's, so it runs from its own virtual environment
and this script imports only pandas/numpy (both come with chemprop)::

    python3 -m venv ~/chemprop-venv && ~/chemprop-venv/bin/pip install torch==2.13.0 "chemprop>=2.0"
    ~/chemprop-venv/bin/python benchmarks/qm9_chemprop.py --split-csv runs/qm9/qm9_split.csv \\
        --minutes 25 --out benchmarks/results/qm9_chemprop.json

It times three epochs, then trains a fresh model for as many whole epochs as fit in ``--minutes``
(chemprop's default D-MPNN: 3 message-passing steps, hidden 300, Noam LR schedule, MSE loss on
standardized targets), and scores the test rows of the split CSV (MAE in meV; targets in eV).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

TARGETS = ["homo", "lumo", "gap"]


def chemprop(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "chemprop"), *args], check=True)
    return time.perf_counter() - start


def train(split_csv: Path, out: Path, epochs: int, workers: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    return chemprop(
        "train",
        "--data-path",
        str(split_csv),
        "--smiles-columns",
        "smiles",
        "--target-columns",
        *TARGETS,
        "--task-type",
        "regression",
        "--splits-column",
        "split",
        "--epochs",
        str(epochs),
        "--save-dir",
        str(out),
        "--num-workers",
        str(workers),
        "--accelerator",
        "cpu",
        "--devices",
        "1",
        "--metrics",
        "mae",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split-csv", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=25.0)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/qm9_chemprop.json"))
    parser.add_argument(
        "--predict-only",
        action="store_true",
        help="Re-score the model already trained (training figures from --out).",
    )
    args = parser.parse_args()
    work = args.split_csv.parent / "chemprop"
    if args.predict_only:
        old = json.loads(args.out.read_text())
        one_epoch, epochs, train_s = old["one_epoch_s"], old["chemprop_epochs"], old["train_wall_s"]
    else:
        # chemprop needs more epochs than its 2 warm-up epochs; time 3 and take the mean
        one_epoch = train(args.split_csv, work / "calibration", 3, args.workers) / 3
        epochs = max(3, int(args.minutes * 60 // one_epoch))
        train_s = train(args.split_csv, work / "model", epochs, args.workers)
    frame = pd.read_csv(args.split_csv)
    test = frame[frame["split"] == "test"].reset_index(drop=True)
    test[["smiles"]].to_csv(work / "test.csv", index=False)
    model = next((work / "model").rglob("best*.pt"))
    predict_s = chemprop(
        "predict",
        "--test-path",
        str(work / "test.csv"),
        "--model-paths",
        str(model),
        "--preds-path",
        str(work / "preds.csv"),
        "--num-workers",
        str(args.workers),
        "--accelerator",
        "cpu",
        "--devices",
        "1",
    )
    preds = pd.read_csv(work / "preds.csv")
    mae = {
        t: float(np.mean(np.abs(preds[t].to_numpy() - test[t].to_numpy())) * 1000) for t in TARGETS
    }
    n_train = int((frame["split"] == "train").sum())
    report = {
        "chemprop_epochs": epochs,
        "one_epoch_s": one_epoch,
        "train_wall_s": train_s,
        "train_molecules_per_s": epochs * n_train / train_s,
        "predict_wall_s (incl. process start)": predict_s,
        "n_test": int(len(test)),
        "mae_meV": mae,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
