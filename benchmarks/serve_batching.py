"""Micro-batching of ``molfm serve``: concurrent one-molecule predict requests vs one at a time.

One run, one or more servers (``molfm serve --models transformer-m-small-qm9``, subprocesses on
127.0.0.1, as shipped and with other environment variables: ``--server-env``), the same ``--n``
distinct MOSES test SMILES (seed 0) sent as one-molecule ``POST /v1/predict`` requests, in
``--rounds`` rounds of, for each server in turn:

1. one at a time (one client, each request waits for the previous answer);
2. ``--clients`` concurrent clients (asyncio tasks sharing one ``httpx.AsyncClient``).

It records molecules/s for both and their ratio, per-request latency p50/p99, the CPU seconds the
server and the client spent per request, how many cores the rest of the machine kept busy
(``/proc/stat``), and the batch sizes the model's worker ran (from the worker's own statistics:
see benchmarks/serve_harness.py). For context: the same molecules as one request (the server
without per-request costs), ``molfm predict`` on 3 molecules (a process per call: wall time,
CPU, peak RSS), the parts of a request measured in this process after the servers stop
(featurization; per molecule at batch 1, at the batch size reached and at 64: pair structures,
collation, forward pass), and with ``--py-spy`` a profile of each server (busy cores per thread
and per part).

Usage::

    python benchmarks/serve_batching.py --n 800 --rounds 3 --out benchmarks/results/serve_batching.json
    python benchmarks/serve_batching.py --quick   # 64 molecules, one round, one CLI call
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # serve_harness, beside this script
from serve_harness import (  # noqa: E402
    Server,
    busy_cores,
    cli_cost,
    cpu_jiffies,
    machine,
    moses_smiles,
    percentiles,
    stats_delta,
)

MODEL = "transformer-m-small-qm9"


async def send_all(url: str, smiles: list[str], clients: int) -> dict[str, Any]:
    """Every SMILES as its own predict request, ``clients`` in flight at a time; wall time,
    per-request latencies, the client's CPU seconds, and whether every answer was ok."""
    queue = list(reversed(smiles))
    latencies: list[float] = []
    failures: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def run() -> None:
            while queue:
                text = queue.pop()
                start = time.perf_counter()
                r = await client.post("/v1/predict", json={"model": MODEL, "smiles": [text]})
                latencies.append(time.perf_counter() - start)
                if r.status_code != 200 or not r.json()["results"][0]["ok"]:
                    failures.append(f"{text}: {r.status_code} {r.text[:200]}")

        cpu, start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(run() for _ in range(clients)))
        wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "latencies": latencies,
        "client_cpu_s": time.process_time() - cpu,
        "failures": failures,
    }


def phase(server: Server, smiles: list[str], clients: int) -> dict[str, Any]:
    before, cpu, jiffies = server.worker_stats(), server.cpu_s(), cpu_jiffies()
    run = asyncio.run(send_all(server.url, smiles, clients))
    server_cpu, machine_busy = server.cpu_s() - cpu, busy_cores(jiffies, cpu_jiffies())
    batches = stats_delta(before, server.worker_stats(), MODEL)
    if run["failures"]:
        raise SystemExit(f"{len(run['failures'])} requests failed: {run['failures'][:3]}")
    n, wall = len(smiles), run["wall_s"]
    return {
        "clients": clients,
        "requests": n,
        "wall_s": wall,
        "mol_per_s": n / wall,
        **percentiles(run["latencies"]),
        "server_cpu_ms_per_request": 1000 * server_cpu / n,
        "client_cpu_ms_per_request": 1000 * run["client_cpu_s"] / n,
        "server_busy_cores": server_cpu / wall,
        "client_busy_cores": run["client_cpu_s"] / wall,
        # every process of the machine: what is neither the server nor this client is others'
        "machine_busy_cores": machine_busy,
        "others_busy_cores": max(0.0, machine_busy - (server_cpu + run["client_cpu_s"]) / wall),
        "batches": batches,
    }


