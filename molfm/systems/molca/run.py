"""MolCA's entry points: train one stage, name or caption the molecules of a CSV, retrieve.

:func:`train_molca` trains stage ``"1"`` (graph encoder + Q-Former, :class:`~.task.Stage1Task`),
``"2"`` (frozen LM, :class:`~.task.MolCATask`) or ``"finetune"`` (LoRA/full/frozen LM) on
``pubchem-names`` or a user's SMILES + text file (:func:`~.splits.load_splits`), through the
engine's run skeleton (:func:`molfm.engine.run.fit_and_export`: a killed run resumes). It exports
the best validation checkpoint as ``<output_dir>/model`` and writes ``metrics.json`` with the
test report of :mod:`.evaluate`.

:func:`name_molecules`, :func:`caption_molecules` and :func:`retrieve_hits` read a CSV, run a
trained model and write one CSV (rows in input order; bad rows stop the command or, with
``on_invalid="skip"``, are listed in ``invalid.csv`` beside it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from molfm.atomic import atomic_writer
from molfm.data.sources.user import read_user_table
from molfm.engine.options import check_options
from molfm.systems.molca.config import (
    LORA_TARGET_SETS,
    CaptionConfig,
    MolCATrainConfig,
    NameConfig,
    RetrieveConfig,
)
from molfm.systems.molca.evaluate import evaluate_generation, evaluate_stage1, generate_texts
from molfm.systems.molca.splits import MolTextDataModule, default_task, load_splits

__all__ = [
    "check_train_config",
    "train_molca",
    "Written",
    "read_molecules",
    "read_texts",
    "name_molecules",
    "caption_molecules",
    "retrieve_hits",
    "load_molca",
    "describe_molecules",
    "hit_table",
]


# ----------------------------------------------------------------------------- training
def check_train_config(cfg: MolCATrainConfig) -> None:
    """The options' ranges and choices, and what ``init`` must hold for the stage.

    Raises
    ------
    ValueError, FileNotFoundError
        One line naming the option.
    """
    check_options(cfg)
    if cfg.stage == "1" and cfg.init is not None:
        raise ValueError(
            "stage 1 starts from MiniLM and --graph-encoder; --init is for stage 2 and finetune"
        )
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
    from molfm.systems.molca.stage1 import MolCAStage1
    from molfm.systems.molca.task import Stage1Task

    model = MolCAStage1.build(
        cfg.graph_encoder,
        graph_overrides=cfg.graph_overrides or None,
        qformer=cfg.qformer or None,
        seed=cfg.seed,
        matching=cfg.matching,
        captioning=cfg.captioning,
        tune_word_embeddings=cfg.tune_word_embeddings,
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
    from molfm.systems.molca.task import MolCATask

    model_config = {
        "graph_encoder": _graph_encoder_spec(cfg),
        "qformer": dict(cfg.qformer),
        "lm": cfg.lm,
        "input_mode": cfg.input_mode,
        "max_target_tokens": cfg.max_target_tokens,
        "lm_tuning": {
            "mode": cfg.lm_tuning,
            "r": cfg.lora_r,
            "alpha": 2 * cfg.lora_r,
            "dropout": cfg.lora_dropout,
            "target_modules": list(LORA_TARGET_SETS[cfg.lora_targets]),
        },
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
        compile=cfg.compile,
        fuse_projections=cfg.fuse_projections,
    )


def _data_module(cfg: MolCATrainConfig, task, task_name: str, splits) -> MolTextDataModule:
    """Stage 1 reads texts as they are; the LM stages tokenize every pair once here, pad in
    the loader and (``bucket_by_length``) batch pairs of similar length."""
    common = {"batch_size": cfg.batch_size, "seed": cfg.data_seed, "num_workers": cfg.num_workers}
    if cfg.stage == "1":
        return MolTextDataModule(splits.train, splits.val, **common)
    from molfm.systems.molca.batching import PromptCollate, tokenize_pairs

    model = task.model
    return MolTextDataModule(
        tokenize_pairs(model, splits.train, task_name),
        tokenize_pairs(model, splits.val, task_name),
        collate_fn=PromptCollate(model.tokenizer.pad_token_id, model.num_graph_tokens),
        bucket_by_length=cfg.bucket_by_length,
        **common,
    )


def _eval_device(cfg: MolCATrainConfig) -> torch.device:
    if cfg.accelerator != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def train_molca(cfg: MolCATrainConfig, callbacks: list | None = None) -> Path:
    """Run (or resume) one MolCA stage; return ``<output_dir>/model`` (the best validation
    checkpoint's weights)."""
    from molfm.engine.fit import start_or_resume
    from molfm.engine.hardware import run_hardware, seed_everything
    from molfm.engine.run import fit_and_export
    from molfm.hub import save_pretrained
    from molfm.systems.molca.task import load_best_weights

    check_train_config(cfg)
    hardware = run_hardware(cfg)
    task_name = default_task(cfg)
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
    data = _data_module(cfg, task, task_name, splits)
    started = time.perf_counter()
    fit_seconds: list[float] = []

    def export(best, training: dict[str, Any]) -> Path:
        fit_seconds.append(time.perf_counter() - started)
        model = best.model.to(_eval_device(cfg)).eval()
        return save_pretrained(model, out / "model", extra={"training": training})

    def evaluate(best) -> dict[str, Any]:
        model = best.model
        if cfg.stage == "1":
            metrics = evaluate_stage1(model, splits.test, cfg)
        else:
            metrics = evaluate_generation(model, splits.test, task_name, cfg, out)
        report: dict[str, Any] = {"split": "test", "metrics": metrics}
        counts = getattr(model, "parameter_counts", None)
        if counts is not None:
            report["parameters"] = {k: v._asdict() for k, v in counts().items()}
        return report | {"fit_seconds": fit_seconds[0]}

    return fit_and_export(
        task,
        data,
        out,
        export=export,
        evaluate=evaluate,
        record={
            "stage": cfg.stage,
            "task": task_name,
            "data": cfg.data,
            "init": cfg.init,
            "n_train": len(splits.train),
            "n_val": len(splits.val),
            "n_test": len(splits.test),
            "training_set": splits.info.get("training_set"),
        },
        max_steps=cfg.max_steps,
        val_every_n_steps=cfg.val_every_n_steps or batches_per_epoch,
        batches_per_epoch=batches_per_epoch,
        hardware=hardware,
        progress=cfg.progress,
        callbacks=list(callbacks or []),
        # the checkpoints hold only what trains: restore them into the task in place
        load_best=lambda path: load_best_weights(task, path),
    )


# ----------------------------------------------------------------------------- inference
@dataclass
class Written:
    """What an inference entry point wrote: ``frame`` to ``path``, and the ``rejected`` rows
    (``on_invalid="skip"``) to ``invalid`` (None when there were none)."""

    path: Path
    frame: pd.DataFrame
    rejected: int = 0
    invalid: Path | None = None


def _read_table(path: Path, column: str, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"--data-path {path} does not exist")
    frame = read_user_table(path)  # tab- or comma-separated by the header line
    if column not in frame.columns:
        raise ValueError(f"no {what} column {column!r} in {path}; columns: {list(frame.columns)}")
    return frame


def read_molecules(path: str | Path, smiles_column: str, on_invalid: str):
    """``(rows, smiles, graphs, rejected)`` of a CSV/TSV of SMILES, in file order.

    Raises
    ------
    InvalidMoleculeError
        A bad SMILES with ``on_invalid="error"`` (``"skip"`` lists it in ``rejected``).
    """
    from molfm.tasks.predict import featurize_smiles

    frame = _read_table(Path(path), smiles_column, "SMILES")
    good, rejected = featurize_smiles(frame[smiles_column].tolist(), on_invalid=on_invalid)
    rows, smiles, graphs = (list(column) for column in zip(*good)) if good else ([], [], [])
    return rows, smiles, graphs, pd.DataFrame(rejected, columns=["row", "smiles", "reason"])


def read_texts(path: str | Path, column: str) -> pd.DataFrame:
    """A CSV/TSV holding a text column (retrieval candidates)."""
    return _read_table(Path(path), column, "text")


def load_molca(model: str, model_type: str, device: torch.device | str = "cpu"):
    """A MolCA model (``model_type`` ``"molca"`` or ``"molca-stage1"``) from a shipped name or
    a directory, on ``device`` in eval mode; another model type is one line naming both."""
    from molfm.hub import from_pretrained, load_config, resolve_checkpoint

    path = resolve_checkpoint(model)
    kind = load_config(path).get("model_type")
    if kind != model_type:
        want = "a MolCA (stage 2 / finetune)" if model_type == "molca" else "a MolCA stage-1"
        raise ValueError(f"--model {model} holds a {kind!r} model; this command needs {want} model")
    return from_pretrained(path).to(device).eval()


def _write(frame: pd.DataFrame, output: str | Path, rejected: pd.DataFrame) -> Written:
    output = Path(output)
    with atomic_writer(output) as tmp:
        frame.to_csv(tmp, index=False)
    invalid = None
    if len(rejected):
        invalid = output.with_name("invalid.csv")
        with atomic_writer(invalid) as tmp:
            rejected.to_csv(tmp, index=False)
    return Written(output, frame, len(rejected), invalid)


def load_describer(cfg: NameConfig | CaptionConfig, task: str):
    """The MolCA model ``cfg`` names, on its device, ready to decode ``task`` (a model without
    that task fails in one line; LoRA merged into the LM when ``cfg.merge_lora``)."""
    from molfm.engine.hardware import inference_device

    device = inference_device(cfg.accelerator, cfg.devices)
    molca = load_molca(cfg.model, "molca", device)
    molca.config.instruction(task)
    if cfg.merge_lora:
        molca.merge_lora()
    return molca


def describe_with(
    cfg: NameConfig | CaptionConfig,
    molca,
    task: str,
    graphs: list,
    smiles: list[str],
    progress: bool | None = None,
) -> tuple[list[str], list[bool] | None]:
    """:func:`describe_molecules` with ``cfg``'s decoding settings (``molfm name`` /
    ``caption``; ``verify`` for names only); ``progress`` overrides ``cfg.progress``."""
    return describe_molecules(
        molca,
        graphs,
        smiles,
        task,
        batch_size=cfg.batch_size,
        num_beams=cfg.num_beams,
        max_new_tokens=cfg.max_new_tokens,
        verify=getattr(cfg, "verify", False),
        progress=cfg.progress if progress is None else progress,
        length_penalty=cfg.length_penalty,
        no_repeat_ngram_size=cfg.no_repeat_ngram_size,
        max_locant_run=cfg.max_locant_run,
        max_repeats=cfg.max_repeats,
        max_tokens_per_atom=cfg.max_tokens_per_atom,
        soft_cap_per_atom=cfg.soft_cap_per_atom,
        soft_cap_rate=cfg.soft_cap_rate,
    )


def _generate_file(cfg: NameConfig | CaptionConfig, task: str, column: str, verify: bool):
    check_options(cfg)
    rows, smiles, graphs, rejected = read_molecules(
        cfg.data_path, cfg.smiles_column, cfg.on_invalid
    )
    molca = load_describer(cfg, task)
    texts, verified = describe_with(cfg, molca, task, graphs, smiles)
    frame = pd.DataFrame({"row": rows, "smiles": smiles})
    frame[column] = texts
    if verify:
        frame["verified"] = verified
    return _write(frame, cfg.output, rejected)


def describe_molecules(
    molca,
    graphs: list,
    smiles: list[str],
    task: str,
    *,
    batch_size: int,
    num_beams: int,
    max_new_tokens: int,
    verify: bool = False,
    progress: bool = False,
    **decoding: Any,
) -> tuple[list[str], list[bool] | None]:
    """The texts ``molfm name`` / ``caption`` write for featurized molecules (beam search,
    ``batch_size`` molecules at a time; ``decoding``: more :meth:`~.model.MolCA.generate`
    settings) and, with ``verify`` (names), whether OPSIN gives back each input structure
    (the first beam that does is kept); ``None`` without."""
    from molfm.eval.text import verify_names
    from molfm.systems.molca.data import MolTextDataset

    dataset = MolTextDataset(graphs, smiles, [""] * len(smiles))
    with torch.no_grad():
        beams = generate_texts(
            molca,
            dataset,
            task,
            batch_size=batch_size,
            num_beams=num_beams,
            num_return_sequences=num_beams if verify else 1,
            max_new_tokens=max_new_tokens,
            progress=progress,
            **decoding,
        )
    if verify:
        return verify_names(beams, smiles)
    return [b[0] for b in beams], None


def name_molecules(cfg: NameConfig) -> Written:
    """IUPAC names (beam search) for every molecule of ``cfg.data_path``, in input order, as
    ``row, smiles, name``; ``verify`` checks each beam with OPSIN and keeps the first that is
    the input structure (column ``verified``)."""
    return _generate_file(cfg, "iupac", "name", cfg.verify)


def caption_molecules(cfg: CaptionConfig) -> Written:
    """A text description (beam search) of every molecule of ``cfg.data_path``, in input
    order, as ``row, smiles, caption``."""
    if cfg.model is None:
        raise ValueError("give --model: a MolCA captioning run (no captioning model is shipped)")
    return _generate_file(cfg, "caption", "caption", False)


def retrieve_hits(cfg: RetrieveConfig) -> Written:
    """The ``top_k`` best candidates of ``cfg.data_path`` for each query: molecules for
    ``text`` queries, texts for ``smiles`` queries (a stage-1 model; the best ``rerank`` of
    each query re-ranked with its matching head). Columns ``query, rank, row, smiles|text,
    score, cosine, match``."""
    from molfm.chem.parse import InvalidMoleculeError, parse_smiles
    from molfm.engine.hardware import inference_device
    from molfm.systems.molca.retrieval import retrieve

    check_options(cfg)
    if bool(cfg.text) == bool(cfg.smiles):
        raise ValueError("give --text (text -> molecule) or --smiles (molecule -> text)")
    device = inference_device(cfg.accelerator, cfg.devices)
    rejected = pd.DataFrame(columns=["row", "smiles", "reason"])
    candidates: list[Any]
    if cfg.text:
        direction, queries = "text-to-molecule", list(cfg.text)
        rows, shown, candidates, rejected = read_molecules(
            cfg.data_path, cfg.smiles_column, cfg.on_invalid
        )
    else:
        direction = "molecule-to-text"
        for s in cfg.smiles:
            try:
                parse_smiles(s)
            except InvalidMoleculeError as err:
                raise ValueError(f"--smiles {s!r}: {err.reason}") from None
        queries = list(cfg.smiles)
        candidates = read_texts(cfg.data_path, cfg.text_column)[cfg.text_column].tolist()
        rows, shown = list(range(len(candidates))), candidates
    stage1 = load_molca(cfg.model, "molca-stage1", device)
    hits = retrieve(
        stage1,
        queries,
        candidates,
        direction,
        top_k=cfg.top_k,
        rerank=cfg.rerank,
        batch_size=cfg.batch_size,
    )
    return _write(hit_table(hits, queries, rows, shown, direction), cfg.output, rejected)


def hit_table(
    hits: pd.DataFrame, queries: list[str], rows: list[int], shown: list[str], direction: str
) -> pd.DataFrame:
    """``molfm retrieve``'s table from :func:`~.retrieval.retrieve`'s hits: each index turned
    into the query, the candidate's ``row`` in its file and its SMILES or text (``shown``)."""
    column = "smiles" if direction == "text-to-molecule" else "text"
    return pd.DataFrame(
        {
            "query": [queries[int(q)] for q in hits["query"]],
            "rank": hits["rank"].to_numpy(),
            "row": [rows[int(c)] for c in hits["candidate"]],
            column: [shown[int(c)] for c in hits["candidate"]],
            "score": hits["score"].to_numpy(),
            "cosine": hits["cosine"].to_numpy(),
            "match": hits["match"].to_numpy(),
        }
    )
