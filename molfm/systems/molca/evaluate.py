"""What a MolCA run reports on its test split, and batched beam search.

* stage 1: retrieval accuracy / recall@20 (:func:`molfm.eval.text.retrieval_metrics`) over up
  to ``eval_limit`` test pairs (contrastive similarity, and re-ranked when ``rerank > 0``);
* stages 2 and finetune: beam-search generation for up to ``eval_limit`` test molecules,
  BLEU/METEOR/ROUGE (:func:`~molfm.eval.text.caption_metrics`) and, for ``task="iupac"``, the
  OPSIN parse and exact-structure rates (:func:`~molfm.eval.text.opsin_name_check`);
  ``test_predictions.csv`` holds the decoded texts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from molfm.atomic import atomic_writer
from molfm.systems.molca.data import MolTextDataset, collate_mol_text
from molfm.systems.molca.splits import head

if TYPE_CHECKING:
    from molfm.systems.molca.config import MolCATrainConfig

__all__ = [
    "generate_texts",
    "evaluate_stage1",
    "reranked_retrieval",
    "sample_test_pairs",
    "evaluate_generation",
]


def generate_texts(
    model,
    dataset: MolTextDataset,
    task: str,
    *,
    batch_size: int,
    num_beams: int,
    num_return_sequences: int = 1,
    max_new_tokens: int = 64,
    progress: bool = False,
    **decoding: Any,
) -> list[list[str]]:
    """Beam-search texts for every molecule of ``dataset``, in order (``decoding``: more
    :meth:`~.model.MolCA.generate` settings); ``progress`` shows a bar (rich) on stderr."""
    from contextlib import nullcontext

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    out: list[list[str]] = []
    bar = (
        Progress(
            "{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        if progress
        else nullcontext()
    )
    with bar:
        track = bar.add_task(f"{task} (beam {num_beams})", total=len(dataset)) if progress else 0
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
                **decoding,
            )
            if progress:
                bar.advance(track, len(items))
    return out


def evaluate_stage1(model, test: MolTextDataset, cfg: MolCATrainConfig) -> dict[str, Any]:
    """Retrieval metrics over the first ``eval_limit`` test pairs."""
    from molfm.eval.text import retrieval_metrics
    from molfm.systems.molca.retrieval import full_similarity

    pairs = head(test, cfg.eval_limit)
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


def sample_test_pairs(test: MolTextDataset, n: int, seed: int) -> MolTextDataset:
    """``n`` test pairs drawn at random with ``seed`` (all of them when there are fewer), in
    test-split order: the first rows of a scaffold split share scaffolds, a random sample
    does not."""
    import numpy as np

    from molfm.systems.molca.splits import subset

    if n >= len(test):
        return test
    return subset(test, np.sort(np.random.default_rng(seed).permutation(len(test))[:n]))


def evaluate_generation(
    model, test: MolTextDataset, task: str, cfg: MolCATrainConfig, out: Path
) -> dict[str, Any]:
    """Decode ``eval_limit`` test molecules drawn with ``data_seed`` (:func:`sample_test_pairs`),
    keeping every beam; text metrics on the best beam, and for names the OPSIN rates of the
    best beam and of any beam (``--verify``). ``test_predictions.csv`` holds every beam."""
    from molfm.eval.text import OpsinReport, caption_metrics, check_beams, first_verified

    pairs = sample_test_pairs(test, cfg.eval_limit, cfg.data_seed)
    if len(pairs) == 0:
        return {"n": 0}
    start = time.perf_counter()
    beams = generate_texts(
        model,
        pairs,
        task,
        batch_size=cfg.batch_size,
        num_beams=cfg.num_beams,
        num_return_sequences=cfg.num_beams,
        max_new_tokens=cfg.max_new_tokens,
        max_locant_run=cfg.max_locant_run,
        max_repeats=cfg.max_repeats,
        max_tokens_per_atom=cfg.max_tokens_per_atom,
        soft_cap_per_atom=cfg.soft_cap_per_atom,
        soft_cap_rate=cfg.soft_cap_rate,
        length_penalty=cfg.length_penalty,
    )
    predictions = [b[0] for b in beams]
    seconds = time.perf_counter() - start
    report: dict[str, Any] = {
        "n": len(pairs),
        "num_beams": cfg.num_beams,
        "sample_seed": cfg.data_seed,
    }
    report["text"] = caption_metrics(predictions, pairs.texts)
    frame = pd.DataFrame({"id": pairs.ids, "smiles": pairs.smiles, "target": pairs.texts})
    for k in range(cfg.num_beams):
        frame[f"beam_{k}"] = [b[k] if k < len(b) else "" for b in beams]
    if task == "iupac":
        checks = check_beams(beams, pairs.smiles)
        first = [c[0] for c in checks]
        hits = [first_verified([x.same_structure for x in c]) for c in checks]
        report["opsin"] = OpsinReport(first).summary()  # the best beam's
        report["opsin"]["opsin_verify_rate"] = sum(h is not None for h in hits) / len(hits)
        frame["opsin_parses"] = [c.parses for c in first]
        frame["opsin_same_structure"] = [c.same_structure for c in first]
        frame["verified_beam"] = [-1 if h is None else h for h in hits]
    report["generation_seconds"] = seconds
    with atomic_writer(out / "test_predictions.csv") as tmp:
        frame.to_csv(tmp, index=False)
    return report
