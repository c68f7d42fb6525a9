"""MolCA's naming training step, before and after the step work: launched operations and time.

One configuration per call; the "before" one runs the code of another checkout (the commit
before the change, extracted with ``git archive``) through ``PYTHONPATH``, so it measures that
code, not an imitation of it. Each call trains the same pubchem-names training pairs (a seeded
sample of ``--pool`` pairs) in steps of ``--batch-size`` and reports:

* ``ops_forward_backward``: aten operations dispatched by one forward + backward (views,
  allocations and other metadata-only operations excluded: they launch nothing), counted with
  a ``TorchDispatchMode``; on a GPU each is about one kernel launch;
* ``ops_optimizer``: the same for one AdamW step, ``foreach=True`` (CUDA's default) or with
  ``--fused-adamw``;
* ``syncs``: operations among them that read a value back to the host (on a GPU the CPU
  waits): ``.item()``/``.any()`` checks, boolean-mask indexing, ``masked_scatter``;
* ``launches_forward_backward``: kernels one forward + backward runs, from ``torch.profiler``,
  which also sees inside ``--compile``'s fused code (the dispatch count above cannot: a
  dispatch mode sends compiled code back to eager). On a GPU: the CUDA kernels, copies and
  fills it records. On a CPU: the outermost aten operations that do work (not views, no-op
  conversions or allocations; a composite such as ``linear`` counts once) plus each call of a
  C++ kernel that inductor generated;
* ``molecules_per_s`` over one timed pass over the whole pool (so every setting trains the
  same molecules: random and length-grouped batches hold different ones), after 3 warm-up
  steps on its first batches, and the padding share.

::

    git archive <before-commit> molfm | tar -x -C /tmp/molfm_before
    PYTHONPATH=/tmp/molfm_before python benchmarks/molca_step.py --label before --legacy \\
        --lora-dropout 0.1 --random-batches -o runs/step_before.json
    python benchmarks/molca_step.py --label after -o runs/step_after.json

``--lm tiny`` (default) is a random Llama with SmolLM2's depth (30 layers, so the same
operation count) and a small width; ``--lm smollm2`` the real one. ``--compile`` compiles what
``molfm train molca --compile`` does (``compiled_parts``); ``--device cuda --bf16`` is the
GPU run's setting (bf16 autocast, as ``--precision bf16-mixed``).
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


# metadata-only or allocation operations, as the profiler names them (it has no is_view flag)
PROFILER_NO_KERNEL = NO_KERNEL | {
    *("as_strided", "view", "transpose", "t", "expand", "expand_as", "reshape", "view_as"),
    *("unsqueeze", "squeeze", "select", "slice", "permute", "alias", "resolve_conj"),
    *("resolve_neg", "_reshape_alias", "unbind", "split", "split_with_sizes", "narrow"),
    *("unflatten", "flatten", "chunk", "contiguous", "result_type"),
    *("item", "_local_scalar_dense"),  # a read, counted among the syncs
}


def count_launches(fn, device: torch.device) -> Counter[str]:
    """Kernels that ``fn()`` runs (see the module docstring), by name."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return launches_in(prof.events(), cuda=device.type == "cuda")


