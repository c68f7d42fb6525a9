"""How similar is what a base model writes after ``<bos> A <eos>``, with no prompt at all?

Separates the base from the soft prompt in pair-tuning (benchmarks/RESULTS.md §9a): for each
source, 20 molecules are sampled after ``<bos> source <eos>`` with the library's target sampler
(positions restarting at 1, as in pair-tuning) and scored with RDKit (valid) and Morgan r=2
Tanimoto to the source.

    python benchmarks/analog_no_prompt.py --model gp-molformer-small-moses-analogs \\
        --sources benchmarks/results/optimize_qed_analogs/candidates.csv \\
        --val-pairs benchmarks/results/analogs_val_pairs.csv
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from molfm.models.registry import load_smiles_model
from molfm.tasks.pair_optimize import _sample_targets
from molfm.tasks.pairs import mol_or_none, tanimoto


@torch.inference_mode()
def analog_stats(model, tok, sources: list[str], n: int, seed: int = 0) -> dict[str, float]:
    banned = torch.tensor([tok.pad_id, tok.bos_id, tok.unk_id])
    generator = torch.Generator().manual_seed(seed)
    sims, total = [], 0
    for source in sources:
        state, logits = model.init_state(1), None
        for position, token in enumerate(tok.encode(source)):
            logits, state = model.step(torch.tensor([token]), position, state)
        outs, _ = _sample_targets(model, state, logits, 1, n, 100, banned, generator, {}, None)
        total += len(outs)
        mols = [mol_or_none(tok.decode(o)) for o in outs]
        sims += [tanimoto(source, mol) for mol in mols if mol is not None]
    sims_arr = np.asarray(sims)
    return {
        "valid": len(sims) / total,
        "similarity_mean": float(sims_arr.mean()) if len(sims) else float("nan"),
        "similarity_median": float(np.median(sims_arr)) if len(sims) else float("nan"),
        "fraction_similarity_ge_0.4": float((sims_arr >= 0.4).mean()) if len(sims) else 0.0,
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
