"""A whole MolCA run: data -> split -> train one stage (resumable) -> ``model/`` -> test report.

:func:`train_molca` trains stage ``"1"`` (graph encoder + Q-Former, :class:`~.stage1.Stage1Task`),
``"2"`` (frozen LM, :class:`~.finetune.MolCATask`) or ``"finetune"`` (LoRA/full/frozen LM) on
``pubchem-names`` (split by scaffold, see :func:`~.data.pubchem_names_splits`) or on a user's
SMILES + text file (:func:`~.data.read_caption_file`, split by scaffold with ``data_seed``),
through the shared engine (:func:`molfm.engine.fit.fit_resumable`: a killed run resumes). It
exports the final weights as ``<output_dir>/model`` and writes ``metrics.json``:

* stage 1: retrieval accuracy / recall@20 (:func:`molfm.eval.text.retrieval_metrics`) over up
  to ``eval_limit`` test pairs (contrastive similarity, and re-ranked when ``rerank > 0``);
* stages 2 and finetune: beam-search generation for up to ``eval_limit`` test molecules,
  BLEU/METEOR/ROUGE (:func:`~molfm.eval.text.caption_metrics`) and, for ``task="iupac"``, the
  OPSIN parse and exact-structure rates (:func:`~molfm.eval.text.opsin_name_check`);
  ``test_predictions.csv`` holds the decoded texts.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from molfm.atomic import atomic_write_text, atomic_writer
from molfm.data.samplers import seeded_loader
from molfm.systems.molca.data import MolTextDataset, MolTextSplits, collate_mol_text

__all__ = ["STAGES", "MolCATrainConfig", "MolTextDataModule", "load_splits", "train_molca"]

STAGES = ("1", "2", "finetune")
DATA_SETS = ("pubchem-names",)


@dataclass
class MolCATrainConfig:
    """Everything a MolCA run depends on (saved as ``train_config.json``)."""

    output_dir: str
    stage: str = "finetune"  # 1 | 2 | finetune
    task: str | None = None  # default: iupac (pubchem-names) or caption (a file)
    data: str | None = None  # pubchem-names
    data_path: str | None = None  # or a SMILES + text file (TSV/CSV)
    smiles_column: str | None = None
    text_column: str | None = None
    init: str | None = None  # stage 2: a stage-1 run/model; finetune: stage-1 or MolCA run/model
    graph_encoder: str = "gine"  # a fresh type (gine, gps) or a pretrained name/directory
    graph_overrides: dict[str, Any] = field(default_factory=dict)  # fresh encoders' sizes
    qformer: dict[str, Any] = field(default_factory=dict)  # QFormerConfig fields
    stage1_options: dict[str, Any] = field(default_factory=dict)  # other Stage1Config fields
    lm: str = "smollm2"  # smollm2 or an HF causal-LM folder
    input_mode: str = "1d2d"
    lm_tuning: str = "lora"  # lora | full | frozen (stage 2 is always frozen)
    lora_r: int = 16
    split_sizes: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    limit_train: int | None = None
    limit_val: int | None = None  # the first N validation pairs (quick runs)
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 0.05
    warmup_steps: int = 100
    max_steps: int = 1000
    val_every_n_steps: int | None = None
    eval_limit: int = 64
    num_beams: int = 5
    max_new_tokens: int = 64
    rerank: int = 0  # stage-1 evaluation: also re-rank each query's best N (0: skip)
    seed: int = 0
    data_seed: int = 0
    on_invalid: str = "error"
    num_workers: int = 0
    accelerator: str = "auto"
    devices: Any = 1
    precision: str = "32-true"
    progress: bool = True


# ----------------------------------------------------------------------------- data
class MolTextDataModule(L.LightningDataModule):
    """Train (seeded order, resumable mid-epoch, full batches) and validation loaders."""

    def __init__(
        self,
        train: MolTextDataset,
        val: MolTextDataset,
        *,
        batch_size: int,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.train, self.val = train, val
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers

    def _loader(self, dataset: MolTextDataset, shuffle: bool) -> DataLoader:
        return seeded_loader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            collate_fn=collate_mol_text,
            seed=self.seed,
            num_workers=self.num_workers,
            trainer=getattr(self, "trainer", None),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val, shuffle=False)


def subset(dataset: MolTextDataset, index) -> MolTextDataset:
    """The pairs at ``index`` (in that order) as a new :class:`MolTextDataset`."""
    index = [int(i) for i in index]
    return MolTextDataset(
        [dataset.graphs[i] for i in index],
        [dataset.smiles[i] for i in index],
        [dataset.texts[i] for i in index],
        names=[dataset.names[i] for i in index],
        ids=[dataset.ids[i] for i in index],
    )


def _scaffolds(smiles: list[str]) -> list[str]:
    from rdkit import Chem, rdBase

    from molfm.chem.scaffolds import murcko_scaffold

    out = []
    with rdBase.BlockLogs():
        for s in smiles:
            mol = Chem.MolFromSmiles(s)
            out.append(murcko_scaffold(mol) if mol is not None else s)
    return out


def _task(cfg: MolCATrainConfig) -> str:
    if cfg.task is not None:
        return cfg.task
    return "iupac" if cfg.data is not None else "caption"


def load_splits(cfg: MolCATrainConfig) -> MolTextSplits:
    """Train/val/test pairs of ``cfg.data`` or ``cfg.data_path`` (train limited to
    ``cfg.limit_train`` molecules, a seeded subset; validation to its first ``cfg.limit_val``)."""
    from molfm.data.splits import scaffold_split

    if (cfg.data is None) == (cfg.data_path is None):
        raise ValueError("give exactly one of --data pubchem-names or --data-path FILE")
    task = _task(cfg)
    if cfg.data is not None:
        if cfg.data not in DATA_SETS:
            raise ValueError(f"--data {cfg.data!r}: MolCA trains on {', '.join(DATA_SETS)}")
        data_task = "names" if task == "names" else "iupac"
        if task not in ("iupac", "names") or (task == "names" and cfg.stage != "1"):
            raise ValueError(
                f"--task {task!r} on pubchem-names: use iupac (every stage) or names (stage 1)"
            )
        splits = pubchem_names(data_task, cfg)
    else:
        read = read_caption(cfg)
        dataset = read.dataset
        if len(dataset) < 3:
            raise ValueError(f"{cfg.data_path} has {len(dataset)} usable pairs; a run needs >= 3")
        split = scaffold_split(_scaffolds(dataset.smiles), cfg.split_sizes, cfg.data_seed)
        splits = MolTextSplits(
            subset(dataset, split.train),
            subset(dataset, split.val),
            subset(dataset, split.test),
            {"source": cfg.data_path, "rejected": len(read.rejected)},
        )
    if cfg.limit_train is not None and cfg.limit_train < len(splits.train):
        order = np.random.default_rng(cfg.data_seed).permutation(len(splits.train))
        splits.train = subset(splits.train, np.sort(order[: cfg.limit_train]))
    if cfg.limit_val is not None and cfg.limit_val < len(splits.val):
        splits.val = _head(splits.val, cfg.limit_val)
    return splits


def pubchem_names(task: str, cfg: MolCATrainConfig) -> MolTextSplits:
    from molfm.systems.molca.data import pubchem_names_splits

    return pubchem_names_splits(
        task, seed=cfg.data_seed, sizes=cfg.split_sizes, progress=cfg.progress
    )


def read_caption(cfg: MolCATrainConfig):
    from molfm.systems.molca.data import read_caption_file

    return read_caption_file(
        cfg.data_path, cfg.smiles_column, cfg.text_column, on_invalid=cfg.on_invalid
    )


# ----------------------------------------------------------------------------- stages
def _check(cfg: MolCATrainConfig) -> None:
    if cfg.stage not in STAGES:
        raise ValueError(f"--stage {cfg.stage!r}: use one of {', '.join(STAGES)}")
    if cfg.stage == "1" and cfg.init is not None:
        raise ValueError(
            "stage 1 starts from MiniLM and --graph-encoder; --init is for stage 2 and finetune"
        )
    if cfg.lm_tuning not in ("lora", "full", "frozen"):
        raise ValueError(f"--lm-tuning {cfg.lm_tuning!r}: use lora, full or frozen")
    if cfg.init is not None:
        from molfm.hub import load_config, resolve_checkpoint

        kind = load_config(resolve_checkpoint(cfg.init)).get("model_type")
        if kind not in ("molca", "molca-stage1"):
            raise ValueError(f"--init {cfg.init} holds a {kind!r} model, not a MolCA run")
        if cfg.stage == "2" and kind != "molca-stage1":
            raise ValueError(f"--init {cfg.init}: stage 2 starts from a stage-1 run")


def _graph_encoder_spec(cfg: MolCATrainConfig) -> dict[str, Any] | str:
    if not cfg.graph_overrides:
        return cfg.graph_encoder
    from molfm.systems.molca.graph import FRESH

    if cfg.graph_encoder not in FRESH:
        raise ValueError(
            f"--graph-encoder {cfg.graph_encoder}: a pretrained encoder's sizes are fixed"
        )
    return {"type": cfg.graph_encoder, "config": dict(cfg.graph_overrides)}


def _stage1_task(cfg: MolCATrainConfig):
    from molfm.systems.molca.stage1 import MolCAStage1, Stage1Task

    model = MolCAStage1.build(
        cfg.graph_encoder,
        graph_overrides=cfg.graph_overrides or None,
        qformer=cfg.qformer or None,
        seed=cfg.seed,
        **cfg.stage1_options,
    )
    return Stage1Task(
        model,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        max_steps=cfg.max_steps,
    )


def _molca_task(cfg: MolCATrainConfig, task: str):
    from molfm.systems.molca.finetune import MolCATask

    model_config = {
        "graph_encoder": _graph_encoder_spec(cfg),
        "qformer": dict(cfg.qformer),
        "lm": cfg.lm,
        "input_mode": cfg.input_mode,
        "lm_tuning": {"mode": cfg.lm_tuning, "r": cfg.lora_r, "alpha": 2 * cfg.lora_r},
    }
    return MolCATask(
        model_config,
        stage=cfg.stage,
        task=task,
        init=cfg.init,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        max_steps=cfg.max_steps,
        num_beams=cfg.num_beams,
        max_new_tokens=cfg.max_new_tokens,
        seed=cfg.seed,
    )


def _eval_device(cfg: MolCATrainConfig) -> torch.device:
    if cfg.accelerator != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _head(dataset: MolTextDataset, n: int) -> MolTextDataset:
    return subset(dataset, range(min(n, len(dataset))))


def evaluate_stage1(model, test: MolTextDataset, cfg: MolCATrainConfig) -> dict[str, Any]:
    """Retrieval metrics over the first ``eval_limit`` test pairs."""
    from molfm.eval.text import retrieval_metrics
    from molfm.systems.molca.retrieval import full_similarity

    pairs = _head(test, cfg.eval_limit)
    if len(pairs) == 0:
        return {"n": 0}
    model.eval()
    graphs = [pairs.graphs[i] for i in range(len(pairs))]
    start = time.perf_counter()
    report: dict[str, Any] = {"n": len(pairs)}
    sim = full_similarity(model, graphs, pairs.texts, batch_size=cfg.batch_size)
    report["contrastive"] = retrieval_metrics(sim)
    if cfg.rerank:
        report["reranked"] = reranked_retrieval(
            model, graphs, pairs.texts, cfg.rerank, cfg.batch_size
        )
        report["rerank"] = cfg.rerank
    report["seconds"] = time.perf_counter() - start
    return report


def reranked_retrieval(
    model, graphs, texts: list[str], rerank: int, batch_size: int
) -> dict[str, Any]:
    """Retrieval metrics with each direction re-ranked on its own: molecule -> text ranks the
    rows of the matrix re-ranked per molecule, text -> molecule the columns of the one re-ranked
    per text (one matrix re-ranked in one direction would leave the other's ranks mixed)."""
    from molfm.eval.text import retrieval_metrics
    from molfm.systems.molca.retrieval import full_similarity

    by_direction = {
        direction: retrieval_metrics(
            full_similarity(
                model, graphs, texts, rerank=rerank, direction=direction, batch_size=batch_size
            )
        )
        for direction in ("molecule-to-text", "text-to-molecule")
    }
    report = by_direction["molecule-to-text"]
    for part in ("batch", "full"):
        theirs = by_direction["text-to-molecule"][part]
        report[part] |= {k: v for k, v in theirs.items() if k.startswith("text2mol")}
    return report


def generate_texts(
    model,
    dataset: MolTextDataset,
    task: str,
    *,
    batch_size: int,
    num_beams: int,
    num_return_sequences: int = 1,
    max_new_tokens: int = 64,
) -> list[list[str]]:
    """Beam-search texts for every molecule of ``dataset``, in order."""
    out: list[list[str]] = []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(len(dataset), start + batch_size))]
        batch = collate_mol_text(items)
        out += model.generate(
            batch.graphs,
            batch.smiles,
            task,
            num_beams=num_beams,
            num_return_sequences=num_return_sequences,
            max_new_tokens=max_new_tokens,
        )
    return out


