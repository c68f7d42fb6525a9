"""MolCA on SmolLM2-135M, one CPU thread: parameter counts, step time, peak RSS, checkpoint size,
beam-5 generation (docs/molca.md). SmolLM2 is fetched and converted on first use (molfm.pinned).

    python benchmarks/molca_lm_cost.py 2       # stage 2 (LM frozen)
    python benchmarks/molca_lm_cost.py lora    # fine-tuning with LoRA r16 (+ checkpoint, generation)
"""

import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass

import torch

from molfm import hub
from molfm.chem.featurize import smiles_to_data
from molfm.data.dense import DenseGraphDataset, collate_dense
from molfm.data.sources.base import get_source
from molfm.systems.molca.model import MolCA, MolCAConfig

torch.set_num_threads(1)  # one thread: the numbers in docs/molca.md

stage = sys.argv[1]  # "2" or "lora"
t0 = time.time()
frame = get_source("pubchem-names").load()
frame = frame[frame["text"].notna() & (frame["smiles"].str.len().between(90, 128))]
frame = frame.sample(frac=1.0, random_state=0)


@dataclass
class Batch:
    graphs: object
    smiles: list
    texts: list


tuning = (
    {"mode": "frozen"}
    if stage == "2"
    else {
        "mode": "lora",
        "r": 16,
        "alpha": 32,
        "dropout": float(os.environ.get("LORA_DROPOUT", "0.1")),
    }
)
t = time.time()
model = MolCA.build(MolCAConfig(lm_tuning=tuning))  # GINE 5x300, Q-Former 6 layers Nq 8, smollm2
build_s = time.time() - t
tok = model.tokenizer
rows = []
for smi, name in zip(frame["smiles"], frame["text"]):
    n = len(tok(name, add_special_tokens=False)["input_ids"])
    if 34 <= n <= 46:
        try:
            data = smiles_to_data(smi)
        except Exception:
            continue
        rows.append((smi, name, data, n))
    if len(rows) == 8:
        break
graphs = collate_dense([x for x in DenseGraphDataset([r[2] for r in rows])])
batch = Batch(graphs, [r[0] for r in rows], [r[1] for r in rows])
prompt = model.prompts(batch.smiles, model.config.instruction("iupac"), batch.texts)
counts = {
    k: {"trainable": v.trainable, "total": v.total} for k, v in model.parameter_counts().items()
}
params = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)
model.train()
times, cpu = [], []
for _ in range(3):
    t, c = time.time(), time.process_time()
    loss = model.loss(batch)
    opt.zero_grad()
    loss.backward()
    opt.step()
    times.append(time.time() - t)
    cpu.append(time.process_time() - c)
out = {
    "stage": stage,
    "build_s": round(build_s, 2),
    "counts": counts,
    "trainable_total": sum(p.numel() for p in params),
    "batch": 8,
    "seq_len": int(prompt.attention_mask.shape[1]),
    "tokens_per_row": prompt.attention_mask.sum(-1).tolist(),
    "target_tokens": [r[3] for r in rows],
    "smiles_chars": [len(r[0]) for r in rows],
    "step_s": [round(x, 2) for x in times],
    "step_s_mean_after_warmup": round(sum(times[1:]) / 2, 2),
    "loss": [round(loss.item(), 3)],
    "step_cpu_s": [round(x, 2) for x in cpu],
    "lora_dropout": os.environ.get("LORA_DROPOUT", "0.1"),
    "rss_after_train_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}


def size(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


if stage == "lora" and not os.environ.get("NOGEN"):
    d = tempfile.mkdtemp()
    hub.save_pretrained(model, d + "/fp32")
    hub.save_pretrained(model, d + "/fp16", dtype=torch.float16)
    out["ckpt_bytes_fp32"], out["ckpt_bytes_fp16"] = size(d + "/fp32"), size(d + "/fp16")
    state = model.checkpoint_state_dict()
    part = {}
    for k, v in state.items():
        part[k.split(".")[0]] = part.get(k.split(".")[0], 0) + v.numel()
    out["ckpt_params_by_part"] = part
    t = time.time()
    loaded = hub.from_pretrained(d + "/fp32")
    out["from_pretrained_s"] = round(time.time() - t, 2)
    model.eval()
    g4 = collate_dense([x for x in DenseGraphDataset([r[2] for r in rows[:4]])])
    for label, kw in (("natural", {}), ("forced64", {"min_new_tokens": 64})):
        t = time.time()
        names = model.generate(g4, batch.smiles[:4], num_beams=5, max_new_tokens=64, **kw)
        dt = time.time() - t
        out[f"gen_beam5_batch4_{label}_s_per_mol"] = round(dt / 4, 2)
        out[f"gen_{label}_chars"] = [len(n[0]) for n in names]
    t = time.time()
    model.generate(
        g4[0:1] if False else collate_dense([x for x in DenseGraphDataset([rows[0][2]])]),
        batch.smiles[:1],
        num_beams=5,
        max_new_tokens=64,
        min_new_tokens=64,
    )
    out["gen_beam5_batch1_forced64_s"] = round(time.time() - t, 2)
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out["wall_s"] = round(time.time() - t0, 1)
print(json.dumps(out, indent=1))
