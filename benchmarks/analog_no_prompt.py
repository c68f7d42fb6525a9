"""How similar is what a base model writes after ``<bos> A <eos>``, with no prompt at all?

Separates the base from the soft prompt in pair-tuning (benchmarks/RESULTS.md §9a): for each
source, 20 molecules are sampled after ``<bos> source <eos>`` by
:func:`molfm.systems.gp_molformer.pair_tuning.optimize.optimize` with an empty prompt (positions restarting at 1, as
in pair-tuning) and scored with RDKit (valid) and Morgan r=2 Tanimoto to the source.

    python benchmarks/analog_no_prompt.py --model gp-molformer-small-moses-analogs \\
        --sources benchmarks/results/optimize_qed_analogs/candidates.csv \\
        --val-pairs benchmarks/results/analogs_val_pairs.csv
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from molfm.systems.gp_molformer.model import load_smiles_model
from molfm.systems.gp_molformer.pair_tuning.optimize import optimize


def analog_stats(model, tok, sources: list[str], n: int, seed: int = 0) -> dict[str, float]:
    """``molfm optimize``'s candidate sampler with an empty prompt: ``<bos> source <eos>``,
    then ``n`` molecules per source."""
    no_prompt = torch.zeros(0, model.config.n_embd)
    frame = optimize(model, tok, no_prompt, sources, n_candidates=n, seed=seed, property=None)
    sims = frame.loc[frame["valid"], "similarity"].to_numpy()
    return {
        "valid": float(frame["valid"].mean()),
        "similarity_mean": float(sims.mean()) if len(sims) else float("nan"),
        "similarity_median": float(np.median(sims)) if len(sims) else float("nan"),
        "fraction_similarity_ge_0.4": float((sims >= 0.4).mean()) if len(sims) else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="gp-molformer-small-moses-analogs")
    parser.add_argument("--sources", required=True, help="candidates.csv of molfm optimize")
    parser.add_argument("--val-pairs", help="val_pairs.csv of molfm train gp-molformer-analogs")
    parser.add_argument("--n", type=int, default=20, help="samples per source")
    args = parser.parse_args()
    model, tok = load_smiles_model(args.model)
    model.float().eval()
    groups = {
        "held-out sources": pd.read_csv(args.sources)
        .drop_duplicates("source_index")["source"]
        .tolist()
    }
    if args.val_pairs:
        pairs = pd.read_csv(args.val_pairs)
        groups["validation-pair sources"] = pairs["source"].drop_duplicates().tolist()[:50]
    for name, sources in groups.items():
        print(name, analog_stats(model, tok, sources, args.n))


if __name__ == "__main__":
    main()
