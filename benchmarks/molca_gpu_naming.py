"""One naming model in one GPU slot: profile, train ~10 minutes, name a test sample with every
beam, and bring back results and a checkpoint small enough to copy.

One 1D+2D MolCA (GINE 5x300, a 2-layer Q-Former from MiniLM, SmolLM2 with LoRA on q/v) trains
on pubchem-names IUPAC names with the step work of ``molfm train molca`` (pairs tokenized once,
length-grouped batches, no host-device synchronization in the step, bf16 autocast), on the
cleaned training set (OPSIN-verified names, the "pubchem small" table; the verdicts come in the
bundle's cache, as the GPU machine has no Java). In order, within ``--time-limit`` seconds:

0. **step**: ``benchmarks/molca_step.py`` at the run's batch size, one process per setting:
   the code before the step work (``--before-code``, as its GPU run trained: LoRA r 8 on
   every projection with dropout, random batches, bf16), the current step in bf16, and the
   same compiled (molfm's ``--compile``); molecules/s and CUDA kernels launched per step,
   side by side, over the same molecules. ``--compile auto`` trains compiled only if
   compiling was more than 10% faster in this phase;
1. **profile**: a short run of ``--profile-steps`` steps, torch.profiler over the last few
   (``profile.txt``), whose median step time sets the main run's steps;
2. **train**: as many steps as fit ``--train-share`` of the time left (the cosine schedule
   ends on the last one), validation at the end;
3. **name**: a seeded random sample of ``--eval-limit`` test molecules, beam search with every
   beam kept (``predictions.csv``: ``id, smiles, target, beam_0..``), LoRA merged, the
   locant-run and repeat guards and caps per molecule that fit the data; batches until the
   time is up;
4. **package** into ``--out``: ``summary.json``, ``results.tgz`` (predictions, metrics,
   profile, logs) and the checkpoint (fp16) as ``model-config.json`` + ``model.safetensors``
   (split into ``.part*`` above 15 MiB).

Scoring runs afterwards on a CPU with Java (``benchmarks/molca_score.py``; docs/molca.md has
both commands). On a CPU, tiny sizes (a tiny Llama, a few steps; used by the tests)::

    python benchmarks/molca_gpu_naming.py --tiny --out /tmp/gpu_naming --time-limit 120
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from molca_gpu import median_step, step_profiler, step_timer, tiny_lm_dir  # noqa: E402

PART_BYTES = 15 * 2**20
STEP_SCRIPT = Path(__file__).resolve().parent / "molca_step.py"
# molca_step.py settings: the step before the work (as that commit's GPU run trained: LoRA r 8
# on every projection with dropout 0.1, random batches, bf16 autocast) and the step now
STEP_CONFIGS = {
    "before": [
        *("--legacy", "--lora-r", "8", "--lora-dropout", "0.1", "--random-batches", "--bf16"),
    ],
    "after": ["--lora-targets", "qv", "--fused-adamw", "--bf16"],
    "after-compile": ["--lora-targets", "qv", "--fused-adamw", "--bf16", "--compile"],
}
STEP_KEYS = (
    *("molecules_per_s", "launches_total", "launches_forward_backward", "ops_total", "syncs"),
    *("padding_share", "warmup_s", "last_loss", "device"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="results folder (the device tool's $OUT)")
    p.add_argument("--work", default=None, help="run folders (default: <out>/../gpu_naming_runs)")
    p.add_argument("--time-limit", type=float, default=560, help="seconds for the whole command")
    p.add_argument("--train-share", type=float, default=0.7, help="of the time after the profile")
    p.add_argument("--profile-steps", type=int, default=30)
    p.add_argument("--max-steps", type=int, default=50_000, help="cap on the planned steps")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-targets", default="qv")
    p.add_argument("--max-target-tokens", type=int, default=256, help="covers 99.9%% of names")
    p.add_argument("--eval-limit", type=int, default=400, help="test molecules to name")
    p.add_argument("--num-beams", type=int, default=5)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--max-locant-run", type=int, default=48, help="above the data's 99.9th pct.")
    p.add_argument("--max-repeats", type=int, default=20, help="above the data's most (18)")
    p.add_argument(
        "--max-tokens-per-atom", type=float, default=6.0, help="cap per molecule: X * atoms + 16"
    )
    p.add_argument(
        "--soft-cap-per-atom", type=float, default=3.0, help="length penalty past X * atoms + 16"
    )
    p.add_argument("--soft-cap-rate", type=float, default=1.0, help="nats per token past it")
    p.add_argument("--decode-batch", type=int, default=64)
    p.add_argument("--no-clean-data", action="store_true", help="no OPSIN filter, no small table")
    p.add_argument(
        "--synonyms", type=int, default=0, help="OPSIN-verified synonyms per training molecule"
    )
    p.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="train with molfm's --compile; auto: if the step phase found it >10%% faster",
    )
    p.add_argument("--step-configs", default="before,after,after-compile", help="'' skips them")
    p.add_argument(
        "--step-steps", type=int, default=10, help="batches of the timed pass of each setting"
    )
    p.add_argument(
        "--step-timeout", type=float, default=180, help="seconds for each setting (compiling)"
    )
    p.add_argument(
        "--before-code",
        default=os.environ.get("MOLCA_BEFORE_CODE"),
        help="a folder holding the molfm package before the step work (git archive)",
    )
    p.add_argument(
        "--init",
        default=None,
        help="graph encoder + Q-Former from a stage-1 model (MolCA's order), e.g. "
        "molca-small-pubchem-retrieval",
    )
    p.add_argument("--tiny", action="store_true", help="CPU test: tiny LM, a few steps, fp32")
    p.add_argument("--data-path", default=None, help="a SMILES,text CSV instead of pubchem-names")
    return p.parse_args(argv)


def step_benchmark(args: argparse.Namespace, work: Path, deadline: float) -> dict[str, Any]:
    """Phase 0: ``molca_step.py`` per setting of ``--step-configs``, each in its own process
    (the "before" one with ``--before-code`` first on its path) under ``--step-timeout``; a
    setting that fails or runs out of time is recorded with its error and the phase goes on."""
    tiny = args.tiny
    common = [
        *("--lm", str(tiny_lm_dir(work)) if tiny else "smollm2"),
        *("--device", "cpu" if tiny else "cuda"),
        *("--batch-size", str(4 if tiny else args.batch_size)),
        *("--pool", str(16 if tiny else args.step_steps * args.batch_size)),
    ]
    if args.data_path is not None:
        common += ["--data-path", args.data_path]
    results: dict[str, Any] = {}
    for name in filter(None, args.step_configs.split(",")):
        flags = [f for f in STEP_CONFIGS[name] if not (tiny and f == "--bf16")]
        env = dict(os.environ)
        if name == "before":
            if not args.before_code:
                results[name] = {"error": "no --before-code"}
                continue
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(args.before_code), env.get("PYTHONPATH")])
            )
        out = work / f"step_{name}.json"
        command = [sys.executable, str(STEP_SCRIPT), "--label", name, *common, *flags]
        timeout = min(args.step_timeout, deadline - time.time())
        started = time.perf_counter()
        try:
            with open(work / f"step_{name}.log", "w") as log:
                subprocess.run(
                    [*command, "-o", str(out)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=max(1.0, timeout),
                    check=True,
                )
            report = json.loads(out.read_text())
            results[name] = {k: report.get(k) for k in STEP_KEYS}
        except (subprocess.SubprocessError, OSError, ValueError) as error:
            results[name] = {"error": f"{type(error).__name__}: {error}"}
        results[name]["seconds"] = round(time.perf_counter() - started, 1)
    before = results.get("before", {})
    for name, result in results.items():
        if name != "before" and before.get("molecules_per_s") and "error" not in result:
            result["speedup_vs_before"] = result["molecules_per_s"] / before["molecules_per_s"]
            result["launch_ratio_vs_before"] = result["launches_total"] / before["launches_total"]
    return results


def compile_choice(args: argparse.Namespace, step: dict[str, Any]) -> bool:
    """``--compile``: on, off, or (auto) on where the step phase found compiling faster."""
    if args.compile != "auto":
        return args.compile == "on"
    eager = step.get("after", {}).get("molecules_per_s") or 0.0
    compiled = step.get("after-compile", {}).get("molecules_per_s") or 0.0
    return compiled > 1.1 * eager > 0  # a margin for the first steps' compiling


def run_config(args: argparse.Namespace, output_dir: Path, steps: int):
    from molfm.systems.molca.config import MolCATrainConfig

    data = {"data": "pubchem-names"} if args.data_path is None else {"data_path": args.data_path}
    clean = args.data_path is None and not args.no_clean_data
    fields: dict[str, Any] = {
        "output_dir": str(output_dir),
        "stage": "finetune",
        "task": "iupac",
        **data,
        "lm": str(tiny_lm_dir(output_dir.parent)) if args.tiny else "smollm2",
        "input_mode": "1d2d",
        "init": args.init,
        "graph_encoder": "gine",
        "qformer": {"num_layers": 2},
        "lora_r": args.lora_r,
        "lora_targets": args.lora_targets,
        "max_target_tokens": args.max_target_tokens,
        "opsin_filter": clean,
        "add_small_table": clean,
        "synonyms_per_molecule": args.synonyms if clean else 0,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "warmup_steps": min(200, max(1, steps // 10)),
        "max_steps": steps,
        "val_every_n_steps": steps,  # one validation and one checkpoint, at the end
        "limit_val": 1024,
        "eval_limit": 0,  # naming below, with every beam and a deadline
        "num_workers": 4,
        "progress": False,
        "compile": args.compile == "on",  # "auto" is decided before the first run
        "accelerator": "cpu" if args.tiny else "gpu",
        "precision": "32-true" if args.tiny else "bf16-mixed",
    }
    if args.tiny:
        fields |= {"batch_size": 4, "limit_train": 32, "limit_val": 8, "num_workers": 0}
    return MolCATrainConfig(**fields)


def train(args, output_dir: Path, steps: int, deadline: float, profile: Path | None = None):
    """One ``train_molca`` run; the step timer stops it at ``deadline``."""
    from molfm.systems.molca.run import train_molca

    timer = step_timer(deadline)
    callbacks = [timer]
    profiler = None
    if profile is not None:
        warmup = max(1, steps - 5)
        profiler = step_profiler(profile, steps - warmup, warmup=warmup)
        callbacks.append(profiler)
    started = time.perf_counter()
    model_dir = train_molca(run_config(args, output_dir, steps), callbacks=callbacks)
    metrics = json.loads((output_dir / "metrics.json").read_text())
    return model_dir, {
        "steps_planned": steps,
        "steps_done": len(timer.times),
        "stopped_early": timer.stopped_early,
        "median_step_s": median_step({"step_seconds": timer.times}),
        "seconds": time.perf_counter() - started,
        "training": metrics.get("training"),
        "launches_per_step": None if profiler is None else profiler.launches_per_step,
    }


def name_sample(args, model_dir: Path, cfg, deadline: float, out_csv: Path) -> dict[str, Any]:
    """Beam-search a seeded random test sample, every beam kept, batch by batch until
    ``deadline`` (the CSV is rewritten after each batch)."""
    import pandas as pd
    import torch

    from molfm.hub import from_pretrained
    from molfm.systems.molca.decoding import beam_endings
    from molfm.systems.molca.evaluate import generate_texts, sample_test_pairs
    from molfm.systems.molca.splits import load_splits, subset

    device = torch.device("cpu" if args.tiny else "cuda")
    model = from_pretrained(model_dir).merge_lora().to(device).eval()
    pairs = sample_test_pairs(load_splits(cfg).test, args.eval_limit, cfg.data_seed)
    rows: list[list[str]] = []
    started = time.perf_counter()
    for first in range(0, len(pairs), args.decode_batch):
        if rows and time.time() > deadline:  # at least one batch, whatever the clock says
            break
        chunk = subset(pairs, range(first, min(first + args.decode_batch, len(pairs))))
        rows += generate_texts(
            model,
            chunk,
            "iupac",
            batch_size=args.decode_batch,
            num_beams=args.num_beams,
            num_return_sequences=args.num_beams,
            max_new_tokens=args.max_new_tokens,
            max_locant_run=args.max_locant_run,
            max_repeats=args.max_repeats,
            max_tokens_per_atom=args.max_tokens_per_atom,
            soft_cap_per_atom=args.soft_cap_per_atom,
            soft_cap_rate=args.soft_cap_rate,
        )
        n = len(rows)
        frame = pd.DataFrame(
            {"id": pairs.ids[:n], "smiles": pairs.smiles[:n], "target": pairs.texts[:n]}
        )
        for k in range(args.num_beams):
            frame[f"beam_{k}"] = [r[k] if k < len(r) else "" for r in rows]
        frame.to_csv(out_csv, index=False)
    lengths = [[len(model.tokenizer(text)["input_ids"]) for text in r] for r in rows]
    return {
        "n_named": len(rows),
        "n_asked": len(pairs),
        "seconds": time.perf_counter() - started,
        "beam0_tokens_max": max((r[0] for r in lengths if r), default=0),
        **beam_endings(
            lengths,
            pairs.smiles[: len(rows)],
            max_new_tokens=args.max_new_tokens,
            max_tokens_per_atom=args.max_tokens_per_atom,
            soft_cap_per_atom=args.soft_cap_per_atom,
        ),
    }


def package(out: Path, work: Path, summary: dict[str, Any], model_dir: Path | None) -> None:
    import torch

    from molfm.hub import from_pretrained, save_pretrained

    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    with tarfile.open(out / "results.tgz", "w:gz") as tar:
        for path in [*sorted(work.glob("*.csv")), *sorted(work.glob("*.txt"))] + sorted(
            [*work.glob("step_*.json"), *work.glob("step_*.log")]
        ):
            tar.add(path, arcname=path.name)
        for path in sorted(work.glob("*/metrics.json")) + sorted(work.glob("*/logs/**/*.csv")):
            tar.add(path, arcname=str(path.relative_to(work)))
    if model_dir is None:
        return
    fp16 = work / "fp16"
    save_pretrained(from_pretrained(model_dir), fp16, dtype=torch.float16)
    (out / "model-config.json").write_text((fp16 / "config.json").read_text())
    data = (fp16 / "model.safetensors").read_bytes()
    if len(data) <= PART_BYTES:
        (out / "model.safetensors").write_bytes(data)
        return
    for i in range(0, len(data), PART_BYTES):
        (out / f"model.safetensors.part{i // PART_BYTES}").write_bytes(data[i : i + PART_BYTES])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    args = parse_args(argv)
    start = time.time()
    limit = start + args.time_limit
    out = Path(args.out)
    work = Path(args.work or out.resolve().parent / "gpu_naming_runs")
    work.mkdir(parents=True, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = True
    summary: dict[str, Any] = {"args": dict(vars(args)), "torch": torch.__version__}
    if torch.cuda.is_available():
        summary["gpu"] = torch.cuda.get_device_name(0)
    if not args.tiny:
        from molfm.systems.molca.lm import smollm2_path

        smollm2_path()  # converted once, before any timing
    summary["prepare_seconds"] = time.time() - start
    model_dir = None
    try:
        # at most 40% of the slot, and 4 minutes always left for the run itself
        step_deadline = start + min(args.time_limit - 240, 0.4 * args.time_limit)
        summary["step"] = step_benchmark(args, work, step_deadline)
        summary["compile"] = compile_choice(args, summary["step"])
        args.compile = "on" if summary["compile"] else "off"
        _, summary["profile"] = train(
            args, work / "profile", args.profile_steps, limit, profile=work / "profile.txt"
        )
        step = summary["profile"]["median_step_s"] or 1.0
        left = limit - time.time()
        train_seconds = max(5.0, args.train_share * left - 60)  # minus loading, validation
        steps = min(args.max_steps, max(10, int(train_seconds / step) // 10 * 10))
        model_dir, summary["train"] = train(args, work / "run", steps, time.time() + train_seconds)
        cfg = run_config(args, work / "run", steps)
        summary["naming"] = name_sample(args, model_dir, cfg, limit - 45, work / "predictions.csv")
        if torch.cuda.is_available():
            summary["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    finally:
        summary["total_seconds"] = time.time() - start
        package(out, work, summary, model_dir)
    print(json.dumps({k: summary.get(k) for k in ("train", "naming")}, default=str), flush=True)
    return summary


if __name__ == "__main__":
    main()
