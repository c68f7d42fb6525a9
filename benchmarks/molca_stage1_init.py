"""Does MolCA's stage 1 help naming? Two naming runs at equal steps on a CPU: the graph encoder
and Q-Former from a stage-1 run (``--init``, MolCA's order) or fresh (GINE) and from MiniLM.

Stage 1: GINE 5x300 + a 2-layer Q-Former (MiniLM's first two layers, mean pooling, frozen word
embeddings), contrastive + matching losses on pubchem-names "names", ``--stage1-steps`` of 32.
Naming: SmolLM2 with LoRA r 8 on q/v, graph tokens only (``2d``: the prompt holds no SMILES, so
the name must come through the graph side), ``--steps`` of ``--batch-size`` on the same seeded
training subset, validation loss on the first ``--limit-val`` validation pairs at the end.

    nice -n 5 python benchmarks/molca_stage1_init.py runs/stage1_init \\
        -o benchmarks/results/molca_stage1_init.json

``--stage1 MODEL`` starts from a stage-1 model already trained instead (a run folder or a
shipped name, e.g. ``molca-small-pubchem-retrieval``: 2,400 steps of 32)::

    OMP_NUM_THREADS=2 python benchmarks/molca_stage1_init.py runs/stage1_init_shipped \
        --stage1 molca-small-pubchem-retrieval --steps 300 --limit-val 256 \
        -o benchmarks/results/molca_stage1_init_shipped.json

``--tiny`` (what fits a shared 2-core CPU in minutes): GINE 3x128 and a tiny random Llama
(byte-level, fully trained from scratch) instead of GINE 5x300 and SmolLM2 with LoRA.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("work")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--stage1-steps", type=int, default=400)
    p.add_argument("--stage1", default=None, help="a trained stage-1 model to start from")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--limit-val", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lm", default="smollm2")
    p.add_argument("--tiny", action="store_true", help="GINE 3x128 and a tiny random Llama")
    p.add_argument(
        "--lm-tuning",
        default=None,
        help="lora (default) or full (default with --tiny: a random LM)",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from molfm.systems.molca.config import MolCATrainConfig
    from molfm.systems.molca.run import train_molca

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"args": vars(args)}
    graph = {"graph_layers": 3, "graph_dim": 128} if args.tiny else {}
    lm = args.lm
    if args.tiny:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from molca_gpu import tiny_lm_dir

        lm = str(tiny_lm_dir(work))
    stage1_dir = work / "stage1"
    t = time.perf_counter()
    if args.stage1 is not None:
        from molfm.hub import load_config, resolve_checkpoint

        stage1_dir = resolve_checkpoint(args.stage1)
        report["stage1_model"] = {
            "model": args.stage1,
            "training": load_config(stage1_dir).get("training"),
        }
    elif not (stage1_dir / "model" / "config.json").exists():
        train_molca(
            MolCATrainConfig(
                output_dir=str(stage1_dir),
                stage="1",
                task="names",
                data="pubchem-names",
                qformer={"num_layers": 2},
                captioning=False,
                tune_word_embeddings=False,
                stage1_options={"text_pooling": "mean"},
                **graph,
                batch_size=32,
                lr=2e-4,
                warmup_steps=min(200, args.stage1_steps // 5),
                max_steps=args.stage1_steps,
                limit_val=256,
                eval_limit=256,
                accelerator="cpu",
                progress=False,
            )
        )
    if args.stage1 is None:
        stage1 = json.loads((stage1_dir / "metrics.json").read_text())
        report["stage1_model"] = {
            "seconds": time.perf_counter() - t,
            "metrics": stage1.get("metrics"),
        }
    for name, init in (("fresh", None), ("stage1", str(stage1_dir))):
        t = time.perf_counter()
        out = work / f"naming_{name}"
        train_molca(
            MolCATrainConfig(
                output_dir=str(out),
                stage="finetune",
                data="pubchem-names",
                task="iupac",
                init=init,
                lm=lm,
                **graph,
                input_mode="2d",
                qformer={"num_layers": 2},
                lm_tuning=args.lm_tuning or ("full" if args.tiny else "lora"),
                lora_r=8,
                lora_targets="qv",
                batch_size=args.batch_size,
                lr=2e-4,
                warmup_steps=max(1, args.steps // 10),
                max_steps=args.steps,
                val_every_n_steps=args.steps,
                limit_train=args.steps * args.batch_size,  # one epoch exactly
                limit_val=args.limit_val,
                eval_limit=0,
                accelerator="cpu",
                progress=False,
            )
        )
        metrics = json.loads((out / "metrics.json").read_text())
        report[name] = {"seconds": time.perf_counter() - t, "training": metrics.get("training")}
        Path(args.output).write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
