"""Pair-tuning probe: why does the soft prompt not work with the small base model?

An experiment script (not library code) behind the ablations in benchmarks/RESULTS.md §9b. It
re-implements the pair-tuning layout in plain PyTorch so that variants the library does not
offer can be tried on the same pairs and the same held-out sources:

* ``--n-bridge B``: ``B`` extra learned vectors between ``<eos>`` of the source and the target
  (``[prompt] <bos> source <eos> [bridge] target <eos>``), in addition to the ``--n-prompt``
  vectors before the source;
* ``--two-molecule-steps N``: first fine-tune a copy of the base model (all weights, AdamW
  3e-4, batch 32) for ``N`` steps on rows of two random MOSES training molecules
  (``<bos> A <eos> <bos> B <eos>``, rotary positions restarting at each molecule), i.e. teach
  the linear-attention state to start a new molecule after a finished one; the pair-tuning
  itself then freezes that copy as usual;
* ``--analog-steps N``: the same, but on *analog* rows ``<bos> A <eos> B <eos>`` of two
  similar molecules (Tanimoto >= 0.4) laid out exactly like a pair without the prompt;
* ``--syntax-mask``: sample the candidates with :class:`molfm.systems.gp_molformer.syntax.SmilesSyntax`.

Reported: target-token loss before/after, and for the held-out low-QED sources and for 50
training-pair sources: fraction of valid non-empty candidates, mean Tanimoto to the source,
mean QED improvement, success rate (similarity >= 0.4 and improvement > 0).

    python benchmarks/pair_tuning_probe.py --pairs benchmarks/results/optimize_qed/pairs.csv \
        --sources benchmarks/results/optimize_qed/candidates.csv --two-molecule-steps 200
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from rdkit.Chem import QED

from molfm.chem.fingerprints import tanimoto
from molfm.chem.parse import mol_or_none
from molfm.systems.gp_molformer.data import pad_batch
from molfm.systems.gp_molformer.model import load_smiles_model
from molfm.systems.gp_molformer.pair_tuning.optimize import sample_targets
from molfm.systems.gp_molformer.pair_tuning.pairs import make_pairs
from molfm.systems.gp_molformer.pair_tuning.training import (
    PairDataset,
    collate_pairs,
    pair_positions,
)
from molfm.systems.gp_molformer.pretrain import load_smiles
from molfm.systems.gp_molformer.syntax import SmilesSyntax


def _finetune(model, steps: int, next_batch, name: str) -> None:
    """Train all weights of ``model`` in place (AdamW 3e-4, clip 1.0) for ``steps`` steps on
    ``next_batch(step) -> (ids, mask, positions)``, loss on every token after the first."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    for step in range(steps):
        ids, mask, positions = next_batch(step)
        loss = model.lm_loss(model(ids, mask, positions=positions), ids, mask)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            print(f"{name} step {step}: loss {loss.item():.3f}", flush=True)
    model.eval()


def analog_finetune(model, tok, steps: int, n_molecules: int, seed: int = 1) -> None:
    """Train ``model`` in place on analog rows ``<bos> A <eos> B <eos>``: A and B similar
    MOSES training molecules (Morgan Tanimoto >= 0.4, mined with molfm's ``make_pairs`` from
    ``n_molecules`` random ones; random values, so each similar pair appears once, in a random
    direction), B's positions restarting at 1 -- exactly the pair-tuning layout without the
    prompt. Loss on every token after ``<bos>`` (A too, so single-molecule modelling stays)."""
    smiles = load_smiles("moses")
    rng = np.random.default_rng(seed)
    subset = [smiles[i] for i in rng.choice(len(smiles), n_molecules, replace=False)]
    pairs = make_pairs(subset, rng.random(len(subset)), max_pairs_per_source=2, seed=seed)
    print(
        f"analog rows: {len(pairs)} pairs from {n_molecules} molecules, "
        f"mean similarity {pairs['similarity'].mean():.3f}",
        flush=True,
    )
    data = PairDataset(pairs["source"].tolist(), pairs["target"].tolist(), tok)
    order = rng.permutation(len(data))

    def next_batch(step: int):
        pick = order[(np.arange(32) + 32 * step) % len(order)]
        ids, mask, target_mask = collate_pairs([data[int(i)] for i in pick], tok.pad_id)
        return ids, mask, pair_positions(mask, target_mask, n_prompt=0)

    _finetune(model, steps, next_batch, "analog")


