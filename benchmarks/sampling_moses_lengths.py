"""Sampling throughput at real MOSES lengths: the shipped GP-MoLFormer vs a Hugging Face GPT-2
of the same shape, every molecule the same length in both.

``benchmarks/sampling.py`` bans end-of-sequence so both models decode a fixed length. Real
sampling stops at ``<eos>``, and molecules of one batch finish at different steps. Here:

1. the shipped molfm model samples ``n`` molecules for real (seed 0, temperature 1, its own
   ``<eos>``) and the length of every molecule is recorded;
2. a GPT-2 of the same shape (layers, heads, width, FFN, vocabulary; random weights) decodes
   the same batches with each row forced to end with ``<eos>`` at exactly that row's molfm
   length (and banned from ending earlier), so both do the same useful work:
   * ``generate()`` with a logits processor (what users call; finished rows are padded
     until the longest row of the batch is done, Hugging Face's behaviour);
   * a hand-written KV-cache loop that drops finished rows from the cache as they finish
     (``DynamicCache.batch_select_indices``), the strongest GPT-2 baseline.

Usage::

    python benchmarks/sampling_moses_lengths.py --n 1024 --batch-size 128 --threads 1 \\
        --out benchmarks/results/sampling_moses_lengths.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path

import torch

try:
    from sampling import gpt2_like, timed  # benchmarks/sampling.py
    from transformers import LogitsProcessor, LogitsProcessorList
except ModuleNotFoundError as err:  # an extra, not a core dependency
    raise SystemExit(
        f'{sys.argv[0]}: needs {err.name!r}, from the benchmark extra: pip install -e ".[bench]"'
    ) from None

from molfm.systems.gp_molformer import DEFAULT_SMILES_MODEL
from molfm.systems.gp_molformer.model import load_smiles_model
from molfm.systems.gp_molformer.sampling import sample_ids


class ForceLengths(LogitsProcessor):
    """Row ``i`` emits ``eos`` as its ``lengths[i]``-th token (``<bos>`` counted), never
    before; rows with ``lengths[i] == 0`` never end (truncated in molfm)."""

    def __init__(self, lengths: torch.Tensor, eos: int) -> None:
        self.lengths, self.eos = lengths, eos

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        ends_now = self.lengths == input_ids.shape[1] + 1  # the next token is the last one
        scores[:, self.eos] = float("-inf")
        scores[ends_now] = float("-inf")
        scores[ends_now, self.eos] = 0.0
        return scores


@torch.inference_mode()
def gpt2_dropping_rows(model, lengths: torch.Tensor, bos: int, eos: int, seed: int) -> int:
    """KV-cache loop that removes each row from the batch and the cache once it has its
    length; returns the number of tokens decoded."""
    generator = torch.Generator().manual_seed(seed)
    target = lengths.clone()
    token = torch.full((len(target), 1), bos, dtype=torch.long)
    out = model(input_ids=token, use_cache=True)
    past, decoded, length = out.past_key_values, len(target), 1
    while True:
        logits = out.logits[:, -1].float()
        logits[:, eos] = float("-inf")
        token = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
        length += 1
        decoded += len(target)
        keep = (target != length).nonzero().squeeze(1)  # rows ending now (with eos) leave
        if len(keep) == 0:
            return decoded
        if len(keep) < len(target):
            past.batch_select_indices(keep)
            target, token = target[keep], token[keep]
        out = model(input_ids=token, past_key_values=past, use_cache=True)
        past = out.past_key_values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_SMILES_MODEL)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/sampling_moses_lengths.json")
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)

    model, _ = load_smiles_model(args.model)
    model = model.float().to(device).eval()
    cfg = model.config
    gpt2 = gpt2_like(cfg).to(device).eval()

    def run_molfm():
        return sample_ids(model, args.n, batch_size=args.batch_size, seed=0, device=device)

    ids, truncated = run_molfm()  # also the warm-up
    lengths = torch.tensor([0 if t else len(r) for r, t in zip(ids, truncated, strict=True)])
    batches = lengths.split(args.batch_size)

    def run_generate():
        for target in batches:
            bos = torch.full((len(target), 1), cfg.bos_id, dtype=torch.long, device=device)
            out = gpt2.generate(
                input_ids=bos,
                attention_mask=torch.ones_like(bos),
                do_sample=True,
                top_k=0,
                max_new_tokens=cfg.max_length - 1,
                logits_processor=LogitsProcessorList([ForceLengths(target.to(device), cfg.eos_id)]),
                pad_token_id=cfg.pad_id,
                eos_token_id=cfg.eos_id,
            )
            expected = int(target.max()) if bool((target > 0).all()) else cfg.max_length
            assert out.shape[1] == expected, (out.shape, expected)

    def run_dropping():
        for target in batches:
            target = torch.where(target > 0, target, cfg.max_length)
            gpt2_dropping_rows(gpt2, target, cfg.bos_id, cfg.eos_id, seed=0)

    run_generate(), run_dropping()  # warm-up (and length checks)
    t_molfm = timed(run_molfm, args.repeats)
    t_generate = timed(run_generate, args.repeats)
    t_dropping = timed(run_dropping, args.repeats)
    real = [int(x) for x in lengths if x > 0]
    result = {
        "device": str(device),
        "threads": args.threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "model": args.model,
        "n": args.n,
        "batch_size": args.batch_size,
        "params": {
            "molfm": sum(p.numel() for p in model.parameters()),
            "gpt2": sum(p.numel() for p in gpt2.parameters()),
        },
        "molfm_length_tokens": {
            "mean": statistics.mean(real),
            "min": min(real),
            "max": max(real),
            "truncated": int(sum(truncated)),
        },
        "molfm_mol_per_s": args.n / t_molfm,
        "gpt2_generate_mol_per_s": args.n / t_generate,
        "gpt2_kv_loop_dropping_rows_mol_per_s": args.n / t_dropping,
        "speedup_vs_gpt2_generate": t_generate / t_molfm,
        "speedup_vs_gpt2_kv_loop_dropping_rows": t_dropping / t_molfm,
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
