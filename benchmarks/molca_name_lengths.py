"""Token lengths of the pubchem-names IUPAC names under SmolLM2's tokenizer, their longest
runs of locant tokens and their most repeated units: what the training cap
(``max_target_tokens``), the decoding cap (``max_new_tokens``) and the decoding guards
(``max_locant_run``, ``max_repeats``, ``max_tokens_per_atom``) must fit.

    python benchmarks/molca_name_lengths.py -o benchmarks/results/molca_name_lengths.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from molfm.systems.molca.data import pubchem_names_splits
from molfm.systems.molca.decoding import CAP_BASE, locant_token_ids
from molfm.systems.molca.lm import smollm2_path


def longest_run(ids: list[int], locants: set[int]) -> int:
    best = run = 0
    for token in ids:
        run = run + 1 if token in locants else 0
        best = max(best, run)
    return best


def most_repeats(ids: list[int], max_unit: int = 8) -> int:
    """The most copies in a row of one unit of 1 to ``max_unit`` tokens (what
    :class:`~molfm.systems.molca.decoding.RepeatLimit` counts)."""
    best = 1
    for unit in range(1, max_unit + 1):
        for start in range(len(ids) - 2 * unit + 1):
            copies, at = 1, start
            while ids[at : at + unit] == ids[at + unit : at + 2 * unit]:
                copies, at = copies + 1, at + unit
            best = max(best, copies)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_path())
    locants = set(locant_token_ids(tok))
    splits = pubchem_names_splits("iupac")
    report: dict = {"tokenizer": "smollm2", "locant_tokens": len(locants)}
    for name in ("train", "val", "test"):
        texts = getattr(splits, name).texts
        ids = tok(texts, add_special_tokens=False)["input_ids"]
        lengths = np.array([len(x) for x in ids])
        runs = np.array([longest_run(x, locants) for x in ids])
        repeats = np.array([most_repeats(x) for x in ids])
        atoms = np.array([graph.num_nodes for graph in getattr(splits, name).graphs])
        # + 1: the eos token the model must emit before the cap
        report[name] = {
            "n": len(texts),
            "tokens_mean": round(float(lengths.mean()), 1),
            "tokens_percentiles": {
                str(q): int(np.percentile(lengths, q)) for q in (50, 90, 99, 99.9, 100)
            },
            "share_over": {
                str(c): round(float((lengths + 1 > c).mean()), 5) for c in (64, 96, 128, 160, 192)
            },
            "locant_run_percentiles": {
                str(q): int(np.percentile(runs, q)) for q in (50, 99, 99.9, 100)
            },
            "repeat_percentiles": {
                str(q): int(np.percentile(repeats, q)) for q in (50, 99, 99.9, 100)
            },
            "most_repeated": texts[int(repeats.argmax())],
            # names (eos included) over a cap of X * heavy atoms + CAP_BASE tokens
            "over_atom_cap": {
                str(x): int((lengths + 1 > np.ceil(x * atoms) + CAP_BASE).sum())
                for x in (2, 3, 4, 5, 6, 7)
            },
            # tokens per heavy atom past CAP_BASE: where a soft cap (a length penalty) starts
            "tokens_per_atom_percentiles": {
                str(q): round(float(np.percentile((lengths + 1 - CAP_BASE) / atoms, q)), 2)
                for q in (50, 90, 99, 99.9, 100)
            },
            "longest": texts[int(lengths.argmax())],
        }
    Path(args.output).write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