def two_molecule_finetune(model, tok, steps: int, seed: int = 1) -> None:
    """Train ``model`` in place on rows of two random MOSES molecules."""
    smiles = load_smiles("moses")
    rng = np.random.default_rng(seed)

    def next_batch(step: int):
        rows = []
        for _ in range(32):
            a, b = (tok.encode(smiles[i]) for i in rng.integers(len(smiles), size=2))
            rows.append((a + b, list(range(len(a))) + list(range(len(b)))))
        ids, mask = pad_batch([torch.tensor(r) for r, _ in rows], tok.pad_id)
        positions, _ = pad_batch([torch.tensor(p) for _, p in rows], 0)
        return ids, mask, positions

    _finetune(model, steps, next_batch, "two-molecule")


class Layout:
    """Embeds pair sequences ``[prompt] <bos> source <eos> [bridge] target <eos>``."""

    def __init__(self, model, tok, n_prompt: int, n_bridge: int, seed: int = 0) -> None:
        self.model, self.tok = model, tok
        rows = model.tok_emb.weight.detach()[4:]  # non-special token rows (Lester et al. init)
        g = torch.Generator().manual_seed(seed)
        pick = torch.randint(len(rows), (n_prompt + n_bridge,), generator=g)
        self.prompt = torch.nn.Parameter(rows[pick[:n_prompt]].clone())
        self.bridge = torch.nn.Parameter(rows[pick[n_prompt:]].clone())

    def parameters(self) -> list[torch.nn.Parameter]:
        return [self.prompt] + ([self.bridge] if len(self.bridge) else [])

    def batch(self, sources: list[str], targets: list[str]):
        emb, p, b = self.model.tok_emb, len(self.prompt), len(self.bridge)
        seqs, positions, labels = [], [], []
        for source, target in zip(sources, targets, strict=True):
            context = torch.tensor(self.tok.encode(source))
            answer = torch.tensor(self.tok.encode(target, add_special=False) + [self.tok.eos_id])
            x = torch.cat([self.prompt, emb(context), self.bridge, emb(answer)])
            n_before = p + len(context) + b
            # the target restarts its rotary positions at 1, as in molfm.systems.gp_molformer.pair_tuning.training
            pos = list(range(n_before)) + list(range(1, 1 + len(answer)))
            label = torch.full((len(x),), -100, dtype=torch.long)
            label[n_before - 1 : n_before - 1 + len(answer)] = answer
            seqs.append(x)
            positions.append(torch.tensor(pos))
            labels.append(label)
        width = max(len(x) for x in seqs)
        n = len(seqs)
        x_all = torch.zeros(n, width, seqs[0].shape[1])
        pos_all = torch.zeros(n, width, dtype=torch.long)
        mask = torch.zeros(n, width, dtype=torch.bool)
        label_all = torch.full((n, width), -100, dtype=torch.long)
        for i, (x, pos, label) in enumerate(zip(seqs, positions, labels, strict=True)):
            x_all[i, : len(x)], pos_all[i, : len(x)], mask[i, : len(x)] = x, pos, True
            label_all[i, : len(x)] = label
        return x_all, mask, pos_all, label_all

    def loss(self, sources: list[str], targets: list[str]) -> torch.Tensor:
        x, mask, pos, labels = self.batch(sources, targets)
        for block in self.model.blocks:
            x = block(x, mask, pos)
        logits = self.model._logits(x)
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)


