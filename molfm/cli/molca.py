"""``molfm train molca``, ``molfm name``, ``molfm caption`` and ``molfm retrieve``: MolCA.

The work is done by :mod:`molfm.systems.molca` (:mod:`~molfm.systems.molca.run` for training);
this module maps flags to it and turns user errors into one line.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from molfm.cli.errors import fail, invalid_input, user_errors
from molfm.cli.options import (
    Accelerator,
    OnInvalid,
    accelerator_option,
    batch_size_option,
    cache_dir_option,
    config_option,
    data_seed_option,
    devices_option,
    merge_typed_config,
    model_option,
    must_be_positive,
    num_workers_option,
    on_invalid_option,
    output_dir_option,
    output_option,
    precision_option,
    seed_option,
    smiles_column_option,
)
from molfm.eval.text import verify_names
from molfm.systems.molca import NAMING_MODEL

__all__ = ["train_molca", "name", "caption", "retrieve", "DEFAULT_NAMING_MODEL"]

console = Console(soft_wrap=True)
DEFAULT_NAMING_MODEL = NAMING_MODEL


class Stage(StrEnum):
    one = "1"
    two = "2"
    finetune = "finetune"


class InputMode(StrEnum):
    d1 = "1d"
    d2 = "2d"
    d1d2 = "1d2d"


class LMTuningMode(StrEnum):
    lora = "lora"
    full = "full"
    frozen = "frozen"


# ----------------------------------------------------------------------------- train
def train_molca(
    ctx: typer.Context,
    stage: Stage = typer.Option(..., "--stage", help="1 (Q-Former), 2 (frozen LM) or finetune."),
    output_dir: Path = output_dir_option(),
    data: str | None = typer.Option(
        None, "--data", help="A registered data set: pubchem-names (IUPAC names, synonyms)."
    ),
    data_path: Path | None = typer.Option(
        None,
        "--data-path",
        dir_okay=False,
        help="Your SMILES + text file: ChEBI-20 TSV, PubChem324k-style CSV, any CSV/TSV.",
    ),
    task: str | None = typer.Option(
        None,
        "--task",
        help="iupac (default with --data), caption (default with --data-path), names (stage 1).",
    ),
    smiles_column: str | None = typer.Option(None, "--smiles-column", help="SMILES column."),
    text_column: str | None = typer.Option(None, "--text-column", help="Text column."),
    init: str | None = typer.Option(
        None,
        "--init",
        help="Stage 2: a stage-1 run or model; finetune: a stage-1 or stage-2 MolCA run.",
    ),
    graph_encoder: str = typer.Option(
        "gine", "--graph-encoder", help="gine, gps, or a pretrained encoder (name or directory)."
    ),
    graph_layers: int | None = typer.Option(None, min=1, help="Layers of a fresh encoder."),
    graph_dim: int | None = typer.Option(None, min=1, help="Width of a fresh encoder."),
    qformer_layers: int | None = typer.Option(
        None, min=1, help="Q-Former layers (MiniLM's first N; default 6)."
    ),
    num_query_tokens: int | None = typer.Option(None, min=1, help="Q-Former queries (8)."),
    lm: str = typer.Option("smollm2", "--lm", help="smollm2 or a local HF causal-LM folder."),
    input_mode: InputMode = typer.Option(
        InputMode.d1d2, "--input-mode", help="SMILES only (1d), graph only (2d), or both."
    ),
    lm_tuning: LMTuningMode = typer.Option(
        LMTuningMode.lora, "--lm-tuning", help="How the LM trains in finetune (stage 2: frozen)."
    ),
    lora_r: int = typer.Option(16, min=1, help="LoRA rank (alpha = 2r)."),
    limit_train: int | None = typer.Option(
        None, min=1, help="Train on a seeded subset of N training molecules."
    ),
    batch_size: int = batch_size_option(8),
    lr: float = typer.Option(1e-4, callback=must_be_positive, help="Peak learning rate (> 0)."),
    weight_decay: float = typer.Option(0.05, min=0.0, help="AdamW weight decay."),
    warmup_steps: int = typer.Option(100, min=0, help="Steps of linear learning-rate warm-up."),
    max_steps: int = typer.Option(1000, min=1, help="Optimizer steps in all."),
    val_every_n_steps: int | None = typer.Option(
        None, min=1, help="Validate and checkpoint every N steps (default: once per epoch)."
    ),
    eval_limit: int = typer.Option(64, min=0, help="Test molecules to evaluate at the end."),
    num_beams: int = typer.Option(5, min=1, help="Beams for the test-set generation."),
    max_new_tokens: int = typer.Option(64, min=1, help="Longest generated text, in tokens."),
    rerank: int = typer.Option(
        0, min=0, help="Stage 1 evaluation: also re-rank each query's best N (0: skip)."
    ),
    matching: bool = typer.Option(
        True, help="Stage 1: train the matching head (needed by --rerank at retrieval)."
    ),
    captioning: bool = typer.Option(True, help="Stage 1: train Q-Former captioning."),
    tune_word_embeddings: bool = typer.Option(
        True,
        help="Stage 1: train the Q-Former's word embeddings (--no-tune-word-embeddings keeps "
        "MiniLM's, frozen and out of the checkpoint; use it with --no-captioning).",
    ),
    limit_val: int | None = typer.Option(
        None, min=1, help="Validate on the first N validation pairs only."
    ),
    seed: int = seed_option(),
    data_seed: int = data_seed_option(),
    on_invalid: OnInvalid = on_invalid_option(),
    accelerator: Accelerator = accelerator_option(),
    devices: str = devices_option(),
    precision: str = precision_option(),
    num_workers: int = num_workers_option(),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    cache_dir: Path | None = cache_dir_option(),
    config: Path | None = config_option(),
) -> None:
    """Train one MolCA stage (1, 2 or finetune) on pubchem-names or your SMILES + text file."""
    p = merge_typed_config(ctx, config, {k: v for k, v in locals().items() if k != "ctx"})
    out = Path(p["output_dir"])
    with user_errors(created=[out]):
        from molfm.chem.parse import InvalidMoleculeError
        from molfm.data.fetch import use_cache_dir
        from molfm.systems.molca.run import MolCATrainConfig
        from molfm.systems.molca.run import train_molca as run

        if (p["data"] is None) == (p["data_path"] is None):
            raise ValueError("give --data pubchem-names or --data-path FILE")
        if p["data_path"] is not None and not Path(p["data_path"]).is_file():
            raise FileNotFoundError(f"--data-path {p['data_path']} does not exist")
        graph = {"num_layers": p["graph_layers"], "dim": p["graph_dim"]}
        qformer = {"num_layers": p["qformer_layers"], "num_query_tokens": p["num_query_tokens"]}
        cfg = MolCATrainConfig(
            output_dir=str(out),
            stage=str(p["stage"]),
            task=p["task"],
            data=p["data"],
            data_path=str(p["data_path"]) if p["data_path"] else None,
            smiles_column=p["smiles_column"],
            text_column=p["text_column"],
            init=p["init"],
            graph_encoder=p["graph_encoder"],
            graph_overrides={k: v for k, v in graph.items() if v is not None},
            qformer={k: v for k, v in qformer.items() if v is not None},
            lm=p["lm"],
            input_mode=str(p["input_mode"]),
            lm_tuning=str(p["lm_tuning"]),
            lora_r=p["lora_r"],
            stage1_options={
                "matching": p["matching"],
                "captioning": p["captioning"],
                "tune_word_embeddings": p["tune_word_embeddings"],
            },
            limit_train=p["limit_train"],
            limit_val=p["limit_val"],
            batch_size=p["batch_size"],
            lr=p["lr"],
            weight_decay=p["weight_decay"],
            warmup_steps=p["warmup_steps"],
            max_steps=p["max_steps"],
            val_every_n_steps=p["val_every_n_steps"],
            eval_limit=p["eval_limit"],
            num_beams=p["num_beams"],
            max_new_tokens=p["max_new_tokens"],
            rerank=p["rerank"],
            seed=p["seed"],
            data_seed=p["data_seed"],
            on_invalid=str(p["on_invalid"]),
            num_workers=p["num_workers"],
            accelerator=str(p["accelerator"]),
            devices=p["devices"],
            precision=p["precision"],
            progress=p["progress"],
        )
        with use_cache_dir(p["cache_dir"]):
            try:
                model_dir = run(cfg)
            except InvalidMoleculeError as err:
                raise invalid_input(err) from None
    report = json.loads((out / "metrics.json").read_text())
    console.print(f"[bold]saved[/bold] {model_dir}", highlight=False)
    console.print(json.dumps(report["metrics"], indent=2), markup=False, highlight=False)


# ----------------------------------------------------------------------------- inference
def _read_molecules(path: Path, smiles_column: str, on_invalid: str):
    """``(rows, smiles, graphs, rejected)`` of a CSV/TSV of SMILES, in file order."""
    import pandas as pd

    from molfm.chem.featurize import mol_to_data
    from molfm.chem.parse import InvalidMoleculeError, parse_smiles

    if not path.is_file():
        raise FileNotFoundError(f"--data-path {path} does not exist")
    with open(path, encoding="utf-8") as fh:
        header = fh.readline()
    frame = pd.read_csv(path, sep="\t" if "\t" in header else ",", dtype=str, keep_default_na=False)
    if smiles_column not in frame.columns:
        raise ValueError(
            f"no SMILES column {smiles_column!r} in {path}; columns: {list(frame.columns)}"
        )
    if frame.empty:
        raise ValueError(f"{path} has a header but no data rows")
    rows, smiles, graphs, rejected = [], [], [], []
    for row, value in enumerate(frame[smiles_column]):
        try:
            mol = parse_smiles(value, row=row)
        except InvalidMoleculeError as err:
            if on_invalid == "error":
                raise
            rejected.append({"row": row, "smiles": value, "reason": err.reason})
            continue
        rows.append(row), smiles.append(value), graphs.append(mol_to_data(mol))
    return rows, smiles, graphs, pd.DataFrame(rejected, columns=["row", "smiles", "reason"])


def _load(model: str, model_type: str, device):
    from molfm.hub import from_pretrained, load_config, resolve_checkpoint

    path = resolve_checkpoint(model)
    kind = load_config(path).get("model_type")
    if kind != model_type:
        want = "a MolCA (stage 2 / finetune)" if model_type == "molca" else "a MolCA stage-1"
        raise ValueError(f"--model {model} holds a {kind!r} model; this command needs {want} model")
    return from_pretrained(path).to(device).eval()


def _write(frame, output: Path, rejected) -> Path | None:
    from molfm.atomic import atomic_writer

    with atomic_writer(output) as tmp:
        frame.to_csv(tmp, index=False)
    if len(rejected):
        invalid = output.with_name("invalid.csv")
        with atomic_writer(invalid) as tmp:
            rejected.to_csv(tmp, index=False)
        return invalid
    return None


def _generate_file(
    task: str,
    model: str,
    data_path: Path,
    output: Path,
    smiles_column: str,
    on_invalid: str,
    num_beams: int,
    verify: bool,
    batch_size: int,
    max_new_tokens: int,
    accelerator: str,
    devices: str,
    column: str,
) -> None:
    invalid = None
    with user_errors(created=[output, output.with_name("invalid.csv")]):
        import pandas as pd
        import torch

        from molfm.chem.parse import InvalidMoleculeError
        from molfm.engine.hardware import inference_device
        from molfm.systems.molca.data import MolTextDataset
        from molfm.systems.molca.run import generate_texts

        device = inference_device(accelerator, devices)
        try:
            rows, smiles, graphs, rejected = _read_molecules(data_path, smiles_column, on_invalid)
        except InvalidMoleculeError as err:
            raise invalid_input(err) from None
        molca = _load(model, "molca", device)
        molca.config.instruction(task)  # a model without this task fails in one line
        dataset = MolTextDataset(graphs, smiles, [""] * len(smiles))
        k = num_beams if verify else 1
        with torch.no_grad():
            beams = generate_texts(
                molca,
                dataset,
                task,
                batch_size=batch_size,
                num_beams=num_beams,
                num_return_sequences=k,
                max_new_tokens=max_new_tokens,
            )
        frame = pd.DataFrame({"row": rows, "smiles": smiles})
        if verify:
            names, verified = verify_names(beams, smiles)
            frame[column], frame["verified"] = names, verified
        else:
            frame[column] = [b[0] for b in beams]
        invalid = _write(frame, output, rejected)
    console.print(f"wrote {len(frame)} {column}s to {output}", highlight=False)
    if verify:
        console.print(f"{int(frame['verified'].sum())} verified by OPSIN", highlight=False)
    if invalid is not None:
        console.print(f"rejected {len(rejected)} rows, listed in {invalid}", highlight=False)


def name(
    data_path: Path = typer.Option(..., "--data-path", dir_okay=False, help="A CSV of SMILES."),
    output: Path = output_option(Path("names.csv"), help="The CSV of names to write."),
    model: str = model_option(
        DEFAULT_NAMING_MODEL, help="A shipped MolCA naming model or a run's model/ directory."
    ),
    verify: bool = typer.Option(
        False, help="Check each beam with OPSIN; keep the first that is the input structure."
    ),
    num_beams: int = typer.Option(5, min=1, help="Beams (all are checked with --verify)."),
    smiles_column: str = smiles_column_option(),
    on_invalid: OnInvalid = on_invalid_option(),
    batch_size: int = batch_size_option(16),
    max_new_tokens: int = typer.Option(96, min=1, help="Longest name, in tokens."),
    accelerator: Accelerator = accelerator_option(),
    devices: str = devices_option(),
) -> None:
    """IUPAC names for every molecule of a CSV, in input order (beam search)."""
    _generate_file(
        "iupac",
        model,
        data_path,
        output,
        smiles_column,
        str(on_invalid),
        num_beams,
        verify,
        batch_size,
        max_new_tokens,
        str(accelerator),
        devices,
        "name",
    )


def caption(
    data_path: Path = typer.Option(..., "--data-path", dir_okay=False, help="A CSV of SMILES."),
    output: Path = output_option(Path("captions.csv"), help="The CSV of captions to write."),
    model: str = model_option(None, help="A MolCA captioning run's model/ directory."),
    num_beams: int = typer.Option(5, min=1, help="Beams."),
    smiles_column: str = smiles_column_option(),
    on_invalid: OnInvalid = on_invalid_option(),
    batch_size: int = batch_size_option(16),
    max_new_tokens: int = typer.Option(128, min=1, help="Longest caption, in tokens."),
    accelerator: Accelerator = accelerator_option(),
    devices: str = devices_option(),
) -> None:
    """A text description of every molecule of a CSV, in input order (beam search)."""
    if model is None:
        raise fail("give --model: a MolCA captioning run (no captioning model is shipped)")
    _generate_file(
        "caption",
        model,
        data_path,
        output,
        smiles_column,
        str(on_invalid),
        num_beams,
        False,
        batch_size,
        max_new_tokens,
        str(accelerator),
        devices,
        "caption",
    )


def retrieve(
    data_path: Path = typer.Option(
        ..., "--data-path", dir_okay=False, help="Candidates: molecules (CSV) or texts (CSV)."
    ),
    text: list[str] | None = typer.Option(
        None, "--text", help="Query text(s): find molecules (repeat for several)."
    ),
    smiles: list[str] | None = typer.Option(
        None, "--smiles", help="Query molecule(s): find texts (repeat for several)."
    ),
    model: str = model_option(None, help="A MolCA stage-1 run or its model/ directory."),
    output: Path = output_option(Path("hits.csv"), help="The CSV of hits to write."),
    top_k: int = typer.Option(10, "--top-k", min=1, help="Hits per query."),
    rerank: int = typer.Option(
        128, min=0, help="Re-rank each query's best N with the matching head (0: off)."
    ),
    smiles_column: str = smiles_column_option(),
    text_column: str = typer.Option("text", "--text-column", help="Column of the texts."),
    on_invalid: OnInvalid = on_invalid_option(),
    batch_size: int = batch_size_option(64),
    accelerator: Accelerator = accelerator_option(),
    devices: str = devices_option(),
) -> None:
    """Text -> molecule (--text) or molecule -> text (--smiles) retrieval with a stage-1 model."""
    with user_errors(created=[output, output.with_name("invalid.csv")]):
        import pandas as pd

        from molfm.chem.parse import InvalidMoleculeError, parse_smiles
        from molfm.engine.hardware import inference_device
        from molfm.systems.molca.retrieval import retrieve as run

        if model is None:
            raise ValueError("give --model: a MolCA stage-1 run or its model/ directory")
        if bool(text) == bool(smiles):
            raise ValueError("give --text (text -> molecule) or --smiles (molecule -> text)")
        device = inference_device(str(accelerator), devices)
        rejected = pd.DataFrame(columns=["row", "smiles", "reason"])
        candidates: list[Any]
        if text:
            direction, queries = "text-to-molecule", list(text)
            try:
                rows, cand_smiles, candidates, rejected = _read_molecules(
                    data_path, smiles_column, str(on_invalid)
                )
            except InvalidMoleculeError as err:
                raise invalid_input(err) from None
            shown = cand_smiles
        else:
            direction = "molecule-to-text"
            for s in smiles:
                try:
                    parse_smiles(s)
                except InvalidMoleculeError as err:
                    raise ValueError(f"--smiles {s!r}: {err.reason}") from None
            queries = list(smiles)
            frame = _read_texts(data_path, text_column)
            rows, candidates = list(range(len(frame))), frame[text_column].tolist()
            shown = candidates
        stage1 = _load(model, "molca-stage1", device)
        hits = run(
            stage1,
            queries,
            candidates,
            direction,
            top_k=top_k,
            rerank=rerank,
            batch_size=batch_size,
        )
        column = "smiles" if direction == "text-to-molecule" else "text"
        out = pd.DataFrame(
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
        invalid = _write(out, output, rejected)
    console.print(f"wrote {len(out)} hits to {output}", highlight=False)
    if invalid is not None:
        console.print(f"rejected {len(rejected)} rows, listed in {invalid}", highlight=False)


def _read_texts(path: Path, column: str):
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(f"--data-path {path} does not exist")
    with open(path, encoding="utf-8") as fh:
        header = fh.readline()
    frame = pd.read_csv(path, sep="\t" if "\t" in header else ",", dtype=str, keep_default_na=False)
    if column not in frame.columns:
        raise ValueError(f"no text column {column!r} in {path}; columns: {list(frame.columns)}")
    if frame.empty:
        raise ValueError(f"{path} has a header but no data rows")
    return frame
