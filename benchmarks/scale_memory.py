"""Peak memory of streamed `molfm predict` / `molfm embed` as the input grows (10k, 100k, 1M
MOSES train SMILES), each run a fresh CLI process; RSS of the whole process tree sampled
every 0.2 s from /proc.

    python benchmarks/scale_memory.py --sizes 10000 100000 1000000 --commands predict \
        --workers 2 --out benchmarks/results/scale_memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except OSError:
                continue
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/statm") as handle:
                total += int(handle.read().split()[1]) * PAGE
        except OSError:
            pass
        stack.extend(children.get(current, []))
    return total


def measure(command: list[str]) -> dict:
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss(process.pid))
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    if process.returncode:
        sys.exit(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(peak / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--commands", nargs="+", default=["predict", "embed"])
    parser.add_argument("--embed-max", type=int, default=100_000, help="largest size for embed")
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--workdir", default="runs/scale_memory")
    parser.add_argument("--out", default="benchmarks/results/scale_memory.json")
    args = parser.parse_args()
    from molfm.data.sources import get_source

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    smiles = get_source("moses").load("train")["smiles"]
    results = []
    for size in args.sizes:
        data = work / f"moses_{size}.csv"
        if not data.exists():
            smiles.iloc[:size].to_frame("smiles").to_csv(data, index=False)
        for command in args.commands:
            if command == "embed" and size > args.embed_max:
                continue
            out = work / f"{command}_{size}.parquet"
            row = {
                "command": command,
                "rows": size,
                "chunk_size": args.chunk_size,
                "workers": args.workers,
            }
            row |= measure(
                [
                    "molfm",
                    command,
                    "--data-path",
                    str(data),
                    "-o",
                    str(out),
                    "--chunk-size",
                    str(args.chunk_size),
                    "--on-invalid",
                    "skip",
                ]
            )
            row["molecules_per_s"] = round(size / row["seconds"])
            print(json.dumps(row), flush=True)
            results.append(row)
            Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
