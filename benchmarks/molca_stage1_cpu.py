"""MolCA stage 1 (molecule <-> name retrieval) on a CPU, at a stated budget.

GINE 5x300 + a 2-layer Q-Former from MiniLM (mean pooling, as MiniLM's sentence embeddings
use), MiniLM's word embeddings frozen; contrastive + matching losses (no Q-Former captioning);
pubchem-names "names" task; batch 32. Retrieval is scored by the run on the first
``--eval-limit`` test pairs with and without re-ranking the top 128 (``metrics.json``), and here
over the whole test set without re-ranking (``full_test.json``).

    python benchmarks/molca_stage1_cpu.py runs/molca_stage1_cpu --max-steps 2400

``--ship DIR`` also writes the trained model in fp16 to ``DIR`` (how the shipped
``molca-small-pubchem-retrieval`` in ``molfm/assets/`` was made), with the command and the
scores in its ``config.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("output_dir")
    p.add_argument("--max-steps", type=int, default=2400)
    p.add_argument("--eval-limit", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ship", type=Path, default=None, help="also write an fp16 copy here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from molfm.eval.text import retrieval_metrics
    from molfm.hub import from_pretrained, load_config, save_pretrained
    from molfm.systems.molca.config import MolCATrainConfig
    from molfm.systems.molca.retrieval import full_similarity
    from molfm.systems.molca.run import train_molca
    from molfm.systems.molca.splits import load_splits

    cfg = MolCATrainConfig(
        output_dir=args.output_dir,
        stage="1",
        task="names",
        data="pubchem-names",
        qformer={"num_layers": 2},
        captioning=False,
        tune_word_embeddings=False,
        stage1_options={"text_pooling": "mean"},
        batch_size=32,
        lr=2e-4,
        warmup_steps=200,
        max_steps=args.max_steps,
        val_every_n_steps=600,
        limit_val=512,
        eval_limit=args.eval_limit,
        rerank=128,
        accelerator="cpu",
        progress=False,
    )
    model_dir = train_molca(cfg)
    model = from_pretrained(model_dir).eval()
    test = load_splits(cfg).test
    graphs = [test.graphs[i] for i in range(len(test))]
    sim = full_similarity(model, graphs, list(test.texts), batch_size=256)
    report = {"n": len(test), "contrastive": retrieval_metrics(sim)}
    out = Path(args.output_dir) / "full_test.json"
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["contrastive"], indent=1))
    if args.ship is not None:
        saved = load_config(model_dir)
        extra = {k: v for k, v in saved.items() if k not in ("molfm_version", "model_type")}
        extra.pop("model_config", None)
        run_metrics = Path(args.output_dir) / "metrics.json"
        extra["training"] = {
            "command": f"python benchmarks/molca_stage1_cpu.py RUN --max-steps {args.max_steps}",
            "full_test": report,
            "metrics": json.loads(run_metrics.read_text()) if run_metrics.exists() else None,
        }
        save_pretrained(model, args.ship, dtype=torch.float16, extra=extra)
        size = (args.ship / "model.safetensors").stat().st_size
        print(f"shipped copy: {args.ship} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
