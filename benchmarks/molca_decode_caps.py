"""Does decoding end before the cap? Beam search of a seeded random pubchem-names test sample
with the shipped naming model, with and without the decoding guards, every beam kept.

For each setting it reports how many best beams, and how many beams of all, end at the
``--max-new-tokens`` cap (their SmolLM2 token count reaches it), the longest locant run (digit
and comma tokens in a row) among the best beams, and the seconds taken. The sample is the one
the GPU command names (``sample_test_pairs`` with ``--data-seed``), so the same molecules::

    OMP_NUM_THREADS=2 python benchmarks/molca_decode_caps.py --n 32 \\
        -o benchmarks/results/molca_decode_caps.json

A setting is ``LOCANT_RUN:REPEATS[:TOKENS_PER_ATOM]`` (``--max-locant-run``,
``--max-repeats``, ``--max-tokens-per-atom``; 0 is off). A beam "at the cap" reaches
``--max-new-tokens``, or its molecule's own cap when there is one.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def longest_locant_run(tokens: list[str]) -> int:
    """The longest run of tokens made of digits and commas only."""
    longest = run = 0
    for token in tokens:
        text = token.strip()
        run = run + 1 if text and set(text) <= set("0123456789,") else 0
        longest = max(longest, run)
    return longest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="molca-small-pubchem-names")
    p.add_argument("--n", type=int, default=32, help="test molecules, drawn at random")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--num-beams", type=int, default=5)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument(
        "--settings",
        default="0:0,48:0,48:20,48:20:6",
        help="LOCANT_RUN:REPEATS[:TOKENS_PER_ATOM] (0: guard off)",
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args()

    from molfm.hub import from_pretrained, resolve_checkpoint
    from molfm.systems.molca.data import pubchem_names_splits
    from molfm.systems.molca.decoding import molecule_caps
    from molfm.systems.molca.evaluate import generate_texts, sample_test_pairs

    model = from_pretrained(resolve_checkpoint(args.model)).merge_lora().eval()
    pairs = sample_test_pairs(pubchem_names_splits("iupac").test, args.n, args.data_seed)
    tokenizer = model.tokenizer
    report: dict = {"args": vars(args), "torch": torch.__version__, "settings": {}}
    for setting in args.settings.split(","):
        locant_run, repeats, per_atom = (float(x) for x in (setting + ":0").split(":")[:3])
        locant_run, repeats = int(locant_run), int(repeats)
        caps = [args.max_new_tokens] * len(pairs)
        if per_atom > 0:
            caps = molecule_caps(pairs.smiles, per_atom, args.max_new_tokens).tolist()
        started = time.perf_counter()
        beams = generate_texts(
            model,
            pairs,
            "iupac",
            batch_size=args.batch_size,
            num_beams=args.num_beams,
            num_return_sequences=args.num_beams,
            max_new_tokens=args.max_new_tokens,
            max_locant_run=locant_run,
            max_repeats=repeats,
            max_tokens_per_atom=per_atom,
        )
        seconds = time.perf_counter() - started
        lengths = [[len(tokenizer(text)["input_ids"]) for text in row] for row in beams]
        best = [tokenizer.convert_ids_to_tokens(tokenizer(row[0])["input_ids"]) for row in beams]
        key = f"max_locant_run={locant_run},max_repeats={repeats},max_tokens_per_atom={per_atom:g}"
        # the global cap stops a beam at max_new_tokens tokens; a molecule's cap makes its
        # last token the end of sequence, so its text stops one token short
        reach = [cap - 1 if per_atom > 0 else cap for cap in caps]
        at_cap = [[n >= r for n in row] for row, r in zip(lengths, reach, strict=True)]
        report["settings"][key] = {
            "molecules": len(beams),
            "seconds": round(seconds, 1),
            "beam0_at_cap": sum(row[0] for row in at_cap),
            "beams_at_cap": sum(sum(row) for row in at_cap),
            "mean_cap": round(sum(caps) / len(caps), 1),
            "beams": sum(len(row) for row in lengths),
            "beam0_tokens_max": max(row[0] for row in lengths),
            "beam0_longest_locant_run": max(longest_locant_run(tokens) for tokens in best),
            "examples": [row[0] for row in beams[:3]],
        }
        Path(args.output).write_text(json.dumps(report, indent=1))
        print(json.dumps({k: v for k, v in report["settings"].items()}, indent=1), flush=True)


if __name__ == "__main__":
    main()
