"""Throughput per worker, and 1 -> 2 workers on the local engine and on Ray.

Part ``rates``: molecules/s on one core (torch and OpenMP at one thread) of `molfm predict`
(the shipped Transformer-M property model) and `molfm embed` with each shipped encoder, both
with the process start excluded (the batch function called in this process on one part of N
MOSES test SMILES, the model loaded before the clock starts) and included (the CLI command
on the same N molecules, timed from its launch to its exit).

Part ``scaling``: `molfm data prepare` on the first N MOSES train SMILES and `molfm predict` on
the next N, each with one worker, two local workers and two Ray actors (a local Ray cluster
started by the command), fresh caches and outputs, timed from launch to exit.

    python benchmarks/scale_throughput.py --part rates --out benchmarks/results/scale_rates.json
    python benchmarks/scale_throughput.py --part scaling --prepare-n 1000000 --predict-n 200000 \
        --out benchmarks/results/scale_scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

ENCODERS = {
    "transformer-m-small-qm9": 2000,
    "gps-3dpgt-small-qm9": 2000,
    "gp-molformer-small-moses": 2000,
    "molca-small-pubchem-names": 300,
}


def _moses(subset: str, start: int, n: int) -> list[str]:
    from molfm.data.sources import get_source

    return get_source("moses").load(subset)["smiles"].iloc[start : start + n].tolist()


def _cli(args: list[str]) -> float:
    begin = time.perf_counter()
    done = subprocess.run(["molfm", *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"molfm {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - begin


def rates(work: Path, scale: float) -> list[dict]:
    import pandas as pd
    import torch

    from molfm.scale.batches import EmbedJob, PredictJob
    from molfm.scale.config import EmbedConfig
    from molfm.tasks.config import PredictConfig

    torch.set_num_threads(1)
    rows = []
    jobs = [("predict", "transformer-m-small-qm9", ENCODERS["transformer-m-small-qm9"])]
    jobs += [("embed", model, n) for model, n in ENCODERS.items()]
    for command, model, n in jobs:
        n = max(10, int(n * scale))
        smiles = _moses("test", 0, n)
        data = work / f"rates_{n}.csv"
        pd.DataFrame({"smiles": smiles}).to_csv(data, index=False)
        out = work / f"rates_{command}.{'csv' if command == 'predict' else 'parquet'}"
        options = dict(
            model=model,
            data_path=str(data),
            output=str(out),
            accelerator="cpu",
            on_invalid="skip",
            chunk_size=n,
        )
        if command == "predict":
            job = PredictJob(PredictConfig(**options))
        else:
            job = EmbedJob(EmbedConfig(**options, mode="2d"))
        begin = time.perf_counter()
        fn = job.build()
        load_s = time.perf_counter() - begin
        frame = pd.DataFrame({"smiles": smiles})
        fn(frame.iloc[:8])  # warm-up: first-call allocations
        begin = time.perf_counter()
        table, rejected = fn(frame)
        compute_s = time.perf_counter() - begin
        extra = ["--mode", "2d"] if command == "embed" else []
        wall_s = _cli(
            [
                command,
                "--model",
                model,
                "--data-path",
                str(data),
                "-o",
                str(out),
                "--on-invalid",
                "skip",
                "--chunk-size",
                str(n),
                *extra,
            ]
        )
        row = {
            "command": command,
            "model": model,
            "molecules": n,
            "rejected": len(rejected),
            "load_s": round(load_s, 2),
            "per_core_mol_s_start_excluded": round(n / compute_s, 1),
            "cli_wall_s": round(wall_s, 2),
            "per_core_mol_s_start_included": round(n / wall_s, 1),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def scaling(work: Path, prepare_n: int, predict_n: int) -> list[dict]:
    import pandas as pd

    smiles = _moses("train", 0, prepare_n + predict_n)
    prep = work / f"prepare_{prepare_n}.csv"
    pred = work / f"predict_{predict_n}.csv"
    if not prep.exists():
        pd.DataFrame({"smiles": smiles[:prepare_n]}).to_csv(prep, index=False)
    if not pred.exists():
        pd.DataFrame({"smiles": smiles[prepare_n:]}).to_csv(pred, index=False)
    rows = []
    setups = [("local", 1), ("local", 2), ("ray", 2)]
    for engine, workers in setups:
        cache = work / f"cache_{engine}_{workers}"
        shutil.rmtree(cache, ignore_errors=True)
        seconds = _cli(
            [
                "data",
                "prepare",
                "--data-path",
                str(prep),
                "--cache-dir",
                str(cache),
                "--on-invalid",
                "skip",
                "-j",
                str(workers),
                "--engine",
                engine,
                "--shard-size",
                "10000",
            ]
        )
        rows.append(
            {
                "command": "data prepare",
                "rows": prepare_n,
                "engine": engine,
                "workers": workers,
                "seconds": round(seconds, 1),
                "mol_s": round(prepare_n / seconds, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        shutil.rmtree(cache, ignore_errors=True)
    for engine, workers in setups:
        out = work / f"pred_{engine}_{workers}.parquet"
        seconds = _cli(
            [
                "predict",
                "--data-path",
                str(pred),
                "-o",
                str(out),
                "--on-invalid",
                "skip",
                "--workers",
                str(workers),
                "--engine",
                engine,
                "--chunk-size",
                "10000",
            ]
        )
        rows.append(
            {
                "command": "predict",
                "rows": predict_n,
                "engine": engine,
                "workers": workers,
                "seconds": round(seconds, 1),
                "mol_s": round(predict_n / seconds, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    base = {r["command"]: r["seconds"] for r in rows if r["workers"] == 1}
    for row in rows:
        row["speedup"] = round(base[row["command"]] / row["seconds"], 2)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["rates", "scaling"], required=True)
    parser.add_argument("--scale", type=float, default=1.0, help="rates: fraction of N")
    parser.add_argument("--prepare-n", type=int, default=1_000_000)
    parser.add_argument("--predict-n", type=int, default=200_000)
    parser.add_argument("--workdir", default="runs/scale_throughput")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    begin = time.time()
    if args.part == "rates":
        rows = rates(work, args.scale)
    else:
        rows = scaling(work, args.prepare_n, args.predict_n)
    report = {
        "part": args.part,
        "wall_s": round(time.time() - begin),
        "rows": rows,
        "cpus": os.cpu_count(),
        "load_at_end": os.getloadavg(),
    }
    Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
