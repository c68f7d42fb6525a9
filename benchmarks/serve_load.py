"""A bounded load and fault test of ``molfm serve``: thousands of predict requests, valid or not.

A real server (``molfm serve --models transformer-m-small-qm9``, a subprocess on 127.0.0.1),
three parts:

1. probe: one request of ``--timeout-molecules`` MOSES SMILES with ``"conformers": true`` on the
   quiet server (``--timeout-s 2``): it answers 504, and the server's CPU says how long the
   work it started kept running after that answer (so the request really needed more than 2 s);
2. load: ``--requests`` requests from ``--clients`` concurrent clients (asyncio, one
   ``httpx.AsyncClient``), a shuffled mix of kinds: valid molecules, some unreadable SMILES,
   bodies over ``--max-body-bytes`` (with Content-Length, and chunked without it), malformed
   JSON, one molecule more than the limit, a SMILES over the length limit, an unknown model id,
   and ``--timeout-requests`` requests like the probe's; then it waits until the server is idle
   again (the work of the timed-out requests done);
3. queue: a second server with ``--queue-depth 16``: ``--queue-requests`` requests of 4
   molecules from the same clients (429 with ``Retry-After`` when the queue is full) and some of
   17 molecules, more than the queue holds (422).

Checked (the script exits 1 when one fails): every request is answered (no connection error);
each kind gets only its designed status codes (no 5xx but the designed 504, 429 only in part
3); every error has the ``{"error": {"type", "message", "code"}}`` shape and every 429 a
``Retry-After``; unreadable SMILES come back as per-item ``invalid_smiles``; every valid
molecule's values equal ``molfm predict``'s on the same SMILES (one CLI call, float64 from its
CSV) to float32 rounding, ``|a - b| <= 8 * 2**-23 * max(1, |b|)`` (a molecule batched with other
requests' molecules is padded to another shape, which changes the summation order; the counts of
bit-identical values are recorded too); the server's
RSS, sampled every 0.5 s, stays under ``--max-rss-mb``; the server is ready after each part and
exits 0 on Ctrl+C. It records status counts and latency p50/p99 per kind, and the RSS start,
peak and end.

Usage::

    python benchmarks/serve_load.py --requests 3000 --out benchmarks/results/serve_load.json
    python benchmarks/serve_load.py --quick   # 300 requests, 200-molecule timeout requests
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # serve_harness, beside this script
from serve_harness import (  # noqa: E402
    Sampler,
    Server,
    cli_predictions,
    machine,
    moses_smiles,
    percentiles,
)

MODEL = "transformer-m-small-qm9"
TIMEOUT_S = 2.0
MAX_BODY = 131_072
MAX_ITEMS = 1000
MAX_LENGTH = 500
QUEUE_DEPTH = 16
# float32 rounding at the outputs' scale: 8 steps of a float32 near 1 (the values are sums of
# terms of order 1, so a value near 0 carries the absolute error of its terms, not its own ulp)
TOLERANCE = 8 * 2.0**-23
INVALID = ["C1CC", "xyz", "C(C", "c1ccccc", "CC(=O", "[Xx]C", "C%%C", "Cl(Cl)(Cl)(Cl)(Cl)Cl", ""]
MIX = {  # the share of each kind among the load's requests (timeout requests come on top)
    "valid": 0.70,
    "invalid_smiles": 0.10,
    "oversized_body": 0.02,
    "oversized_chunked": 0.01,
    "malformed_json": 0.05,
    "too_many_items": 0.04,
    "smiles_too_long": 0.03,
    "unknown_model": 0.05,
}
EXPECTED = {  # the designed answers; 504 is a designed answer to any request that runs late
    "valid": {200, 504},
    "invalid_smiles": {200, 504},
    "oversized_body": {413},
    "oversized_chunked": {413},
    "malformed_json": {400, 422},
    "too_many_items": {422},
    "smiles_too_long": {422},
    "unknown_model": {422},
    "timeout": {504},
    "queue_valid": {200, 429},
    "over_queue_depth": {422},
}


def body(smiles: list[str], **fields: Any) -> bytes:
    return json.dumps({"model": MODEL, "smiles": smiles, **fields}).encode()


def make_request(kind: str, rng: random.Random, pool: list[str], slow: list[str]) -> dict:
    """One request of ``kind``: ``{"kind", "content", "smiles" (what to check)}``."""
    if kind in ("valid", "queue_valid"):
        smiles = rng.sample(pool, 4 if kind == "queue_valid" else rng.randint(1, 4))
        return {"kind": kind, "content": body(smiles), "smiles": smiles}
    if kind == "invalid_smiles":
        smiles = rng.sample(pool, rng.randint(0, 3)) + rng.sample(INVALID, rng.randint(1, 2))
        rng.shuffle(smiles)
        return {"kind": kind, "content": body(smiles), "smiles": smiles}
    if kind in ("oversized_body", "oversized_chunked"):
        content = body(pool * (MAX_BODY // sum(len(s) + 4 for s in pool) + 2))
        assert len(content) > MAX_BODY
        return {"kind": kind, "content": content, "chunked": kind == "oversized_chunked"}
    if kind == "malformed_json":
        content = body(rng.sample(pool, 2))
        return {"kind": kind, "content": content[: rng.randint(1, len(content) - 1)]}
    if kind == "too_many_items":
        return {"kind": kind, "content": body(["C"] * (MAX_ITEMS + 1))}
    if kind == "smiles_too_long":
        return {"kind": kind, "content": body([pool[0], "C" * (MAX_LENGTH + 1)])}
    if kind == "unknown_model":
        content = json.dumps({"model": "no-such-model", "smiles": rng.sample(pool, 2)}).encode()
        return {"kind": kind, "content": content}
    if kind == "timeout":
        return {"kind": kind, "content": body(slow, conformers=True)}
    if kind == "over_queue_depth":
        return {"kind": kind, "content": body(rng.sample(pool, QUEUE_DEPTH + 1))}
    raise ValueError(kind)


def schedule(n: int, timeouts: int, rng: random.Random, pool: list[str], slow: list[str]):
    """``n`` requests of the mixed kinds, shuffled, plus ``timeouts`` spread evenly."""
    kinds = [k for k, share in MIX.items() for _ in range(round(share * n))]
    kinds += ["valid"] * (n - len(kinds))
    rng.shuffle(kinds)
    for i in range(timeouts):
        kinds.insert((i + 1) * len(kinds) // (timeouts + 1), "timeout")
    return [make_request(k, rng, pool, slow) for k in kinds]


async def chunks(content: bytes, size: int = 16_384):
    for i in range(0, len(content), size):
        yield content[i : i + size]


async def send_all(url: str, requests: list[dict], clients: int) -> list[dict]:
    """Send every request, ``clients`` in flight at a time; each request gets its answer
    (status, JSON body, Retry-After, seconds) or the transport error."""
    pending = list(reversed(range(len(requests))))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Content-Type": "application/json"}

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def run() -> None:
            while pending:
                req = requests[pending.pop()]
                content = chunks(req["content"]) if req.get("chunked") else req["content"]
                start = time.perf_counter()
                try:
                    r = await client.post("/v1/predict", content=content, headers=headers)
                except httpx.TransportError as err:
                    req["error"] = f"{type(err).__name__}: {err}"
                    req["seconds"] = time.perf_counter() - start
                    continue
                req["seconds"] = time.perf_counter() - start
                req["status"] = r.status_code
                req["retry_after"] = r.headers.get("retry-after")
                try:
                    req["answer"] = r.json()
                except ValueError:
                    req["answer"] = r.text[:300]

        await asyncio.gather(*(run() for _ in range(clients)))
    return requests


def compare(requests: list[dict], reference: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Every 200 answer against the CLI's values; unreadable SMILES as per-item errors."""
    problems: list[str] = []
    values, exact, f32_equal, max_ulps, max_abs = 0, 0, 0, 0, 0.0
    for req in requests:
        if req.get("status") != 200 or "smiles" not in req:
            continue
        results = req["answer"]["results"]
        if [r["smiles"] for r in results] != req["smiles"]:
            problems.append(f"{req['kind']}: results not in input order")
            continue
        for item in results:
            text = item["smiles"]
            if text not in reference:  # an unreadable SMILES
                if item["ok"] or item["error"]["type"] != "invalid_smiles":
                    problems.append(f"{text!r}: expected invalid_smiles, got {item}")
                continue
            if not item["ok"]:
                problems.append(f"{text}: {item['error']}")
                continue
            for target, want in reference[text].items():
                got = item["predictions"][target]
                values += 1
                exact += int(got == want)
                a, b = np.float32(got), np.float32(want)
                f32_equal += int(a == b)
                ulps = abs(int(a.view(np.int32)) - int(b.view(np.int32)))
                max_ulps, max_abs = max(max_ulps, ulps), max(max_abs, float(abs(got - want)))
                if abs(got - want) > TOLERANCE * max(1.0, abs(want)):
                    problems.append(f"{text} {target}: {got} vs molfm predict {want}")
    return {
        "values_compared": values,
        "exactly_equal": exact,
        "float32_equal": f32_equal,
        "max_float32_steps_apart": max_ulps,
        "max_abs_difference": max_abs,
        "problems": problems[:20],
        "n_problems": len(problems),
    }


