"""Does a pretrained molfm encoder help MolCA's graph side? Stage 1 (molecule-name contrastive
retrieval) at equal steps on a CPU, the small GPS either fresh or initialized from the shipped
3D-PGT encoder ``gps-3dpgt-small-qm9`` (the same architecture: 4 GINE+attention layers, width
128), each with the pooled graph token.

Stage 1: a 2-layer Q-Former (MiniLM's first two layers, mean text pooling, frozen word
embeddings), contrastive loss only, ``--steps`` of 32 pubchem-names "names"; retrieval scored on
the first ``--eval-limit`` test pairs. One run per call, so two calls can share the cores:

    nice -n 5 python benchmarks/molca_encoder_init.py fresh runs/molca_init -o runs/molca_init/fresh.json &
    nice -n 5 python benchmarks/molca_encoder_init.py pretrained runs/molca_init -o runs/molca_init/pretrained.json &
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

SMALL_GPS = dict(
    num_layers=4, dim=128, num_heads=4, local="gine", rwse_dim=16, dropout=0.0, attn_dropout=0.1
)  # GPSConfig.small(), the shipped encoder's architecture


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("init", choices=("fresh", "pretrained"))
    p.add_argument("work")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--eval-limit", type=int, default=512)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from molfm.systems.molca.config import MolCATrainConfig
    from molfm.systems.molca.run import train_molca

    out = Path(args.work) / args.init
    graph = (
        {"graph_encoder": "gps", "graph_overrides": dict(SMALL_GPS)}
        if args.init == "fresh"
        else {"graph_encoder": "gps-3dpgt-small-qm9"}
    )
    t = time.perf_counter()
    train_molca(
        MolCATrainConfig(
            output_dir=str(out),
            stage="1",
            task="names",
            data="pubchem-names",
            **graph,
            qformer={"num_layers": 2},
            captioning=False,
            matching=False,
            tune_word_embeddings=False,
            stage1_options={"text_pooling": "mean"},
            batch_size=32,
            lr=2e-4,
            warmup_steps=max(1, args.steps // 10),
            max_steps=args.steps,
            val_every_n_steps=args.steps,
            limit_val=256,
            eval_limit=args.eval_limit,
            accelerator="cpu",
            progress=False,
        )
    )
    metrics = json.loads((out / "metrics.json").read_text())
    report = {"args": vars(args), "seconds": time.perf_counter() - t, **metrics}
    Path(args.output).write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
