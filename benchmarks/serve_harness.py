"""What benchmarks/serve_batching.py and benchmarks/serve_load.py share: a real ``molfm serve``
in a subprocess on 127.0.0.1, its memory and CPU, the model's batch sizes, latency percentiles.

The server runs molfm's own CLI (``molfm serve ...``, the console script's ``app``) in a Python
process that adds one thing: on SIGUSR1 it writes every model worker's statistics (batches run,
items, recent batch sizes: :class:`molfm.serve.workers.WorkerStats`) to a JSON file, since the
server publishes no metrics endpoint. Nothing else is patched, and nothing runs per request.

Run as a script, ``python benchmarks/serve_harness.py serve [molfm serve flags]`` is that server.
"""

from __future__ import annotations

import gc
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

STATS_ENV = "MOLFM_BENCH_STATS"
READY_TIMEOUT_S = 180.0


def moses_smiles(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct MOSES test SMILES drawn with ``seed`` (as benchmarks/featurize.py)."""
    from molfm.data.sources import get_source

    moses = get_source("moses").load("test")["smiles"].tolist()
    rng = np.random.default_rng(seed)
    return [moses[i] for i in rng.choice(len(moses), n, replace=False)]


def percentiles(seconds: list[float]) -> dict[str, float | None]:
    """p50/p99/max in milliseconds."""
    if not seconds:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    a = np.asarray(seconds) * 1000
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(a.max()),
    }


def machine() -> dict[str, Any]:
    import platform

    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_1m": os.getloadavg()[0],
        "code": code_state(),
    }


def code_state() -> dict[str, Any]:
    """The commit the server ran from, and molfm's files that differ from it (the server runs
    the working tree)."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return out.stdout.strip()

    changed = git("status", "--porcelain", "--", "molfm").splitlines()
    return {"commit": git("rev-parse", "--short", "HEAD"), "molfm_uncommitted": changed}


def cpu_jiffies() -> tuple[int, int]:
    """Busy and total CPU time of the whole machine (``/proc/stat``, every process, ours or
    not), in clock ticks."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def busy_cores(before: tuple[int, int], after: tuple[int, int]) -> float:
    """How many cores the machine kept busy between two :func:`cpu_jiffies` (all processes)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = (after[1] - before[1]) / ticks / (os.cpu_count() or 1)  # wall seconds
    return (after[0] - before[0]) / ticks / total if total > 0 else 0.0


def cli_cost(smiles: list[str], model: str, repeats: int, smiles_column: str = "smiles") -> dict:
    """``molfm predict`` on ``smiles`` (a fresh process per call): wall seconds, CPU seconds and
    peak RSS of each call, measured by a small parent whose only child is the CLI."""
    probe = (
        "import json, resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "wall = time.perf_counter() - t\n"
        "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'rc': rc, 'wall_s': wall, 'cpu_s': r.ru_utime + r.ru_stime,\n"
        "                  'peak_rss_mb': r.ru_maxrss / 1024}))\n"
    )
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "in.csv"
        data.write_text(f"{smiles_column}\n" + "\n".join(smiles) + "\n")
        for i in range(repeats):
            cmd = [sys.executable, "-c", probe, molfm_exe(), "predict", "--model", model]
            cmd += ["--data-path", str(data), "-o", str(Path(tmp) / f"out{i}.csv")]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            run = json.loads(out.stdout.strip().splitlines()[-1])
            if run["rc"] != 0:
                raise RuntimeError(f"molfm predict failed: {out.stderr[-500:]}")
            runs.append(run)
    return {
        "command": f"molfm predict --model {model} --data-path in.csv -o out.csv",
        "n_molecules": len(smiles),
        "runs": runs,
        "median_wall_s": float(np.median([r["wall_s"] for r in runs])),
        "median_cpu_s": float(np.median([r["cpu_s"] for r in runs])),
        "median_peak_rss_mb": float(np.median([r["peak_rss_mb"] for r in runs])),
    }


def molfm_exe() -> str:
    """The ``molfm`` console script of this interpreter's environment."""
    exe = Path(sys.executable).with_name("molfm")
    return str(exe) if exe.exists() else "molfm"


