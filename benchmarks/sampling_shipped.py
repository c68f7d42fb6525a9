"""Real sampling with a GP-MoLFormer checkpoint: molecules/s, a fingerprint of the molecules,
validity, truncations and why the invalid ones are invalid.

Run it at two commits back to back (``PYTHONPATH`` at each tree) for an A/B: the MD5 of the
samples says whether a change kept the molecules, the rest what it did to speed or validity.

Usage::

    git worktree add /tmp/before <commit>
    for tree in /tmp/before .; do PYTHONPATH=$tree python benchmarks/sampling_shipped.py \\
        --n 2000 --batch-size 500 --threads 1; done
    # with the syntax mask, 2 x 10,000 samples of a given checkpoint directory
    ... --model <dir> --n 10000 --batch-size 500 --threads 2 --syntax-mask --seeds 11 12
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections import Counter

import torch

import molfm
from molfm.chem.parse import mol_or_none
from molfm.systems.gp_molformer import DEFAULT_SMILES_MODEL
from molfm.systems.gp_molformer.model import load_smiles_model
from molfm.systems.gp_molformer.sampling import sample


def invalid_counts(smiles: list[str]) -> dict[str, int]:
    """Invalid kinds via molfm.eval.validity where the tree has it (older trees do not)."""
    try:
        from molfm.eval.validity import invalid_breakdown
    except ImportError:
        return {"invalid": sum(mol_or_none(s) is None for s in smiles)}
    return invalid_breakdown(smiles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_SMILES_MODEL)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per seed (best)")
    parser.add_argument("--syntax-mask", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_smiles_model(args.model)
    model = model.float()
    kwargs = dict(batch_size=args.batch_size, syntax_mask=args.syntax_mask)
    sample(model, tokenizer, min(args.n, args.batch_size), seed=1, **kwargs)  # warm-up
    best, samples, truncated = float("inf"), [], 0
    for seed in args.seeds:
        for _ in range(args.repeats):
            start = time.perf_counter()
            got = sample(model, tokenizer, args.n, seed=seed, **kwargs)
            best = min(best, time.perf_counter() - start)
        samples += list(got)
        truncated += got.n_truncated
    counts = Counter(invalid_counts(samples))
    result = {
        "molfm": molfm.__file__,
        "model": args.model,
        "molecules_per_s": args.n / best,
        "md5": hashlib.md5("\n".join(samples).encode()).hexdigest(),
        "n": len(samples),
        "validity": 1 - sum(counts.values()) / len(samples),
        "truncated": truncated,
        "invalid": dict(counts),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
