"""MolCA on one GPU in one command: the naming ablation, the shipped checkpoint and retrieval.

Five runs train side by side on one GPU, each a ``molfm train molca`` run
(:func:`molfm.systems.molca.run.train_molca`) on ``pubchem-names``:

========================  =====================================================================
``1d2d-gine``             SMILES + graph tokens, GINE 5x300 (-> ``molca-small-pubchem-names``)
``1d``                    SMILES only (no graph side)
``2d-gine``               graph tokens only
``1d2d-gps3dpgt``         SMILES + graph tokens, graph side = the shipped 3D-PGT GPS encoder
``stage1-gine``           stage 1 (contrastive + matching + captioning) on names, for retrieval
========================  =====================================================================

The naming runs fine-tune straight from MiniLM and SmolLM2 (no stage 1/2: the budget is minutes):
a 2-layer Q-Former, LoRA r 8 on every attention and MLP projection, batch 64, bf16-mixed. The
stage-1 run uses the paper's 6-layer Q-Former.

One budget for the ablation: first every run trains ``--probe-steps`` steps side by side, which
measures the step time under the same sharing; then every naming run gets the same number of
steps, the most the slowest one fits into the time left (stage 1 gets its own count). After
training, each naming run decodes the first ``--eval-limit`` test molecules with beam search,
keeping all beams (``predictions_<run>.csv``: ``id, smiles, target, beam_0..``), so OPSIN checks
and ``--verify`` rates are scored afterwards on a CPU (``benchmarks/molca_score.py``: the GPU
machine has no Java). The stage-1 run scores retrieval over the test set, with and without
re-ranking.

Outputs in ``--out`` (at most 8 files, each under 16 MiB, as the device tool returns them):
``summary.json``, ``results.tgz`` (predictions, metrics, timings, logs), and the shipped
checkpoint as ``asset-config.json`` + ``asset-model.safetensors.part*`` (fp16; join the parts).

On the GPU machine (see ``benchmarks/molca_gpu.md`` for the transfer of wheels and data)::

    python benchmarks/molca_gpu.py --out $OUT --time-limit 540

On a CPU, tiny sizes, to test this script::

    python benchmarks/molca_gpu.py --tiny --out /tmp/molca_gpu --time-limit 600
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

NAMING = ("1d2d-gine", "1d", "2d-gine", "1d2d-gps3dpgt")
STAGE1 = "stage1-gine"
RUNS = (*NAMING, STAGE1)
SHIPPED = "1d2d-gine"
PART_BYTES = 15 * 2**20
# what each run sets on top of the shared naming settings
RUN_FIELDS: dict[str, dict[str, Any]] = {
    "1d2d-gine": {"input_mode": "1d2d", "graph_encoder": "gine"},
    "1d": {"input_mode": "1d"},
    "2d-gine": {"input_mode": "2d", "graph_encoder": "gine"},
    "1d2d-gps3dpgt": {"input_mode": "1d2d", "graph_encoder": "gps-3dpgt-small-qm9"},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="results folder (the device tool's $OUT)")
    p.add_argument("--work", default=None, help="run folders (default: <out>/../molca_gpu_runs)")
    p.add_argument("--time-limit", type=float, default=540, help="seconds for the whole command")
    p.add_argument("--probe-steps", type=int, default=16)
    p.add_argument("--eval-limit", type=int, default=1000, help="test molecules to name")
    p.add_argument("--num-beams", type=int, default=5)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--eval-reserve", type=float, default=150, help="seconds kept for decoding")
    p.add_argument("--rerank", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--stage1-batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--max-steps", type=int, default=20_000, help="cap on the planned steps")
    p.add_argument("--runs", default=",".join(RUNS), help="comma-separated subset of the runs")
    p.add_argument(
        "--profile-steps",
        type=int,
        default=0,
        help="profile this many training steps of each run (torch.profiler, after 5 warm-up "
        "steps; tables in results.tgz as profile_<run>.txt)",
    )
    p.add_argument("--tiny", action="store_true", help="CPU test: tiny LM, small data, fp32")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- one run
def tiny_lm_dir(work: Path) -> Path:
    """A tiny random Llama folder (SmolLM2's architecture) for the CPU test."""
    from molfm.systems.molca.lm import tiny_llama, tiny_tokenizer

    path = work / "tiny-llama"
    if not (path / "config.json").exists():
        tokenizer = tiny_tokenizer()
        tiny_llama(tokenizer).save_pretrained(path)
        tokenizer.save_pretrained(path)
    return path


def run_config(run: str, args: argparse.Namespace, work: Path, phase: str, steps: int):
    from molfm.systems.molca.config import MolCATrainConfig

    common: dict[str, Any] = {
        "output_dir": str(work / phase / run),
        "data": "pubchem-names",
        "max_steps": steps,
        "val_every_n_steps": steps,  # one validation and one checkpoint, at the end
        "eval_limit": 0,  # decoding and retrieval are scored below, with all beams kept
        "warmup_steps": min(100, max(1, steps // 10)),
        "lr": args.lr,
        "num_workers": 2,
        "progress": False,
        "accelerator": "cpu" if args.tiny else "gpu",
        "precision": "32-true" if args.tiny else "bf16-mixed",
    }
    if args.tiny:
        common |= {"limit_train": 64, "limit_val": 8}
    if run == STAGE1:
        fields = {"stage": "1", "task": "names", "batch_size": args.stage1_batch_size}
        if args.tiny:
            fields |= {"batch_size": 8, "qformer": {"num_layers": 2}}
        return MolCATrainConfig(**common, **fields)
    lm = str(tiny_lm_dir(work)) if args.tiny else "smollm2"
    fields = {
        "stage": "finetune",
        "task": "iupac",
        "batch_size": 4 if args.tiny else args.batch_size,
        "lm": lm,
        "lm_tuning": "lora",
        "lora_r": 8,
        "qformer": {"num_layers": 2},
        **RUN_FIELDS[run],
    }
    return MolCATrainConfig(**common, **fields)


def step_timer(deadline: float):
    """A Lightning callback: wall time of every training step; stops training at ``deadline``."""
    import lightning as L

    class StepTimer(L.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.stopped_early = False
            self._start = 0.0

        def on_train_batch_start(self, trainer, *args) -> None:
            self._start = time.perf_counter()

        def on_train_batch_end(self, trainer, *args) -> None:
            self.times.append(time.perf_counter() - self._start)
            if time.time() > deadline:
                self.stopped_early = True
                trainer.should_stop = True

    return StepTimer()


def step_profiler(path: Path, steps: int, warmup: int = 5):
    """A Lightning callback: torch.profiler over training steps ``warmup .. warmup + steps``,
    its op tables (by self CUDA time when on a GPU, and by self CPU time) written to ``path``."""
    import lightning as L
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)

    class StepProfiler(L.Callback):
        def __init__(self) -> None:
            self.prof = None
            self.seen = 0
            self.launches_per_step: float | None = None

        def on_train_batch_start(self, trainer, *args) -> None:
            if self.seen == warmup:
                self.prof = profile(activities=activities)
                self.prof.__enter__()

        def on_train_batch_end(self, trainer, *args) -> None:
            self.seen += 1
            if self.prof is not None and self.seen == warmup + steps:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                self.prof.__exit__(None, None, None)
                from molca_step import launches_in

                cuda = torch.cuda.is_available()
                launches = sum(launches_in(self.prof.events(), cuda=cuda).values())
                self.launches_per_step = launches / steps
                table = self.prof.key_averages()
                text = [
                    f"{steps} training steps after {warmup} warm-up steps; "
                    f"{self.launches_per_step:.0f} kernel launches per step "
                    f"({'CUDA kernels, copies and fills' if cuda else 'see molca_step.py'})\n"
                ]
                if torch.cuda.is_available():
                    text.append(table.table(sort_by="self_cuda_time_total", row_limit=40))
                text.append(table.table(sort_by="self_cpu_time_total", row_limit=40))
                path.write_text("\n".join(text))
                self.prof = None

    return StepProfiler()


def name_test_molecules(model, test, args, deadline: float, out: Path) -> dict[str, Any]:
    """Beam-search the first ``eval_limit`` test molecules, batch by batch until ``deadline``."""
    import pandas as pd

    from molfm.systems.molca.evaluate import generate_texts
    from molfm.systems.molca.splits import head

    pairs = head(test, args.eval_limit)
    rows: list[list[str]] = []
    start, batch = time.perf_counter(), 64 if not args.tiny else 4
    for first in range(0, len(pairs), batch):
        if time.time() > deadline:
            break
        chunk = _head_range(pairs, first, first + batch)
        rows += generate_texts(
            model,
            chunk,
            "iupac",
            batch_size=batch,
            num_beams=args.num_beams,
            num_return_sequences=args.num_beams,
            max_new_tokens=args.max_new_tokens,
        )
        n = len(rows)  # written after every batch: a run stopped at its time limit keeps these
        frame = pd.DataFrame(
            {"id": pairs.ids[:n], "smiles": pairs.smiles[:n], "target": pairs.texts[:n]}
        )
        for k in range(args.num_beams):
            frame[f"beam_{k}"] = [r[k] if k < len(r) else "" for r in rows]
        frame.to_csv(out, index=False)
    n = len(rows)
    seconds = time.perf_counter() - start
    return {"n_named": n, "n_asked": len(pairs), "decode_seconds": seconds}


def _head_range(dataset, start: int, stop: int):
    from molfm.systems.molca.splits import subset

    return subset(dataset, range(start, min(stop, len(dataset))))


def retrieval_report(model, test, args, deadline: float, partial) -> dict[str, Any]:
    """Contrastive retrieval over the whole test set, then re-ranked (each direction on its
    own) if the time allows; ``partial(report)`` saves what is done before re-ranking."""
    from molfm.eval.text import retrieval_metrics
    from molfm.systems.molca.evaluate import reranked_retrieval
    from molfm.systems.molca.retrieval import full_similarity

    graphs = [test.graphs[i] for i in range(len(test))]
    texts = list(test.texts)
    batch = 1024 if not args.tiny else 8
    start = time.perf_counter()
    report: dict[str, Any] = {"n": len(texts)}
    sim = full_similarity(model, graphs, texts, batch_size=batch)
    report["contrastive"] = retrieval_metrics(sim)
    report["contrastive_seconds"] = time.perf_counter() - start
    partial(report)
    if time.time() < deadline:
        start = time.perf_counter()
        report["reranked"] = reranked_retrieval(model, graphs, texts, args.rerank, batch)
        report["rerank"] = args.rerank
        report["reranked_seconds"] = time.perf_counter() - start
    return report


def child(args: argparse.Namespace) -> None:
    import torch

    from molfm.hub import from_pretrained, save_pretrained
    from molfm.systems.molca.run import train_molca
    from molfm.systems.molca.splits import load_splits

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    run, phase, work = args.child, args.phase, Path(args.work)
    cfg = run_config(run, args, work, phase, args.steps)
    timer = step_timer(args.deadline)
    callbacks = [timer]
    if args.profile_steps and phase == "train":
        callbacks.append(step_profiler(work / f"profile_{run}.txt", args.profile_steps))
    started = time.perf_counter()
    model_dir = train_molca(cfg, callbacks=callbacks)
    report: dict[str, Any] = {
        "run": run,
        "phase": phase,
        "steps_planned": args.steps,
        "steps_done": len(timer.times),
        "stopped_early": timer.stopped_early,
        "step_seconds": timer.times,
        "train_seconds": time.perf_counter() - started,
    }
    metrics = json.loads((Path(cfg.output_dir) / "metrics.json").read_text())
    report["training"] = metrics["training"]
    report["parameters"] = metrics.get("parameters")
    if torch.cuda.is_available():
        report["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    path = work / f"{phase}_{run}.json"
    path.write_text(json.dumps(report, indent=1, default=str))  # again below, with the scores
    if phase != "train":
        return
    model = from_pretrained(model_dir)
    if run == SHIPPED:  # before decoding, which a time limit may cut short
        save_pretrained(model, work / "asset", dtype=torch.float16, extra={"training": metrics})
    model = model.to(torch.device("cpu" if args.tiny else "cuda")).eval()
    test = load_splits(cfg).test
    if args.tiny:
        test = _head_range(test, 0, 24)
    finish = args.deadline + args.eval_reserve
    if run == STAGE1:

        def partial(retrieval: dict[str, Any]) -> None:
            path.write_text(json.dumps(report | {"retrieval": retrieval}, indent=1, default=str))

        report["retrieval"] = retrieval_report(model, test, args, finish, partial)
    else:
        out = work / f"predictions_{run}.csv"
        report["naming"] = name_test_molecules(model, test, args, finish, out)
    path.write_text(json.dumps(report, indent=1, default=str))


# ----------------------------------------------------------------------------- coordinator
def launch(args, work: Path, phase: str, runs: list[str], steps: dict[str, int], deadline: float):
    # the CPU cores split between the runs: torch's default (all cores each) oversubscribes them
    threads = str(max(1, (os.cpu_count() or 1) // max(1, len(runs))))
    env = os.environ | {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    procs = {}
    for run in runs:
        cmd = [sys.executable, __file__, "--out", args.out, "--work", str(work), "--child", run]
        cmd += ["--phase", phase, "--steps", str(steps[run]), "--deadline", str(deadline)]
        cmd += ["--time-limit", str(args.time_limit), "--eval-limit", str(args.eval_limit)]
        cmd += ["--num-beams", str(args.num_beams), "--max-new-tokens", str(args.max_new_tokens)]
        cmd += ["--eval-reserve", str(args.eval_reserve), "--rerank", str(args.rerank)]
        cmd += ["--batch-size", str(args.batch_size), "--lr", str(args.lr)]
        cmd += ["--stage1-batch-size", str(args.stage1_batch_size)]
        cmd += ["--profile-steps", str(args.profile_steps)]
        cmd += ["--tiny"] if args.tiny else []
        log = open(work / f"{phase}_{run}.log", "w")  # noqa: SIM115 (closed by the child's exit)
        procs[run] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    return procs


def wait(procs: dict, hard_deadline: float) -> dict[str, int | None]:
    codes: dict[str, int | None] = {}
    for run, proc in procs.items():
        try:
            codes[run] = proc.wait(timeout=max(1.0, hard_deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes[run] = None
    return codes


def read_report(work: Path, phase: str, run: str) -> dict[str, Any] | None:
    path = work / f"{phase}_{run}.json"
    return json.loads(path.read_text()) if path.exists() else None


def median_step(report: dict[str, Any] | None) -> float | None:
    times = (report or {}).get("step_seconds") or []
    times = times[3:] or times  # the first steps include CUDA/cuBLAS warm-up
    return sorted(times)[len(times) // 2] if times else None


def plan_steps(probe: dict[str, float | None], seconds: float, cap: int) -> dict[str, int]:
    """Equal steps for the naming runs (the slowest one's fit), stage 1 its own."""
    naming = [t for r, t in probe.items() if r in NAMING and t]
    steps: dict[str, int] = {}
    if naming:
        n = max(10, min(cap, int(seconds / max(naming)) // 10 * 10))
        steps |= {r: n for r in probe if r in NAMING}
    if probe.get(STAGE1):
        steps[STAGE1] = max(10, min(cap, int(seconds / probe[STAGE1]) // 10 * 10))
    return steps


def environment() -> dict[str, Any]:
    import torch
    import transformers

    info: dict[str, Any] = {"torch": torch.__version__, "transformers": transformers.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    info["cpus"] = os.cpu_count()
    return info


def package(args, work: Path, summary: dict[str, Any]) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    with tarfile.open(out / "results.tgz", "w:gz") as tar:
        for path in (
            sorted(work.glob("*.json"))
            + sorted(work.glob("*.log"))
            + sorted(work.glob("profile_*.txt"))
        ):
            tar.add(path, arcname=path.name)
        for path in sorted(work.glob("predictions_*.csv")):
            tar.add(path, arcname=path.name)
        for path in sorted(work.glob("*/*/metrics.json")) + sorted(work.glob("*/*/logs/**/*.csv")):
            tar.add(path, arcname=str(path.relative_to(work)))
    asset = work / "asset"
    if (asset / "model.safetensors").exists():
        (out / "asset-config.json").write_text((asset / "config.json").read_text())
        data = (asset / "model.safetensors").read_bytes()
        for i in range(0, len(data), PART_BYTES):
            (out / f"asset-model.safetensors.part{i // PART_BYTES}").write_bytes(
                data[i : i + PART_BYTES]
            )


def coordinate(args: argparse.Namespace) -> dict[str, Any]:
    start = time.time()
    limit = start + args.time_limit
    work = Path(args.work or Path(args.out).resolve().parent / "molca_gpu_runs")
    work.mkdir(parents=True, exist_ok=True)
    runs = [r for r in args.runs.split(",") if r]
    unknown = sorted(set(runs) - set(RUNS))
    if unknown:
        raise SystemExit(f"--runs: unknown {unknown}; choose from {', '.join(RUNS)}")
    summary: dict[str, Any] = {"args": vars(args), "environment": environment(), "phases": {}}
    # the SmolLM2 conversion and the data cache, once, before the runs start side by side
    t = time.time()
    if not args.tiny:
        from molfm.systems.molca.lm import smollm2_path

        smollm2_path()
    from molfm.systems.molca.data import pubchem_names_splits

    pubchem_names_splits("iupac")
    summary["prepare_seconds"] = time.time() - t
    print(f"prepared in {summary['prepare_seconds']:.0f} s", flush=True)

    t = time.time()
    probe_deadline = t + 0.3 * (limit - t)
    probe_steps = {r: args.probe_steps for r in runs}
    codes = wait(launch(args, work, "probe", runs, probe_steps, probe_deadline), probe_deadline)
    probe = {r: median_step(read_report(work, "probe", r)) for r in runs}
    summary["phases"]["probe"] = {"seconds": time.time() - t, "exit": codes, "step_s": probe}
    print(f"probe: {probe} exit {codes}", flush=True)

    runs = [r for r in runs if probe[r]]
    startup = max(time.time() - t - args.probe_steps * max(probe.values(), default=0), 0)
    train_seconds = limit - time.time() - startup - args.eval_reserve - 30
    steps = plan_steps({r: probe[r] for r in runs}, train_seconds, args.max_steps)
    t = time.time()
    deadline = t + startup + train_seconds
    summary["phases"]["train"] = {"planned_steps": steps, "train_seconds": train_seconds}
    print(f"train: {steps} in {train_seconds:.0f} s (+{startup:.0f} s start)", flush=True)
    codes = wait(launch(args, work, "train", runs, steps, deadline), limit - 20)
    summary["phases"]["train"] |= {"seconds": time.time() - t, "exit": codes}
    reports = {r: read_report(work, "train", r) for r in runs}
    summary["runs"] = {
        r: {k: v for k, v in (rep or {}).items() if k != "step_seconds"}
        | {"median_step_s": median_step(rep)}
        for r, rep in reports.items()
    }
    summary["total_seconds"] = time.time() - start
    package(args, work, summary)
    return summary


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child(args)
        return
    summary = coordinate(args)
    for run, report in summary.get("runs", {}).items():
        keep = ("steps_done", "median_step_s", "naming", "retrieval", "max_memory_gib")
        print(run, json.dumps({k: report.get(k) for k in keep}, default=str), flush=True)
    print(f"total {summary['total_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
