"""MolCA's naming training step, before and after the step work: launched operations and time.

One configuration per call; the "before" one runs the code of another checkout (the commit
before the change, extracted with ``git archive``) through ``PYTHONPATH``, so it measures that
code, not an imitation of it. Each call trains the same pubchem-names training pairs (a seeded
sample of ``--pool`` pairs) for ``--steps`` optimizer steps of ``--batch-size`` and reports:

* ``ops_forward_backward``: aten operations dispatched by one forward + backward (views,
  allocations and other metadata-only operations excluded: they launch nothing), counted with
  a ``TorchDispatchMode``; on a GPU each is about one kernel launch;
* ``ops_optimizer``: the same for one AdamW step, ``foreach=True`` (CUDA's default) or with
  ``--fused-adamw``;
* ``syncs``: operations among them that read a value back to the host (on a GPU the CPU
  waits): ``.item()``/``.any()`` checks, boolean-mask indexing, ``masked_scatter``;
* ``molecules_per_s`` over the timed steps (after one warm-up step), and the padding share.

::

    git archive <before-commit> molfm | tar -x -C /tmp/molfm_before
    PYTHONPATH=/tmp/molfm_before python benchmarks/molca_step.py --label before --legacy \\
        --lora-dropout 0.1 --random-batches -o runs/step_before.json
    python benchmarks/molca_step.py --label after -o runs/step_after.json

``--lm tiny`` (default) is a random Llama with SmolLM2's depth (30 layers, so the same
operation count) and a small width; ``--lm smollm2`` the real one.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

SYNCING = {
    "_local_scalar_dense",
    "nonzero",
    "masked_select",
    "item",
    "is_nonzero",
    "index(bool)",
    "masked_scatter",  # on CUDA it counts the mask first
}
# metadata or allocation only: no kernel runs
NO_KERNEL = {"_unsafe_view", "empty", "empty_like", "empty_strided", "detach", "lift_fresh"}
LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TARGETS = {"all": LLAMA_TARGETS, "attention": LLAMA_TARGETS[:4], "qv": ["q_proj", "v_proj"]}


class OpCounter(TorchDispatchMode):
    """Counts dispatched aten operations that are not views."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view and func.overloadpacket.__name__ not in NO_KERNEL:
            name = func.overloadpacket.__name__
            if name == "index" and any(
                isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1] or ()
            ):
                name = "index(bool)"  # a boolean mask: its size is read back first
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--label", required=True)
    p.add_argument("--lm", default="tiny", help="tiny (SmolLM2's depth, small width) or smollm2")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=6, help="timed steps (after one warm-up)")
    p.add_argument("--pool", type=int, default=512, help="training pairs to draw batches from")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-dropout", type=float, default=0.0)
    p.add_argument("--lora-targets", default="all", choices=tuple(TARGETS))
    p.add_argument("--random-batches", action="store_true", help="no length grouping")
    p.add_argument("--legacy", action="store_true", help="code without batching.py (before)")
    p.add_argument("--fused-adamw", action="store_true", help="AdamW(fused=True)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("-o", "--output", required=True)
    return p.parse_args()


def build_model(args, work: Path):
    from molfm.systems.molca.lm import tiny_llama, tiny_tokenizer
    from molfm.systems.molca.model import MolCA, MolCAConfig

    lm = "smollm2"
    if args.lm == "tiny":
        path = work / "tiny30"
        if not (path / "config.json").exists():
            tok = tiny_tokenizer()
            tiny_llama(tok, num_hidden_layers=30, pad_token_id=None).save_pretrained(path)
            tok.save_pretrained(path)
        lm = str(path)
    tuning = {
        "mode": "lora",
        "r": args.lora_r,
        "alpha": 2 * args.lora_r,
        "dropout": args.lora_dropout,
        "target_modules": TARGETS[args.lora_targets],
    }
    config = MolCAConfig(lm=lm, lm_tuning=tuning, qformer={"num_layers": 2})  # shipped shape
    return MolCA.build(config)


def batches(args, model, pairs) -> list:
    """The batches of one pass over ``pairs``: random, or grouped by length (new code)."""
    from molfm.systems.molca.data import collate_mol_text

    n = len(pairs) // args.batch_size * args.batch_size
    if args.legacy or args.random_batches:
        order = np.random.default_rng(0).permutation(len(pairs))[:n]
    else:
        from molfm.systems.molca.batching import LengthGroupedSampler, tokenize_pairs

        tokenized = tokenize_pairs(model, pairs, "iupac")
        order = LengthGroupedSampler(tokenized.lengths, args.batch_size, seed=0).order()[:n]
    chunks = [order[i : i + args.batch_size] for i in range(0, n, args.batch_size)]
    if args.legacy:
        return [collate_mol_text([pairs[int(i)] for i in chunk]) for chunk in chunks]
    from molfm.systems.molca.batching import PromptCollate

    collate = PromptCollate(model.tokenizer.pad_token_id, model.num_graph_tokens)
    # tokenized once for the run, as train_molca does; the collate pads in the loader
    return [collate([tokenized[int(i)] for i in chunk]) for chunk in chunks]


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    from molfm.systems.molca.data import pubchem_names_splits
    from molfm.systems.molca.splits import subset

    work = Path(args.output).resolve().parent
    work.mkdir(parents=True, exist_ok=True)
    train = pubchem_names_splits("iupac").train
    pick = np.sort(np.random.default_rng(0).permutation(len(train))[: args.pool])
    pairs = subset(train, pick)
    model = build_model(args, work)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    kind = {"fused": True} if args.fused_adamw else {"foreach": True}
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05, **kind)
    started = time.perf_counter()
    # legacy: the step tokenizes, so batches are only collated here (graphs + texts)
    all_batches = batches(args, model, pairs)
    prepare_s = time.perf_counter() - started
    tok = model.tokenizer
    instruction = model.config.instruction("iupac")

    def padding(batch) -> tuple[int, int]:
        prompt = getattr(batch, "prompt", None)
        if prompt is None:
            prompt = model.prompts(batch.smiles, instruction, batch.texts)
        mask = prompt.attention_mask
        return int(mask.sum()), mask.numel()

    def step(batch) -> float:
        loss = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(loss)

    step(all_batches[0])  # warm-up
    with OpCounter() as fwd_bwd:
        loss = model.loss(all_batches[1])
        optimizer.zero_grad()
        loss.backward()
    with OpCounter() as opt:
        optimizer.step()
    timed = all_batches[2 : 2 + args.steps]
    real = padded = 0
    t0, cpu0 = time.perf_counter(), time.process_time()
    for batch in timed:
        step(batch)
        r, p = padding(batch)
        real, padded = real + r, padded + p
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    trainable = sum(p.numel() for p in params)
    report = {
        "label": args.label,
        "args": vars(args),
        "torch": torch.__version__,
        "trainable_parameters": trainable,
        "ops_forward_backward": sum(fwd_bwd.ops.values()),
        "ops_optimizer": sum(opt.ops.values()),
        "ops_total": sum(fwd_bwd.ops.values()) + sum(opt.ops.values()),
        "syncs": {k: v for k, v in fwd_bwd.ops.items() if k in SYNCING},
        "top_ops": dict(fwd_bwd.ops.most_common(12)),
        "timed_steps": len(timed),
        "molecules": len(timed) * args.batch_size,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "molecules_per_s": round(len(timed) * args.batch_size / wall, 3),
        # CPU time: less sensitive than wall time to other jobs on a shared machine
        "molecules_per_cpu_s": round(len(timed) * args.batch_size / cpu, 3),
        "padding_share": round(1 - real / padded, 3),
        "prepare_s": round(prepare_s, 2),
        "tokenizer": type(tok).__name__,
    }
    Path(args.output).write_text(json.dumps(report, indent=1))
    keep = ("ops_forward_backward", "ops_optimizer", "syncs", "molecules_per_cpu_s")
    print(json.dumps({k: report[k] for k in ("label", *keep, "padding_share")}))


if __name__ == "__main__":
    main()
