"""Recurrent linear-attention sampling (molfm GP-MoLFormer) vs a Hugging Face GPT-2 with a
KV cache: throughput and memory per sequence, same size, same batch, same length, same run.

Both models get random weights of the same shape (n_layer, n_head, n_embd, FFN, vocab);
throughput does not depend on the weight values because every sequence is forced to the
same length (end-of-sequence is banned for both), so both do exactly the same number of
decoding steps. GPT-2 is run two ways: ``generate()`` (what users call) and a hand-written
loop over ``past_key_values`` (no generation-utility overhead, the fairest lower bound).

Memory per sequence is measured directly: the bytes of molfm's recurrent state
``(S, z)`` per sequence, and the bytes of GPT-2's ``past_key_values`` per sequence after
``length`` tokens, at several lengths (the first is constant, the second grows linearly).

Usage::

    python benchmarks/sampling.py --batch-size 128 --lengths 64 128 --threads 2 \\
        --out benchmarks/results/sampling.json

``--profile`` adds, per length, each model's top operators (printed) and the share of its
operator time spent in the weight projections (``addmm``/``mm``; the same GEMMs in both models) and the speed-up molfm could
reach over ``generate()`` if it spent time on nothing else (an Amdahl bound).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

try:
    from transformers import GPT2Config, GPT2LMHeadModel
except ModuleNotFoundError as err:  # an extra, not a core dependency
    raise SystemExit(
        f'{sys.argv[0]}: needs {err.name!r}, from the benchmark extra: pip install -e ".[bench]"'
    ) from None

from molfm.systems.gp_molformer.model import GPMoLFormer, GPMoLFormerConfig
from molfm.systems.gp_molformer.sampling import sample_ids


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def kv_cache_tensors(past) -> list[torch.Tensor]:
    """Every key/value tensor of a transformers cache object or legacy tuple."""
    if hasattr(past, "layers"):  # transformers >= 4.56 DynamicCache
        out = []
        for layer in past.layers:
            out += [layer.keys, layer.values]
        return out
    if hasattr(past, "key_cache"):
        return list(past.key_cache) + list(past.value_cache)
    return [t for layer in past for t in layer]


@torch.inference_mode()
def gpt2_manual(model: GPT2LMHeadModel, batch: int, length: int, bos: int, eos: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    token = torch.full((batch, 1), bos, dtype=torch.long)
    out = model(input_ids=token, use_cache=True)
    past = out.past_key_values
    for _ in range(length - 1):
        logits = out.logits[:, -1].float()
        logits[:, eos] = float("-inf")
        token = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
        out = model(input_ids=token, past_key_values=past, use_cache=True)
        past = out.past_key_values
    return past


def gpt2_like(cfg: GPMoLFormerConfig) -> GPT2LMHeadModel:
    """A Hugging Face GPT-2 (random weights, no dropout) of the same shape as a GP-MoLFormer
    config: layers, heads, width, FFN, vocabulary, length limit and special tokens."""
    return GPT2LMHeadModel(
        GPT2Config(
            vocab_size=cfg.vocab_size,
            n_positions=cfg.max_length,
            n_embd=cfg.n_embd,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            n_inner=cfg.ffn_dim,
            bos_token_id=cfg.bos_id,
            eos_token_id=cfg.eos_id,
            pad_token_id=cfg.pad_id,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            tie_word_embeddings=False,
        )
    )


def projection_share(fn, name: str = "") -> float:
    """Fraction of ``fn``'s operator time spent in weight GEMMs (``addmm``/``mm``: the QKV,
    output, FFN and LM-head projections), from one run under ``torch.profiler``; the run's
    top operators are printed under ``name``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    print(f"--- {name}: top operators by self CPU time")
    print(events.table(sort_by="self_cpu_time_total", row_limit=12))
    total = sum(e.self_cpu_time_total for e in events)
    gemm = sum(e.self_cpu_time_total for e in events if e.key in ("aten::addmm", "aten::mm"))
    return gemm / total


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=256)
    parser.add_argument("--ffn-dim", type=int, default=512)
    parser.add_argument("--vocab-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also report the share of time in the weight projections (Amdahl bound)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sampling.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)

    cfg = GPMoLFormerConfig(
        vocab_size=args.vocab_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        ffn_dim=args.ffn_dim,
        dropout=0.0,
        max_length=max(args.lengths) + 1,
        lm_head="linear",
    )
    molfm_model = GPMoLFormer(cfg).to(device).eval()
    gpt2 = gpt2_like(cfg).to(device).eval()
    params = {
        "molfm": sum(p.numel() for p in molfm_model.parameters()),
        "gpt2": sum(p.numel() for p in gpt2.parameters()),
    }
    banned = [cfg.pad_id, cfg.bos_id, cfg.eos_id]
    b = args.batch_size
    rows = []
    for length in args.lengths:

        def run_molfm(length=length):
            ids, truncated = sample_ids(
                molfm_model,
                b,
                batch_size=b,
                max_length=length,
                banned_ids=banned,
                seed=0,
                device=device,
            )
            assert all(truncated) and all(len(x) == length for x in ids)

        def run_gpt2_generate(length=length):
            bos = torch.full((b, 1), cfg.bos_id, dtype=torch.long, device=device)
            out = gpt2.generate(
                input_ids=bos,
                attention_mask=torch.ones_like(bos),
                do_sample=True,
                top_k=0,
                max_new_tokens=length - 1,
                min_new_tokens=length - 1,
                use_cache=True,
                pad_token_id=cfg.pad_id,
            )
            assert out.shape == (b, length)

        def run_gpt2_manual(length=length):
            gpt2_manual(gpt2, b, length, cfg.bos_id, cfg.eos_id, seed=0)

        run_molfm(), run_gpt2_manual()  # warm-up
        t_molfm = timed(run_molfm, args.repeats)
        t_generate = timed(run_gpt2_generate, args.repeats)
        t_manual = timed(run_gpt2_manual, args.repeats)
        state_bytes = tensor_bytes(
            t for pair in molfm_model.init_state(b, device=device) for t in pair
        )
        kv_bytes = tensor_bytes(
            kv_cache_tensors(gpt2_manual(gpt2, b, length, cfg.bos_id, cfg.eos_id, seed=0))
        )
        row = {
            "length": length,
            "batch_size": b,
            "molfm_mol_per_s": b / t_molfm,
            "gpt2_generate_mol_per_s": b / t_generate,
            "gpt2_manual_kv_mol_per_s": b / t_manual,
            "speedup_vs_gpt2_generate": t_generate / t_molfm,
            "speedup_vs_gpt2_manual_kv": t_manual / t_molfm,
            "molfm_state_bytes_per_seq": state_bytes / b,
            "gpt2_kv_cache_bytes_per_seq": kv_bytes / b,
        }
        if args.profile:
            # Both models run the same projections; if molfm spent time on nothing else, the
            # speed-up over generate() could be at most t_generate / (share * t_molfm).
            share_molfm = projection_share(run_molfm, f"molfm, {length} tokens")
            share_gpt2 = projection_share(run_gpt2_manual, f"GPT-2 KV loop, {length} tokens")
            row |= {
                "molfm_projection_share": share_molfm,
                "gpt2_manual_projection_share": share_gpt2,
                "speedup_bound_vs_generate": t_generate / (share_molfm * t_molfm),
            }
        rows.append(row)
        print(json.dumps(row, indent=2))
    result = {
        "device": str(device),
        "threads": args.threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "params": params,
        "config": vars(args) | {"out": str(args.out)},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