def cli_predictions(smiles: list[str], model: str) -> dict[str, dict[str, float]]:
    """``molfm predict``'s values (the CSV, read back as float64) for each SMILES."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "in.csv", Path(tmp) / "out.csv"
        data.write_text("smiles\n" + "\n".join(smiles) + "\n")
        cmd = [molfm_exe(), "predict", "--model", model, "--data-path", str(data), "-o", str(out)]
        subprocess.run(cmd, check=True, capture_output=True)
        frame = pd.read_csv(out, keep_default_na=False)
    targets = [c for c in frame.columns if c not in ("row", "smiles", "used_3d", "out_of_domain")]
    targets = [c for c in targets if c != "domain_reason"]
    return {row["smiles"]: {t: float(row[t]) for t in targets} for _, row in frame.iterrows()}


class Server:
    """``molfm serve --host 127.0.0.1 --port 0 ARGS`` in a subprocess, until :meth:`stop`.

    Parameters
    ----------
    args
        More ``molfm serve`` flags (models, limits).
    log
        Where its stdout and stderr go (a file: a pipe nobody reads would fill up and block).
    env
        More environment variables (``OMP_NUM_THREADS``).
    """

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.stats_file = log.with_suffix(".stats.json")
        self.env = dict(env or {})
        env = dict(os.environ, **self.env, **{STATS_ENV: str(self.stats_file)})
        cmd = [sys.executable, __file__, "serve", "--host", "127.0.0.1", "--port", "0", *args]
        self.command = "molfm serve --host 127.0.0.1 --port 0 " + " ".join(args)
        self._log = open(log, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.ps = psutil.Process(self.proc.pid)
        self.started = time.perf_counter()
        self.port = self._wait_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready()
        self.ready_s = time.perf_counter() - self.started
        self._seq = 0

    def _wait_port(self) -> int:
        end = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}): {self.tail()}")
            found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", self.log.read_text())
            if found:
                return int(found.group(1))
            time.sleep(0.2)
        raise RuntimeError(f"the server did not start listening: {self.tail()}")

    def _wait_ready(self) -> None:
        end = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < end:
            try:
                if httpx.get(f"{self.url}/v1/health/ready", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server did not become ready: {self.tail()}")

    def tail(self, n: int = 2000) -> str:
        return self.log.read_text()[-n:] if self.log.exists() else ""

    def tree(self) -> list[psutil.Process]:
        """The server process and its children (the conformer workers)."""
        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss_mb(self) -> tuple[float, float]:
        """RSS of the server process, and of it with its children, in MiB."""
        own = total = 0.0
        for p in self.tree():
            try:
                rss = p.memory_info().rss / 2**20
            except psutil.NoSuchProcess:
                continue
            own = rss if p.pid == self.ps.pid else own
            total += rss
        return own, total

    def cpu_s(self) -> float:
        """CPU seconds (user + system) of the server process, its live children and the
        children they reaped."""
        total = 0.0
        for p in self.tree():
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system + t.children_user + t.children_system
        return total

    def worker_stats(self) -> dict[str, Any]:
        """Each model worker's statistics now (``{model: {calls, items, jobs, batch_sizes}}``)."""
        self._seq += 1
        os.kill(self.proc.pid, signal.SIGUSR1)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                stats = json.loads(self.stats_file.read_text())
                if stats.get("seq") == self._seq:
                    return stats["workers"]
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError("the server wrote no worker statistics")

    def stop(self, wait_s: float = 15.0) -> int:
        """Ctrl+C (SIGINT: uvicorn's graceful stop); SIGTERM if it is still up after ``wait_s``
        (:attr:`stopped_by` says which worked), then kill. The exit code."""
        self.stopped_by = None
        for sig in (signal.SIGINT, signal.SIGTERM):
            if self.proc.poll() is not None:
                break
            self.proc.send_signal(sig)
            try:
                self.proc.wait(wait_s)
                self.stopped_by = sig.name
            except subprocess.TimeoutExpired:
                continue
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            self.stopped_by = "SIGKILL"
        self._log.close()
        return self.proc.returncode


def stats_delta(before: dict, after: dict, model: str) -> dict[str, Any]:
    """Batches and items a model's worker ran between two :meth:`Server.worker_stats`."""
    a, b = after[model], before.get(model, {"calls": 0, "items": 0})
    calls, items = a["calls"] - b["calls"], a["items"] - b["items"]
    sizes = a["batch_sizes"][-calls:] if 0 < calls <= len(a["batch_sizes"]) else []
    out: dict[str, Any] = {
        "batches": calls,
        "items": items,
        "mean_batch_size": items / calls if calls else None,
    }
    if sizes:
        values, counts = np.unique(sizes, return_counts=True)
        out["batch_size_counts"] = {str(int(v)): int(c) for v, c in zip(values, counts)}
        out["batch_size_p50"] = float(np.percentile(sizes, 50))
        out["batch_size_max"] = int(max(sizes))
    return out


class Sampler:
    """The server's RSS (alone, and with its children) every ``every_s`` seconds, at most
    ``max_samples`` kept (every other one dropped when full)."""

    def __init__(self, server: Server, every_s: float = 0.5, max_samples: int = 400) -> None:
        self.server, self.every_s, self.max_samples = server, every_s, max_samples
        self.samples: list[tuple[float, float, float]] = []
        self.peak_own = self.peak_tree = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self.t0 = time.perf_counter()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        own, tree = self.server.rss_mb()
        self.peak_own, self.peak_tree = max(self.peak_own, own), max(self.peak_tree, tree)
        self.samples.append(
            (round(time.perf_counter() - self.t0, 2), round(own, 1), round(tree, 1))
        )
        if len(self.samples) >= self.max_samples:
            self.samples = self.samples[::2]

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def summary(self) -> dict[str, Any]:
        return {
            "every_s": self.every_s,
            "start_mb": self.samples[0][1],
            "peak_mb": self.peak_own,
            "end_mb": self.samples[-1][1],
            "with_children_peak_mb": self.peak_tree,
            "samples_t_s_rss_mb_with_children_mb": self.samples,
        }


def _serve() -> None:
    """``molfm serve`` (the console script's app), writing worker statistics on SIGUSR1."""
    from molfm.cli.main import app
    from molfm.serve.workers import Worker

    stats_path = os.environ.get(STATS_ENV)

    def dump(signum: int, frame: Any) -> None:
        workers = {}
        for obj in gc.get_objects():
            if issubclass(type(obj), Worker):  # type(): no proxy object's __class__ hook
                s = obj.stats
                sizes = list(s.batch_sizes)  # one C call: no concurrent change mid-copy
                workers[obj.name] = {
                    "calls": s.calls,
                    "items": s.items,
                    "jobs": s.jobs,
                    "batch_sizes": sizes,
                }
        text = json.dumps({"seq": dump.seq + 1, "workers": workers})
        dump.seq += 1
        tmp = f"{stats_path}.tmp"
        Path(tmp).write_text(text)
        os.replace(tmp, stats_path)

    dump.seq = 0
    if stats_path:
        signal.signal(signal.SIGUSR1, dump)
    sys.argv = ["molfm", *sys.argv[1:]]
    app()


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    _serve()
