"""MolCA stage 1 cost on a CPU (1 thread, fp32): train step time per loss combination,
parameter counts, retrieval encoding and re-ranking throughput (docs/molca.md).

    python benchmarks/molca_stage1_cost.py     # from the repository root (reads tests/data)
"""

import resource
import statistics
import time
import types

import torch

from molfm.chem.featurize import smiles_to_data
from molfm.data.dense import DenseGraphDataset, collate_dense
from molfm.systems.molca.retrieval import (
    encode_molecules,
    encode_texts,
    featurize_molecules,
    match_pairs,
)
from molfm.systems.molca.stage1 import MolCAStage1

torch.set_num_threads(1)  # one thread: the numbers in docs/molca.md

rows = [
    line.split("\t") for line in open("tests/data/pubchem_names_150.tsv").read().split("\n") if line
]
rows = [r for r in rows if len(r) > 7 and r[7]]
model = MolCAStage1.build("gine", max_text_length=40)  # GINE 5x300 + MiniLM 6 layers, [CLS]
tok = model.tokenizer


def long_text(r):  # IUPAC name, then synonyms, until >= 40 tokens (truncated to 40)
    parts = [r[7]] + [s for s in r[8:] if s]
    text = parts[0]
    for s in parts[1:]:
        if len(tok(text)["input_ids"]) >= 40:
            break
        text += "; " + s
    return text


long = [r[:7] + [long_text(r)] for r in rows if len(tok(long_text(r))["input_ids"]) >= 40][:32]
print("pairs:", len(long))


def batch_of(rs):
    ds = DenseGraphDataset([smiles_to_data(r[4]) for r in rs])
    return types.SimpleNamespace(
        graphs=collate_dense([ds[i] for i in range(len(ds))]),
        smiles=[r[4] for r in rs],
        texts=[r[7] for r in rs],
    )


batch = batch_of(long)
print(
    "text tokens:",
    model.tokenize(batch.texts)[0].shape,
    f"atoms/mol: {batch.graphs.node_mask.sum(1).float().mean():.1f}",
)


def count(mod):
    return sum(p.numel() for p in mod.parameters() if p.requires_grad)


print(
    "trainable params: total {:.2f}M | graph encoder {:.2f}M | Q-Former {:.2f}M (word emb {:.2f}M, pos {:.2f}M) | heads {:.2f}M".format(
        count(model) / 1e6,
        count(model.graph_encoder) / 1e6,
        count(model.qformer) / 1e6,
        model.qformer.word_embeddings.weight.numel() / 1e6,
        model.qformer.position_embeddings.weight.numel() / 1e6,
        (
            count(model.graph_proj)
            + count(model.text_proj)
            + count(model.matching_head)
            + count(model.caption_head)
            + model.caption_bias.numel()
        )
        / 1e6,
    )
)


def step_time(matching, captioning, n=4):
    model.config.matching, model.config.captioning = matching, captioning
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.05
    )
    model.train()
    wall, cpu = [], []
    for i in range(n + 1):
        w, c = time.perf_counter(), time.process_time()
        out = model.losses(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        if i:
            wall.append(time.perf_counter() - w)
            cpu.append(time.process_time() - c)
    return (
        statistics.median(wall),
        statistics.median(cpu),
        {k: round(float(v), 3) for k, v in out.items()},
    )


for m, c in [(True, True), (False, False), (True, False), (False, True)]:
    w, cp, out = step_time(m, c)
    print(f"step matching={m} captioning={c}: wall {w:.2f} s, cpu {cp:.2f} s  {out}")
model.config.matching = model.config.captioning = True

model.eval()
graphs = featurize_molecules([r[4] for r in rows])
names = [r[7] for r in rows]
model.config.max_text_length = 128
for what, fn, items in [("molecules", encode_molecules, graphs), ("texts", encode_texts, names)]:
    fn(model, items[:64])
    w, c = time.perf_counter(), time.process_time()
    fn(model, items, batch_size=64)
    w, c = time.perf_counter() - w, time.process_time() - c
    print(f"encode {len(items)} {what}: {len(items) / w:.0f}/s wall, {len(items) / c:.0f}/s cpu")
w, c = time.perf_counter(), time.process_time()
match_pairs(model, graphs[:128], names[:128])
w, c = time.perf_counter() - w, time.process_time() - c
print(f"re-rank (matching pass) 128 pairs: {128 / w:.0f} pairs/s wall, {128 / c:.0f}/s cpu")
mean_tokens = float(model.tokenize(names)[1].sum(1).float().mean())
print(f"mean text tokens (all 150 names): {mean_tokens:.1f}")
print("peak RSS %.2f GB" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6))