def summarize(requests: list[dict], wall: float) -> dict[str, Any]:
    counts: dict[str, Counter] = defaultdict(Counter)
    seconds: dict[str, list[float]] = defaultdict(list)
    for req in requests:
        counts[req["kind"]][str(req.get("status", "no answer"))] += 1
        seconds[req["kind"]].append(req["seconds"])
    every = [req["seconds"] for req in requests]
    return {
        "requests": len(requests),
        "wall_s": wall,
        "requests_per_s": len(requests) / wall,
        "status_counts": {k: dict(sorted(c.items())) for k, c in counts.items()},
        "latency_all": percentiles(every),
        "latency_by_kind": {k: percentiles(v) for k, v in seconds.items()},
    }


def check_answers(requests: list[dict]) -> list[str]:
    """Transport errors, statuses outside each kind's designed set, error shapes, Retry-After."""
    problems = []
    for req in requests:
        kind, status = req["kind"], req.get("status")
        if status is None:
            problems.append(f"{kind}: no answer ({req['error']})")
            continue
        if status not in EXPECTED[kind]:
            problems.append(f"{kind}: {status} {str(req['answer'])[:200]}")
        if status != 200:
            error = req["answer"].get("error") if isinstance(req["answer"], dict) else None
            if not error or error.get("code") != status or not error.get("message"):
                problems.append(f"{kind}: {status} without the error shape: {req['answer']}")
        if status == 429 and not (req["retry_after"] or "").isdigit():
            problems.append(f"429 without a Retry-After in seconds: {req['retry_after']!r}")
    return problems