@torch.no_grad()
def evaluate(layout: Layout, sources: list[str], n: int, syntax: SmilesSyntax | None, seed: int):
    model, tok = layout.model, layout.tok
    banned = torch.tensor([tok.pad_id, tok.bos_id, tok.unk_id])
    gen = torch.Generator().manual_seed(seed)
    n_valid, sims, gains, successes = 0, [], [], 0
    for source in sources:
        state, pos = model.init_state(1), 0
        for vector in layout.prompt:
            logits, state = model.embed_step(vector[None], pos, state)
            pos += 1
        for token in tok.encode(source):
            logits, state = model.step(torch.tensor([token]), pos, state)
            pos += 1
        for vector in layout.bridge:
            logits, state = model.embed_step(vector[None], pos, state)
            pos += 1
        # the library's target sampler (molfm optimize): the target restarts at position 1
        outs, _ = sample_targets(
            model, state, logits, n, max_length=100, generator=gen, banned=banned, syntax=syntax
        )
        q0, success = QED.qed(mol_or_none(source)), False
        for out in outs:
            mol = mol_or_none(tok.decode(out))
            if mol is None:
                continue
            n_valid += 1
            sims.append(tanimoto(source, mol))
            gains.append(QED.qed(mol) - q0)
            success |= sims[-1] >= 0.4 and gains[-1] > 0
        successes += success
    return {
        "valid": n_valid / (n * len(sources)),
        "similarity": float(np.mean(sims)) if sims else float("nan"),
        "improvement": float(np.mean(gains)) if gains else float("nan"),
        "success@0.4": successes / len(sources),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="gp-molformer-small-moses")
    parser.add_argument("--pairs", required=True, help="pairs.csv from molfm optimize")
    parser.add_argument("--sources", required=True, help="candidates.csv (its sources)")
    parser.add_argument("--n-prompt", type=int, default=20)
    parser.add_argument("--n-bridge", type=int, default=0)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--two-molecule-steps", type=int, default=0)
    parser.add_argument("--analog-steps", type=int, default=0)
    parser.add_argument("--analog-molecules", type=int, default=20000)
    parser.add_argument("--syntax-mask", action="store_true")
    parser.add_argument("--n-candidates", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    model, tok = load_smiles_model(args.model)
    if args.two_molecule_steps:
        two_molecule_finetune(model, tok, args.two_molecule_steps)
    if args.analog_steps:
        analog_finetune(model, tok, args.analog_steps, args.analog_molecules)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    pairs = pd.read_csv(args.pairs).sample(frac=1, random_state=0)
    sources, targets = pairs["source"].tolist(), pairs["target"].tolist()
    layout = Layout(model, tok, args.n_prompt, args.n_bridge)
    opt = torch.optim.AdamW(layout.parameters(), lr=3e-2, weight_decay=0.0)
    with torch.no_grad():
        print(f"target loss before: {layout.loss(sources[:128], targets[:128]).item():.3f}")
    for step in range(args.steps):  # warm-up 20 steps, cosine to 0.1, as train_prompt
        scale = min(1.0, (step + 1) / 20) * (
            0.1 + 0.45 * (1 + math.cos(math.pi * step / args.steps))
        )
        for group in opt.param_groups:
            group["lr"] = 3e-2 * scale
        start = (step * 32) % (len(sources) - 32)
        loss = layout.loss(sources[start : start + 32], targets[start : start + 32])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(layout.parameters(), 1.0)
        opt.step()
    with torch.no_grad():
        print(f"target loss after: {layout.loss(sources[:128], targets[:128]).item():.3f}")
    syntax = SmilesSyntax(tok) if args.syntax_mask else None
    held_out = pd.read_csv(args.sources).drop_duplicates("source_index")["source"].tolist()
    train_sources = list(dict.fromkeys(sources[-400:]))[:50]
    for name, group in (("held-out low-QED", held_out), ("training-pair sources", train_sources)):
        print(name, evaluate(layout, group, args.n_candidates, syntax, seed=0))


if __name__ == "__main__":
    main()