def evaluate_generation(
    model, test: MolTextDataset, task: str, cfg: MolCATrainConfig, out: Path
) -> dict[str, Any]:
    """Decode the first ``eval_limit`` test molecules; text metrics (+ OPSIN for names)."""
    from molfm.eval.text import caption_metrics, opsin_name_check

    pairs = _head(test, cfg.eval_limit)
    if len(pairs) == 0:
        return {"n": 0}
    start = time.perf_counter()
    predicted = generate_texts(
        model,
        pairs,
        task,
        batch_size=cfg.batch_size,
        num_beams=cfg.num_beams,
        max_new_tokens=cfg.max_new_tokens,
    )
    predictions = [p[0] for p in predicted]
    seconds = time.perf_counter() - start
    report: dict[str, Any] = {"n": len(pairs), "num_beams": cfg.num_beams}
    report["text"] = caption_metrics(predictions, pairs.texts)
    frame = pd.DataFrame(
        {"id": pairs.ids, "smiles": pairs.smiles, "target": pairs.texts, "prediction": predictions}
    )
    if task == "iupac":
        opsin = opsin_name_check(predictions, pairs.smiles)
        report["opsin"] = opsin.summary()
        frame["opsin_parses"] = [c.parses for c in opsin.checks]
        frame["opsin_same_structure"] = [c.same_structure for c in opsin.checks]
    report["generation_seconds"] = seconds
    with atomic_writer(out / "test_predictions.csv") as tmp:
        frame.to_csv(tmp, index=False)
    return report