def wait_idle(server: Server, limit_s: float, window_s: float = 1.0) -> float:
    """Seconds until the server (with its conformer workers) uses under 5% of a core over
    ``window_s`` (at most ``limit_s``)."""
    start = time.perf_counter()
    cpu = server.cpu_s()
    while time.perf_counter() - start < limit_s:
        time.sleep(window_s)
        now = server.cpu_s()
        if now - cpu < 0.05 * window_s:
            return time.perf_counter() - start - window_s
        cpu = now
    return float("inf")


def ready(server: Server) -> bool:
    return httpx.get(f"{server.url}/v1/health/ready", timeout=30).status_code == 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--timeout-requests", type=int, default=3)
    parser.add_argument("--timeout-molecules", type=int, default=1000)
    parser.add_argument("--queue-requests", type=int, default=600)
    parser.add_argument("--pool", type=int, default=400, help="distinct valid SMILES used")
    parser.add_argument("--max-rss-mb", type=float, default=3000)
    parser.add_argument("--idle-limit-s", type=float, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="300 requests, 1 timeout of 200")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serve_load.json"))
    args = parser.parse_args()
    if args.quick:
        args.requests, args.timeout_requests, args.timeout_molecules = 300, 1, 200
        args.queue_requests, args.pool = 100, 100

    rng = random.Random(args.seed)
    mixed = moses_smiles(args.pool + args.timeout_molecules, args.seed)
    pool, slow = mixed[: args.pool], mixed[args.pool :]
    results: dict[str, Any] = {
        "machine": machine(),
        "model": MODEL,
        "molecules": f"{args.pool} distinct MOSES test SMILES (seed {args.seed}) for the valid "
        f"molecules; {args.timeout_molecules} others with conformers for the timeout requests",
        "clients": args.clients,
    }
    checks: dict[str, bool] = {}

    start = time.perf_counter()
    reference = cli_predictions(pool, MODEL)
    results["reference"] = {
        "command": f"molfm predict --model {MODEL} --data-path pool.csv -o pool_predictions.csv",
        "molecules": len(reference),
        "seconds": time.perf_counter() - start,
    }
    checks["molfm predict read every pool molecule"] = len(reference) == len(pool)

    with tempfile.TemporaryDirectory() as tmp:
        limits = ["--timeout-s", str(TIMEOUT_S), "--max-body-bytes", str(MAX_BODY)]
        # conformer requests past the default 64 molecules, so that they outlast --timeout-s
        limits += ["--max-conformer-items", str(max(64, args.timeout_molecules))]
        server = Server(["--models", MODEL, *limits], Path(tmp) / "load.log")
        try:
            results["load_server"] = {"command": server.command, "ready_s": server.ready_s}
            # 1. probe
            probe = [make_request("timeout", rng, pool, slow)]
            cpu = server.cpu_s()
            asyncio.run(send_all(server.url, probe, 1))
            idle = wait_idle(server, args.idle_limit_s)
            results["probe"] = {
                "molecules": len(slow),
                "status": probe[0].get("status"),
                "answered_after_s": probe[0]["seconds"],
                "server_kept_working_after_answer_s": idle,
                "server_cpu_s": server.cpu_s() - cpu,
                "note": "wall time from the 504 until the server's CPU (its conformer worker "
                "included) fell idle",
            }
            print(json.dumps(results["probe"]), flush=True)
            checks["probe: 504 after about --timeout-s"] = (
                probe[0].get("status") == 504 and TIMEOUT_S <= probe[0]["seconds"] < TIMEOUT_S + 1
            )
            checks["probe: the request needed more than --timeout-s"] = (
                probe[0]["seconds"] + idle > 2 * TIMEOUT_S
            )
            # 2. load
            requests = schedule(args.requests, args.timeout_requests, rng, pool, slow)
            with Sampler(server) as rss:
                t0, cpu = time.perf_counter(), server.cpu_s()
                asyncio.run(send_all(server.url, requests, args.clients))
                wall = time.perf_counter() - t0
                load_cpu = server.cpu_s() - cpu
                drain = wait_idle(server, args.idle_limit_s)
            load = summarize(requests, wall)
            load["server_cpu_s_during_load"] = load_cpu
            load["server_busy_after_last_answer_s"] = drain
            load["rss"] = rss.summary()
            load["answers_vs_molfm_predict"] = compare(requests, reference)
            problems = check_answers(requests)
            load["problems"], load["n_problems"] = problems[:30], len(problems)
            results["load"] = load
            checks["load: every request answered with a designed status"] = not problems
            checks["load: valid values equal molfm predict's (float32)"] = (
                load["answers_vs_molfm_predict"]["n_problems"] == 0
            )
            checks["load: every timeout request answered 504"] = (
                load["status_counts"].get("timeout", {}) == {"504": args.timeout_requests}
                or args.timeout_requests == 0
            )
            checks["load: peak RSS under --max-rss-mb"] = rss.peak_own < args.max_rss_mb
            checks["load: the server went idle after the load"] = drain != float("inf")
            checks["load: ready afterwards"] = ready(server)
            print(
                json.dumps({k: load[k] for k in ("wall_s", "requests_per_s", "status_counts")}),
                flush=True,
            )
        finally:
            results["load_server"]["exit_code"] = server.stop()
            results["load_server"]["stopped_by"] = server.stopped_by
            results["load_server"]["log_tail"] = server.tail(800)
        stopped = results["load_server"]["stopped_by"], results["load_server"]["exit_code"]
        checks["load: Ctrl+C (SIGINT) stops it, exit 0"] = stopped == ("SIGINT", 0)

        # 3. queue
        server = Server(["--models", MODEL, "--queue-depth", str(QUEUE_DEPTH)], Path(tmp) / "q.log")
        try:
            results["queue_server"] = {"command": server.command, "ready_s": server.ready_s}
            kinds = ["queue_valid"] * args.queue_requests + ["over_queue_depth"] * max(
                1, args.queue_requests // 20
            )
            rng.shuffle(kinds)
            requests = [make_request(k, rng, pool, slow) for k in kinds]
            t0 = time.perf_counter()
            asyncio.run(send_all(server.url, requests, args.clients))
            queue = summarize(requests, time.perf_counter() - t0)
            retry = Counter(r["retry_after"] for r in requests if r.get("status") == 429)
            queue["retry_after_counts"] = dict(retry)
            queue["answers_vs_molfm_predict"] = compare(requests, reference)
            problems = check_answers(requests)
            queue["problems"], queue["n_problems"] = problems[:30], len(problems)
            results["queue"] = queue
            checks["queue: every request answered with a designed status"] = not problems
            checks["queue: some requests answered 429"] = sum(retry.values()) > 0
            checks["queue: some requests answered 200"] = "200" in queue["status_counts"].get(
                "queue_valid", {}
            )
            checks["queue: valid values equal molfm predict's (float32)"] = (
                queue["answers_vs_molfm_predict"]["n_problems"] == 0
            )
            checks["queue: ready afterwards"] = ready(server)
            print(json.dumps({k: queue[k] for k in ("status_counts", "retry_after_counts")}))
        finally:
            results["queue_server"]["exit_code"] = server.stop()
            results["queue_server"]["stopped_by"] = server.stopped_by
            results["queue_server"]["log_tail"] = server.tail(800)
        stopped = results["queue_server"]["stopped_by"], results["queue_server"]["exit_code"]
        checks["queue: Ctrl+C (SIGINT) stops it, exit 0"] = stopped == ("SIGINT", 0)

    results["machine"]["load_average_1m_at_end"] = machine()["load_average_1m"]
    results["checks"] = checks
    results["passed"] = all(checks.values())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    print(f"-> {args.out}")
    if not results["passed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