def launches_in(events, cuda: bool) -> Counter[str]:
    """The kernels among a profile's ``events`` (``prof.events()``), by name: CUDA kernels,
    copies and fills on a GPU; on a CPU, see the module docstring."""
    from torch.autograd import DeviceType

    if cuda:
        return Counter(e.name for e in events if e.device_type == DeviceType.CUDA)
    children: Counter[int] = Counter()
    for e in events:
        if e.cpu_parent is not None and e.name.startswith("aten::"):
            children[id(e.cpu_parent)] += 1

    def works(e) -> bool:
        if "cpp_fused" in e.name:  # inductor's C++ kernels (cpp.enable_kernel_profile)
            return True
        op = e.name.removeprefix("aten::")
        if op == e.name or op in PROFILER_NO_KERNEL:
            return False
        return op != "to" or children[id(e)] > 0  # a `to` without a copy changes nothing

    launches: Counter[str] = Counter()
    for e in events:
        if not works(e):
            continue
        parent = e.cpu_parent
        while parent is not None and not works(parent):
            parent = parent.cpu_parent
        if parent is None:  # outermost: what it runs inside is counted with it
            launches["inductor kernel" if "cpp_fused" in e.name else e.name[6:]] += 1
    return launches


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
    p.add_argument(
        "--lm", default="tiny", help="tiny (SmolLM2's depth, small width), smollm2 or a folder"
    )
    p.add_argument("--data-path", default=None, help="a SMILES,text CSV instead of pubchem-names")
    p.add_argument("--batch-size", type=int, default=8)

    p.add_argument("--pool", type=int, default=512, help="training pairs to draw batches from")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-dropout", type=float, default=0.0)
    p.add_argument("--lora-targets", default="all", choices=tuple(TARGETS))
    p.add_argument("--random-batches", action="store_true", help="no length grouping")
    p.add_argument("--legacy", action="store_true", help="code without batching.py (before)")
    p.add_argument("--fused-adamw", action="store_true", help="AdamW(fused=True)")
    p.add_argument("--compile", action="store_true", help="as molfm train molca --compile")
    p.add_argument(
        "--no-fuse",
        action="store_true",
        help="one product per frozen projection (molfm train molca --no-fuse-projections)",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (the GPU run's precision)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("-o", "--output", required=True)
    return p.parse_args()


def build_model(args, work: Path):
    from molfm.systems.molca.lm import tiny_llama, tiny_tokenizer
    from molfm.systems.molca.model import MolCA, MolCAConfig

    lm = args.lm
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
    if args.data_path is None:
        train = pubchem_names_splits("iupac").train
    else:
        from molfm.systems.molca.data import read_caption_file

        train = read_caption_file(args.data_path).dataset
    pick = np.sort(np.random.default_rng(0).permutation(len(train))[: args.pool])
    pairs = subset(train, pick)
    device = torch.device(args.device)
    # 3 warm-up steps (compiling takes the first calls; other lengths check the dynamic
    # shapes) and a 4th batch to count on, then the timed pass over all of them
    warmup = 3
    if len(pairs) < (warmup + 1) * args.batch_size:
        raise SystemExit(
            f"molca_step: --pool {len(pairs)} pairs; this run needs {(warmup + 1) * args.batch_size}"
        )
    if args.compile:
        from torch._inductor import config as inductor_config

        inductor_config.cpp.enable_kernel_profile = True  # the profiler sees C++ kernels
    model = build_model(args, work)
    model.train()
    started = time.perf_counter()
    # legacy: the step tokenizes, so batches are only collated here (graphs + texts)
    all_batches = batches(args, model, pairs)
    if device.type != "cpu":  # a CPU batch stays the object the collate made
        all_batches = [b.to(device) for b in all_batches]
    prepare_s = time.perf_counter() - started
    model.to(device)
    fused_groups = 0
    if not (args.legacy or args.no_fuse):  # as MolCATask does; the old code has no fusing
        from molfm.systems.molca.fused import fuse_frozen_projections

        fused_groups = fuse_frozen_projections(model.lm)
    if args.compile:
        from molfm.systems.molca.task import compile_layers

        compile_layers(model)
    params = [p for p in model.parameters() if p.requires_grad]
    kind = {"fused": True} if args.fused_adamw else {"foreach": True}
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05, **kind)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    tok = model.tokenizer
    instruction = model.config.instruction("iupac")

    def padding(batch) -> tuple[int, int]:
        prompt = getattr(batch, "prompt", None)
        if prompt is None:
            prompt = model.prompts(batch.smiles, instruction, batch.texts)
        mask = prompt.attention_mask
        return int(mask.sum()), mask.numel()

    def forward_backward(batch) -> torch.Tensor:
        with autocast:
            loss = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        return loss

    def step(batch) -> torch.Tensor:
        loss = forward_backward(batch)
        optimizer.step()
        return loss.detach()  # not read back: a read would wait for the device

    warmup_started = time.perf_counter()
    for batch in all_batches[:warmup]:
        step(batch)
    sync()
    warmup_s = time.perf_counter() - warmup_started
    probe = all_batches[warmup]
    fwd_bwd, opt = Counter(), Counter()
    if not args.compile:  # a dispatch mode would run the compiled layers eagerly
        with OpCounter() as counter:
            forward_backward(probe)
        fwd_bwd = counter.ops
        with OpCounter() as counter:
            optimizer.step()
        opt = counter.ops
    launches = count_launches(lambda: forward_backward(probe), device)
    launches_opt = count_launches(optimizer.step, device)
    timed = all_batches
    real = padded = 0
    sync()
    t0, cpu0 = time.perf_counter(), time.process_time()
    losses = [step(batch) for batch in timed]
    sync()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    for batch in timed:
        r, p = padding(batch)
        real, padded = real + r, padded + p
    trainable = sum(p.numel() for p in params)
    report = {
        "label": args.label,
        "args": vars(args),
        "torch": torch.__version__,
        "trainable_parameters": trainable,
        "fused_projection_groups": fused_groups,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "ops_forward_backward": sum(fwd_bwd.values()) if fwd_bwd else None,
        "ops_optimizer": sum(opt.values()) if opt else None,
        "ops_total": sum(fwd_bwd.values()) + sum(opt.values()) if fwd_bwd else None,
        "syncs": {k: v for k, v in fwd_bwd.items() if k in SYNCING} if fwd_bwd else None,
        "top_ops": dict(fwd_bwd.most_common(12)),
        "launches_forward_backward": sum(launches.values()),
        "launches_optimizer": sum(launches_opt.values()),
        "launches_total": sum(launches.values()) + sum(launches_opt.values()),
        "top_launches": dict(launches.most_common(12)),
        "warmup_steps": warmup,
        "warmup_s": round(warmup_s, 2),
        "last_loss": round(float(losses[-1]), 4) if losses else None,
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
    keep = ("ops_total", "launches_total", "syncs", "molecules_per_s", "molecules_per_cpu_s")
    print(json.dumps({k: report[k] for k in ("label", *keep, "padding_share")}))


if __name__ == "__main__":
    main()