def train_molca(cfg: MolCATrainConfig, callbacks: list | None = None) -> Path:
    """Run (or resume) one MolCA stage; return ``<output_dir>/model``."""
    from molfm.engine.fit import fit_resumable, start_or_resume
    from molfm.engine.hardware import lightning_kwargs, seed_everything
    from molfm.hub import save_pretrained

    _check(cfg)
    hardware = lightning_kwargs(cfg.accelerator, cfg.devices, cfg.precision)
    task_name = _task(cfg)
    splits = load_splits(cfg)
    batches_per_epoch = len(splits.train) // cfg.batch_size
    if batches_per_epoch == 0 or len(splits.val) == 0:
        raise ValueError(
            f"the split leaves {len(splits.train)} training and {len(splits.val)} validation "
            f"pairs; a run needs at least one batch of {cfg.batch_size} and a validation set"
        )
    out = Path(cfg.output_dir)
    start_or_resume(out, cfg)
    seed_everything(cfg.seed)
    task = _stage1_task(cfg) if cfg.stage == "1" else _molca_task(cfg, task_name)
    data = MolTextDataModule(
        splits.train,
        splits.val,
        batch_size=cfg.batch_size,
        seed=cfg.data_seed,
        num_workers=cfg.num_workers,
    )
    val_every = cfg.val_every_n_steps or batches_per_epoch
    started = time.perf_counter()
    trainer = fit_resumable(
        task,
        data,
        out,
        max_steps=cfg.max_steps,
        val_every_n_steps=val_every,
        batches_per_epoch=batches_per_epoch,
        progress=cfg.progress,
        callbacks=list(callbacks or []),
        **hardware,
    )
    model = task.model.to(_eval_device(cfg)).eval()
    logged = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    meta = {
        "stage": cfg.stage,
        "task": task_name,
        "data": cfg.data or cfg.data_path,
        "init": cfg.init,
        "steps": int(trainer.global_step),
        "n_train": len(splits.train),
        "n_val": len(splits.val),
        "n_test": len(splits.test),
        "fit_seconds": time.perf_counter() - started,
        "last_logged": logged,
    }
    model_dir = out / "model"
    save_pretrained(model, model_dir, extra={"training": meta})
    if cfg.stage == "1":
        metrics = evaluate_stage1(model, splits.test, cfg)
    else:
        metrics = evaluate_generation(model, splits.test, task_name, cfg, out)
    counts = getattr(model, "parameter_counts", None)
    report = {"split": "test", "metrics": metrics, "training": meta}
    if counts is not None:
        report["parameters"] = {k: v._asdict() for k, v in counts().items()}
    atomic_write_text(out / "metrics.json", json.dumps(report, indent=2, default=str))
    return model_dir