def one_request(server: Server, smiles: list[str]) -> dict[str, Any]:
    """All molecules in requests of up to 1,000 (the limit): the server without per-request
    HTTP and scheduling costs."""
    start = time.perf_counter()
    with httpx.Client(base_url=server.url, timeout=300) as client:
        for i in range(0, len(smiles), 1000):
            body = {"model": MODEL, "smiles": smiles[i : i + 1000]}
            r = client.post("/v1/predict", json=body)
            r.raise_for_status()
    wall = time.perf_counter() - start
    return {"requests": -(-len(smiles) // 1000), "wall_s": wall, "mol_per_s": len(smiles) / wall}


def breakdown(smiles: list[str], batch: int, repeats: int = 3) -> dict[str, Any]:
    """The parts of a predict request, in this process (the servers stopped): featurization and
    the domain check per molecule (what the server runs in a thread), and per molecule at batch
    1, at ``batch`` and at 64, with the default server's torch threads and with 1, the parts of
    ``predict_graphs`` (what the model's worker runs): the pair structure of each molecule
    (shortest paths), the collation into one padded batch, and the model's forward pass."""
    import torch

    from molfm.data.dense import DenseGraphDataset, collate_dense
    from molfm.tasks.predict import domain_reason, featurize_smiles, load_property_model

    model = load_property_model(MODEL).eval()
    start = time.perf_counter()
    graphs = [featurize_smiles([s])[0][0][2] for s in smiles]
    featurize_s = (time.perf_counter() - start) / len(smiles)
    start = time.perf_counter()
    for g in graphs:
        domain_reason(model, g)
    domain_s = (time.perf_counter() - start) / len(smiles)
    pairs = getattr(type(model.encoder), "pair_structure", None)

    @torch.no_grad()
    def per_molecule(size: int) -> dict[str, float]:
        """predict_graphs' steps at ``size``, ms per molecule (best of ``repeats``)."""
        best = {"pairs": np.inf, "collate": np.inf, "model": np.inf}
        for _ in range(repeats):
            took = dict.fromkeys(best, 0.0)
            for i in range(0, len(graphs), size):
                t0 = time.perf_counter()
                dataset = DenseGraphDataset(graphs[i : i + size], pair_structure=pairs)
                items = [dataset[j] for j in range(len(dataset))]
                t1 = time.perf_counter()
                batch = collate_dense(items)
                t2 = time.perf_counter()
                model.predict(batch).float().numpy()
                t3 = time.perf_counter()
                took["pairs"] += t1 - t0
                took["collate"] += t2 - t1
                took["model"] += t3 - t2
            best = {k: min(best[k], 1000 * v / len(graphs)) for k, v in took.items()}
        return best | {"total": sum(best.values())}

    sizes = sorted({1, max(1, batch), 64})
    per_molecule(8)  # warm-up: first calls allocate
    threads = torch.get_num_threads()
    forward = {}
    for n in sorted({threads, 1}, reverse=True):
        torch.set_num_threads(n)
        forward[str(n)] = {str(b): per_molecule(b) for b in sizes}
    torch.set_num_threads(threads)
    return {
        "molecules": len(graphs),
        "featurize_ms_per_molecule": 1000 * featurize_s,
        "domain_check_ms_per_molecule": 1000 * domain_s,
        "predict_graphs_ms_per_molecule_by_threads_then_batch": forward,
    }


IDLE = ("EpollSelector.select", "concurrent/futures/thread.py:81", "Condition.wait", "Event.wait")
PROFILE_PARTS = [  # a sample counts for the first part one of its frames matches, leaf first
    ("forward pass (torch, collate)", ("torch/", "molfm/nn/", "molfm/systems/", "predict_graphs")),
    ("featurization (RDKit, graphs)", ("molfm/chem/", "featurize_smiles")),
    ("HTTP (h11, uvicorn)", ("h11/", "uvicorn/protocols")),
    ("validation and JSON (pydantic, json)", ("pydantic", "json/", "fastapi/encoders")),
    ("framework (starlette, fastapi, Guard)", ("starlette/", "fastapi/", "molfm/serve/app.py")),
    ("serve routes, models, workers", ("molfm/serve/",)),
    ("asyncio, threads, futures", ("asyncio/", "threading.py", "concurrent/")),
]


def profile(server: Server, smiles: list[str], clients: int, py_spy: str) -> dict[str, Any]:
    """Where the server's time goes while it answers ``smiles`` (``clients`` at a time): py-spy
    samples of every thread at 250 Hz, idle waits left out, as busy cores per thread and per
    part (the share of the wall time a thread, or a part, was running)."""
    rate = 250
    with tempfile.NamedTemporaryFile(suffix=".txt") as out:
        cmd = [py_spy, "record", "--pid", str(server.proc.pid), "--threads", "--nonblocking"]
        cmd += ["--format", "raw", "--rate", str(rate), "--output", out.name]
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attached
        run = asyncio.run(send_all(server.url, smiles, clients))
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
        lines = Path(out.name).read_text().splitlines()
    threads: dict[str, float] = {}
    parts: dict[str, float] = {}
    for line in lines:
        stack, count = line.rsplit(" ", 1)
        head, *frames = stack.split(";")
        if not frames or any(idle in frames[-1] for idle in IDLE):
            continue
        name = re.sub(r"_\d+$", "_N", head.split(": ", 1)[-1])  # executor threads together
        part = next(
            (p for f in reversed(frames) for p, keys in PROFILE_PARTS if any(k in f for k in keys)),
            "other",
        )
        busy = int(count) / rate / run["wall_s"]  # seconds sampled per second of the run
        threads[name] = threads.get(name, 0.0) + busy
        parts[part] = parts.get(part, 0.0) + busy
    return {
        "clients": clients,
        "mol_per_s": len(smiles) / run["wall_s"],
        "busy_cores_by_thread": dict(sorted(threads.items(), key=lambda kv: -kv[1])),
        "busy_cores_by_part": dict(sorted(parts.items(), key=lambda kv: -kv[1])),
        "note": "sampling started 1 s before the requests: busy cores are slightly overstated",
    }


def measure(
    servers: dict[str, Server],
    smiles: list[str],
    clients: int,
    rounds: int,
    py_spy: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Warm each server up, then ``rounds`` rounds of: for each server, one at a time, then
    concurrently (interleaved, so that every server sees the same background load)."""
    warm = smiles[: min(64, len(smiles))]
    for server in servers.values():
        asyncio.run(send_all(server.url, warm, 1))
        asyncio.run(send_all(server.url, warm, clients))
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    for r in range(rounds):
        for name, server in servers.items():
            sequential = phase(server, smiles, 1)
            concurrent = phase(server, smiles, clients)
            ratio = concurrent["mol_per_s"] / sequential["mol_per_s"]
            out[name].append({"sequential": sequential, "concurrent": concurrent, "ratio": ratio})
            print(
                f"round {r}, {name}: one at a time {sequential['mol_per_s']:.1f} mol/s, "
                f"{clients} clients {concurrent['mol_per_s']:.1f} mol/s: {ratio:.2f}x; mean "
                f"batch {concurrent['batches']['mean_batch_size']:.1f}; others busy "
                f"{sequential['others_busy_cores']:.2f}/{concurrent['others_busy_cores']:.2f}",
                flush=True,
            )

    def median(runs: list[dict[str, Any]], *keys: str) -> float:
        values = []
        for run in runs:
            for key in keys[:-1]:
                run = run[key]
            values.append(run[keys[-1]])
        return float(np.median(values))

    profiles: dict[str, dict[str, Any]] = {}
    for name, server in servers.items() if py_spy else ():
        profiles[name] = {
            "one_at_a_time": profile(server, smiles, 1, py_spy),
            "concurrent": profile(server, smiles, clients, py_spy),
        }
        print(f"profile, {name}: {json.dumps(profiles[name])}", flush=True)
    return {
        name: {
            "profile": profiles.get(name),
            "rounds": runs,
            "median_ratio": median(runs, "ratio"),
            "median_sequential_mol_per_s": median(runs, "sequential", "mol_per_s"),
            "median_concurrent_mol_per_s": median(runs, "concurrent", "mol_per_s"),
            "median_sequential_p50_ms": median(runs, "sequential", "p50_ms"),
            "median_sequential_p99_ms": median(runs, "sequential", "p99_ms"),
            "median_concurrent_p50_ms": median(runs, "concurrent", "p50_ms"),
            "median_concurrent_p99_ms": median(runs, "concurrent", "p99_ms"),
            "one_request_all_molecules": one_request(servers[name], smiles),
        }
        for name, runs in out.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=800, help="molecules (one request each)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="sequential + concurrent rounds")
    parser.add_argument("--cli-repeats", type=int, default=3, help="0: no CLI baseline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--server-env",
        action="append",
        help="one server to measure, with these environment variables ('KEY=VALUE ...'; '' "
        "for molfm serve as shipped); repeat for several, run one after the other (default: "
        "'' and 'OMP_NUM_THREADS=1')",
    )
    parser.add_argument("--serve-args", default="", help="more molfm serve flags (quoted)")
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument(
        "--py-spy",
        help="the py-spy executable: after the rounds, profile each server once more, one at "
        "a time and concurrently (py-spy is not a molfm dependency: pip install py-spy)",
    )
    parser.add_argument("--quick", action="store_true", help="--n 64 --rounds 1 --cli-repeats 1")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serve_batching.json"))
    args = parser.parse_args()
    if args.quick:
        args.n, args.rounds, args.cli_repeats = 64, 1, 1

    smiles = moses_smiles(args.n, args.seed)
    results: dict[str, Any] = {
        "machine": machine(),
        "molecules": f"{args.n} distinct MOSES test SMILES (seed {args.seed}), one per request",
        "model": MODEL,
        "clients": args.clients,
    }
    # Before the servers start, so that they do not compete for the cores.
    if args.cli_repeats:
        cli = cli_cost(smiles[:3], MODEL, args.cli_repeats)
        results["cli_predict_3_molecules"] = cli
        print(json.dumps({k: v for k, v in cli.items() if k != "runs"}))

    servers: dict[str, Server] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for i, variant in enumerate(args.server_env or ["", "OMP_NUM_THREADS=1"]):
                env = dict(item.split("=", 1) for item in variant.split())
                serve_args = ["--models", MODEL, *args.serve_args.split()]
                servers[variant or "as shipped"] = Server(serve_args, Path(tmp) / f"{i}.log", env)
            results["servers"] = {
                name: {
                    "env": server.env,
                    "command": f"{' '.join(f'{k}={v}' for k, v in server.env.items())} "
                    f"{server.command}".strip(),
                    "ready_s": server.ready_s,
                }
                for name, server in servers.items()
            }
            runs = measure(servers, smiles, args.clients, args.rounds, args.py_spy)
            for name, run in runs.items():
                results["servers"][name] |= run
        finally:
            for name, server in servers.items():
                code = server.stop()
                results.setdefault("servers", {}).setdefault(name, {})["exit_code"] = code
                results["servers"][name]["stopped_by"] = server.stopped_by
                results["servers"][name]["log_tail"] = server.tail(600)
    for name, run in results["servers"].items():
        one = run["one_request_all_molecules"]["mol_per_s"]
        print(f"{name}: median {run['median_ratio']:.2f}x; one request {one:.0f} mol/s")
    if not args.no_breakdown:
        batches = [
            r["concurrent"]["batches"]["mean_batch_size"]
            for run in results["servers"].values()
            for r in run["rounds"]
        ]
        results["breakdown"] = breakdown(smiles[: min(200, len(smiles))], round(np.median(batches)))
        print(json.dumps(results["breakdown"]))
    results["machine"]["load_average_1m_at_end"] = machine()["load_average_1m"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
