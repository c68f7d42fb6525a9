"""Collect the 3D-PGT experiment runs (benchmarks/pgt3d_experiments.sh) into
benchmarks/results/pgt3d.json and print the tables of benchmarks/RESULTS.md.

    python benchmarks/pgt3d_results.py [RUNS]      # default runs/pgt3d
"""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from molfm.systems.pgt3d.protocol import QM9_FINETUNE_TARGETS

RUNS = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/pgt3d")
OUT = Path(__file__).parent / "results" / "pgt3d.json"
QM9_ROWS = {
    "scratch": "GPS from scratch",
    "pgt_auto": "GPS + 3D-PGT, searched weights",
    "pgt_equal": "GPS + 3D-PGT, equal weights",
    "transformer_m_joint": "Transformer-M joint (2D+3D), evaluated 2D",
}
PRETRAIN_ROWS = (
    "auto", "equal", "auto_3k", "equal_3k", "bond_only", "angle_only", "dihedral_only",
)  # fmt: skip


def seconds(run: Path) -> dict | None:
    """Wall and user CPU seconds from /usr/bin/time (None while the run is still going)."""
    text = (run / "time.txt").read_text().split() if (run / "time.txt").exists() else []
    if len(text) < 4:
        return None
    return {"wall_s": float(text[0]), "user_s": float(text[3])}


def pretraining() -> dict:
    rows = {}
    for name in PRETRAIN_ROWS:
        run = RUNS / f"pretrain_{name}"
        if not (run / "metrics.json").exists():
            continue
        report = json.loads((run / "metrics.json").read_text())
        logs = pd.read_csv(sorted((run / "logs").glob("version_*/metrics.csv"))[-1])
        curve = logs.dropna(subset=["val/energy_mae"])[["step", "val/energy_mae"]]
        rows[name] = {
            "final": report["heldout"],
            "final_task_weights": report["final_task_weights"],
            "energy_mae_curve": curve.to_dict("list"),
            "train_molecules_per_second": report["train_molecules_per_second"],
            "geometry_targets_seconds_per_molecule": report[
                "geometry_targets_seconds_per_molecule"
            ],
            "cpu": seconds(run),
        }
    return rows


def finetune(prefix: str, names) -> dict:
    rows = {}
    for name in names:
        runs = sorted(RUNS.glob(f"{prefix}_{name}_seed*"))
        runs = [r for r in runs if (r / "metrics.json").exists()]
        if not runs:
            continue
        reports = [json.loads((r / "metrics.json").read_text())["metrics"] for r in runs]
        per_target = {}
        for target in reports[0]:
            if target == "mean":
                continue
            key = (
                "mae_meV"
                if "mae_meV" in reports[0][target]
                else ("mae" if "mae" in reports[0][target] else "roc_auc")
            )
            values = [r[target][key] for r in reports]
            per_target[target] = {
                "metric": key, "values": values,
                "mean": float(np.mean(values)), "std": float(np.std(values)),
            }  # fmt: skip
        rows[name] = {"seeds": [r.name for r in runs], "metrics": per_target}
        rows[name]["cpu"] = [seconds(r) for r in runs]
    return rows


def main() -> None:
    result = {
        "pretraining": pretraining(),
        "qm9": finetune("qm9", QM9_ROWS),
        "b3db": finetune("b3db", ("scratch", "pgt_auto")),
    }
    OUT.write_text(json.dumps(result, indent=2))
    qm9 = result["qm9"]
    if "scratch" in qm9:
        header = "| encoder | " + " | ".join(QM9_FINETUNE_TARGETS) + " | mean rel. to scratch |"
        print(header)
        print("|" + "---|" * (len(QM9_FINETUNE_TARGETS) + 2))
        base = qm9["scratch"]["metrics"]
        for name, label in QM9_ROWS.items():
            if name not in qm9:
                continue
            m = qm9[name]["metrics"]
            cells = [f"{m[t]['mean']:.4g}" for t in QM9_FINETUNE_TARGETS]
            rel = np.mean([m[t]["mean"] / base[t]["mean"] - 1 for t in QM9_FINETUNE_TARGETS])
            print(f"| {label} | " + " | ".join(cells) + f" | {100 * rel:+.1f}% |")
    for name, row in result["b3db"].items():
        auc = row["metrics"]["bbb"]
        print(f"B3DB {name}: ROC-AUC {auc['mean']:.3f} +- {auc['std']:.3f} {auc['values']}")
    for name, row in result["pretraining"].items():
        print(
            f"pretrain {name}: energy MAE {row['final']['energy_mae']:.3f} eV, "
            f"weights {row['final_task_weights']}, {row['train_molecules_per_second']:.0f} mol/s"
        )


if __name__ == "__main__":
    main()
