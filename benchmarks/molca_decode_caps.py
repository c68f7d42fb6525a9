"""Does decoding end before the cap? Beam search of a seeded random pubchem-names test sample
with the shipped naming model, with and without the decoding guards, every beam kept.

For each setting it reports how many best beams, and how many beams of all, end at the
``--max-new-tokens`` cap (their SmolLM2 token count reaches it), how many end past the soft
cap of the length penalty, the longest locant run (digits, commas, hyphens, as the guard counts
them) among the best beams, the OPSIN parse and exact-structure rates of the best beams and of
any beam, and the seconds taken. The sample is the one the GPU command names
(``sample_test_pairs`` with ``--data-seed``), so the same molecules::

    OMP_NUM_THREADS=2 python benchmarks/molca_decode_caps.py --n 32 \\
        -o benchmarks/results/molca_decode_caps.json

A setting is ``LOCANT_RUN:REPEATS[:TOKENS_PER_ATOM[:SOFT_CAP_PER_ATOM[:SOFT_CAP_RATE]]]``
(``--max-locant-run``, ``--max-repeats``, ``--max-tokens-per-atom``, ``--soft-cap-per-atom``,
``--soft-cap-rate``; 0 is off). A beam "at the cap" reaches ``--max-new-tokens``, or its
molecule's own cap when there is one. ``--predictions DIR`` keeps every beam of every setting.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="molca-small-pubchem-names")
    p.add_argument("--n", type=int, default=32, help="test molecules, drawn at random")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--num-beams", type=int, default=5)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument(
        "--settings",
        default="0:0,48:0,48:20,48:20:6,48:20:6:3:1",
        help="LOCANT_RUN:REPEATS[:TOKENS_PER_ATOM[:SOFT_CAP_PER_ATOM[:SOFT_CAP_RATE]]] (0: off)",
    )
    p.add_argument("--predictions", help="folder for one CSV of every beam per setting")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args()

    import pandas as pd
    from molca_name_lengths import longest_run

    from molfm.eval.text import check_beams
    from molfm.hub import from_pretrained, resolve_checkpoint
    from molfm.systems.molca.data import pubchem_names_splits
    from molfm.systems.molca.decoding import (
        beam_endings,
        locant_token_ids,
        molecule_caps,
        soft_caps,
    )
    from molfm.systems.molca.evaluate import generate_texts, sample_test_pairs

    model = from_pretrained(resolve_checkpoint(args.model)).merge_lora().eval()
    pairs = sample_test_pairs(pubchem_names_splits("iupac").test, args.n, args.data_seed)
    tokenizer = model.tokenizer
    locants = set(locant_token_ids(tokenizer))
    report: dict = {"args": vars(args), "torch": torch.__version__, "settings": {}}
    for setting in args.settings.split(","):
        fields = [float(x) for x in setting.split(":")]
        defaults = [0.0, 0.0, 0.0, 0.0, 1.0]  # the last: molfm's default soft-cap rate
        locant_run, repeats, per_atom, soft, rate = fields + defaults[len(fields) :]
        locant_run, repeats = int(locant_run), int(repeats)
        caps = [args.max_new_tokens] * len(pairs)
        if per_atom > 0:
            caps = molecule_caps(pairs.smiles, per_atom, args.max_new_tokens).tolist()
        starts = [args.max_new_tokens] * len(pairs)
        if soft > 0:
            starts = soft_caps(pairs.smiles, soft, args.max_new_tokens).tolist()
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
            soft_cap_per_atom=soft,
            soft_cap_rate=rate,
        )
        seconds = time.perf_counter() - started
        ids = [[tokenizer(text)["input_ids"] for text in row] for row in beams]
        lengths = [[len(x) for x in row] for row in ids]
        key = (
            f"max_locant_run={locant_run},max_repeats={repeats},max_tokens_per_atom={per_atom:g}"
            + (f",soft_cap_per_atom={soft:g},soft_cap_rate={rate:g}" if soft > 0 else "")
        )
        checks = check_beams(beams, pairs.smiles)  # one OPSIN run for every beam
        n = len(beams)
        report["settings"][key] = {
            "molecules": n,
            "seconds": round(seconds, 1),
            **beam_endings(
                lengths,
                pairs.smiles,
                max_new_tokens=args.max_new_tokens,
                max_tokens_per_atom=per_atom,
                soft_cap_per_atom=soft,
            ),
            "beams": sum(len(row) for row in lengths),
            "mean_cap": round(sum(caps) / n, 1),
            "mean_soft_cap": round(sum(starts) / n, 1) if soft > 0 else None,
            "beam0_tokens_mean": round(sum(row[0] for row in lengths) / n, 1),
            "beam0_tokens_max": max(row[0] for row in lengths),
            "beam0_longest_locant_run": max(longest_run(row[0], locants) for row in ids),
            "beam0_opsin_parse_rate": sum(row[0].parses for row in checks) / n,
            "beam0_opsin_exact_rate": sum(row[0].same_structure for row in checks) / n,
            "any_beam_opsin_parse_rate": sum(any(c.parses for c in row) for row in checks) / n,
            "any_beam_opsin_exact_rate": sum(any(c.same_structure for c in row) for row in checks)
            / n,
            "examples": [row[0] for row in beams[:3]],
        }
        if args.predictions:
            frame = pd.DataFrame({"id": pairs.ids, "smiles": pairs.smiles, "target": pairs.texts})
            for k in range(args.num_beams):
                frame[f"beam_{k}"] = [row[k] if k < len(row) else "" for row in beams]
            Path(args.predictions).mkdir(parents=True, exist_ok=True)
            frame.to_csv(Path(args.predictions) / f"{setting.replace(':', '_')}.csv", index=False)
        Path(args.output).write_text(json.dumps(report, indent=1))
        print(json.dumps({k: v for k, v in report["settings"].items()}, indent=1), flush=True)


if __name__ == "__main__":
    main()
