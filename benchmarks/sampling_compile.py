"""Does ``torch.compile`` speed up GP-MoLFormer's recurrent step? (benchmarks/RESULTS.md §5)

Decodes ``--length`` tokens for a batch of ``--batch-size`` sequences with the eager
``model.step`` and with ``torch.compile(model.step)`` (same random-weight 4x256 model as
benchmarks/sampling.py), best of two runs each after one warm-up/compile run, and checks that
both give the same logits. The position is passed as a 0-d tensor: an int would be
specialized and recompile at every token.

    python benchmarks/sampling_compile.py --batch-size 128 --length 64 --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch

from molfm.systems.gp_molformer.model import GPMoLFormer, GPMoLFormerConfig


@torch.inference_mode()
def decode_seconds(model: GPMoLFormer, step, batch: int, length: int) -> float:
    state = model.init_state(batch)
    token = torch.zeros(batch, dtype=torch.long)
    start = time.perf_counter()
    for position in range(length):
        logits, state = step(token, torch.tensor(position), state, inplace=True)
        token = torch.multinomial(torch.softmax(logits.float(), -1), 1).squeeze(-1)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = GPMoLFormerConfig(
        vocab_size=64, n_layer=4, n_head=4, n_embd=256, ffn_dim=512, dropout=0.0,
        max_length=args.length + 1, lm_head="linear",
    )  # fmt: skip
    model = GPMoLFormer(config).eval()
    b, n = args.batch_size, args.length
    eager = min(decode_seconds(model, model.step, b, n) for _ in range(2))
    compiled_step = torch.compile(model.step, dynamic=False)
    start = time.perf_counter()
    decode_seconds(model, compiled_step, b, n)
    compile_s = time.perf_counter() - start
    compiled = min(decode_seconds(model, compiled_step, b, n) for _ in range(2))
    with torch.inference_mode():
        tokens = torch.arange(b) % 60 + 4
        a_state, b_state = model.init_state(b), model.init_state(b)
        for position in range(5):
            a, a_state = model.step(tokens, position, a_state)
            c, b_state = compiled_step(tokens, torch.tensor(position), b_state, inplace=True)
    print(
        f"eager {eager:.3f} s, compiled {compiled:.3f} s ({eager / compiled:.2f}x; first run with "
        f"compilation {compile_s:.1f} s), max logit difference {(a - c).abs().max().item():.1e}"
    )


if __name__ == "__main__":
    main()
