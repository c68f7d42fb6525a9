"""``molfm generate`` and ``molfm decorate``: sample molecules from a SMILES model.

Options are checked before the model loads (ranges by the parser, scaffolds, hardware); the
CSV is written atomically once sampling has finished, so a failed run leaves no file behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from molfm.cli.errors import user_errors
from molfm.cli.options import (
    Accelerator,
    accelerator_option,
    batch_size_option,
    cache_dir_option,
    config_option,
    count_option,
    devices_option,
    merge_typed_config,
    model_option,
    num_workers_option,
    output_option,
    precision_option,
    seed_option,
    temperature_option,
    top_k_option,
    top_p_option,
)
from molfm.systems.gp_molformer import DEFAULT_SMILES_MODEL

console = Console()

_MODEL_HELP = "The SMILES model to sample from: a shipped name or a checkpoint directory."
_BATCH_HELP = "Sequences sampled together (part of the random stream: it changes the molecules)."
_TRAIN_DATA_HELP = (
    "Also report novelty against this training set: a registered data set (moses) or a CSV file."
)
_WORKERS_HELP = (
    "CPU worker processes that canonicalize --train-data the first time it is used "
    "(0 = in the main process); default: every core."
)


def train_data_option() -> Any:
    return typer.Option(None, "--train-data", help=_TRAIN_DATA_HELP)


def _hardware(p: dict[str, Any]):
    """The torch device of ``--accelerator/--devices``, ``--precision`` checked (one line)."""
    from molfm.engine.hardware import check_hardware, inference_device

    device = inference_device(str(p["accelerator"]), p["devices"])
    check_hardware("cpu" if device.type == "cpu" else "gpu", 1, str(p["precision"]))
    return device


def _load(model: str, device):
    from molfm.systems.gp_molformer.model import load_smiles_model  # torch: imported when needed

    return load_smiles_model(model, device=device)


def _train_set(data: str | None, num_workers: int | None) -> frozenset[str] | None:
    """Canonical training SMILES for novelty (cached after the first use)."""
    if data is None:
        return None
    from molfm.eval.training_set import training_set

    return training_set(data, n_jobs=None if num_workers is None else max(1, num_workers))


def _write_csv(frame: pd.DataFrame, output: Path) -> None:
    from molfm.atomic import atomic_writer

    with atomic_writer(output) as tmp:
        frame.to_csv(tmp, index=False)


def generate(
    ctx: typer.Context,
    n: int = count_option(1000, "How many molecules to sample."),
    model: str = model_option(DEFAULT_SMILES_MODEL, _MODEL_HELP),
    output: Path = output_option(
        Path("generated.csv"), "The CSV file to write (one row a sample)."
    ),
    batch_size: int = batch_size_option(256, _BATCH_HELP),
    temperature: float = temperature_option(),
    top_k: int | None = top_k_option(),
    top_p: float | None = top_p_option(),
    max_length: int | None = typer.Option(
        None,
        min=2,
        help="The longest sequence in tokens, <bos> and <eos> included; default: the model's.",
    ),
    seed: int = seed_option(),
    accelerator: Accelerator = accelerator_option(),
    devices: str = devices_option(),
    precision: str = precision_option(),
    train_data: str | None = train_data_option(),
    num_workers: int | None = num_workers_option(None, help=_WORKERS_HELP),
    cache_dir: Path | None = cache_dir_option(),
    syntax_mask: bool = typer.Option(
        False, help="Ban tokens that break SMILES syntax (unclosed rings or branches, endings)."
    ),
    config: Path | None = config_option(),
) -> None:
    """Sample new molecules (de novo) into a CSV, showing validity and uniqueness as it runs."""
    p = merge_typed_config(ctx, config, {k: v for k, v in locals().items() if k != "ctx"})
    output = Path(p["output"])
    with user_errors(created=[output]):
        from molfm.data.fetch import use_cache_dir
        from molfm.systems.gp_molformer.generation import generate_frame, summarize

        device = _hardware(p)
        lm, tokenizer = _load(p["model"], device)
        with use_cache_dir(p["cache_dir"]):
            train = _train_set(p["train_data"], p["num_workers"])  # before sampling: fail fast
        columns = [TextColumn("sampling"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        with Progress(*columns, TextColumn("{task.fields[stats]}"), console=console) as bar:
            task = bar.add_task("sampling", total=p["n"], stats="")
            frame = generate_frame(
                lm,
                tokenizer,
                p["n"],
                batch_size=p["batch_size"],
                temperature=p["temperature"],
                top_k=p["top_k"],
                top_p=p["top_p"],
                max_length=p["max_length"],
                seed=p["seed"],
                device=device,
                precision=str(p["precision"]),
                syntax_mask=p["syntax_mask"],
                on_batch=lambda k, stats: bar.update(task, advance=k, stats=stats.describe()),
            )
        _write_csv(frame, output)
    summary = summarize(frame, train)
    summary["molecules_per_s"] = p["n"] / frame.attrs["seconds"]
    console.print(f"wrote {len(frame)} rows to {output}", markup=False, highlight=False)
    console.print(json.dumps(summary, indent=2), markup=False, highlight=False)


def _read_scaffolds(scaffold: list[str] | None, scaffolds_file: Path | None) -> list[str]:
    scaffolds = list(scaffold or [])
    if scaffolds_file is not None:
        if not scaffolds_file.is_file():
            raise FileNotFoundError(f"--scaffolds-file {scaffolds_file} does not exist")
        lines = [ln.split(",")[0].strip() for ln in scaffolds_file.read_text().splitlines()]
        scaffolds += [ln for ln in lines if ln and ln.lower() not in ("scaffold", "smiles")]
    if not scaffolds:
        raise ValueError("give --scaffold SMILES or a non-empty --scaffolds-file")
    return scaffolds


def _check_scaffold(index: int, text: str, tokenizer=None) -> None:
    """Raise a ValueError naming the scaffold when it has no usable attachment point, does not
    parse, or (with ``tokenizer``) holds a token the model does not know."""
    from molfm.systems.gp_molformer.decoration import FORCED, scaffold_template
    from molfm.systems.gp_molformer.tokenizer import UnknownTokenError

    try:
        template = scaffold_template(text)
        if tokenizer is not None:
            unknown = sorted(
                {t for k, t in template.items if k == FORCED and tokenizer.token_to_id(t) is None}
            )
            if unknown:
                raise UnknownTokenError(template.smiles, unknown)
    except ValueError as err:
        raise ValueError(f"scaffold {index}: {err}") from None


def decorate(
    ctx: typer.Context,
    scaffold: list[str] = typer.Option(
        None, help="A scaffold SMILES with [*] attachment points (repeat the flag for several)."
    ),
    scaffolds_file: Path | None = typer.Option(
        None, dir_okay=False, help="A text or CSV file of scaffolds, one per line (first column)."
    ),
    n: int = count_option(100, "How many decorations to sample per scaffold."),
    model: str = model_option(DEFAULT_SMILES_MODEL, _MODEL_HELP),
    output: Path = output_option(
        Path("decorated.csv"), "The CSV file to write (one row a sample)."
    ),
    batch_size: int = batch_size_option(256, _BATCH_HELP),
    temperature: float = temperature_option(),
    top_k: int | None = top_k_option(),
    top_p: float | None = top_p_option(),
    seed: int = seed_option(),
    accelerator: Accelerator = accelerator_option(),
    devices: str = devices_option(),
    precision: str = precision_option(),
    train_data: str | None = train_data_option(),
    num_workers: int | None = num_workers_option(None, help=_WORKERS_HELP),
    cache_dir: Path | None = cache_dir_option(),
    config: Path | None = config_option(),
) -> None:
    """Decorate scaffolds: fill every [*] of each scaffold with the model, no extra training."""
    p = merge_typed_config(ctx, config, {k: v for k, v in locals().items() if k != "ctx"})
    output = Path(p["output"])
    with user_errors(created=[output]):
        from molfm.data.fetch import use_cache_dir
        from molfm.systems.gp_molformer.generation import decorate_frame, summarize

        scaffolds = _read_scaffolds(p["scaffold"], p["scaffolds_file"])
        for index, text in enumerate(scaffolds):  # before the model loads
            _check_scaffold(index, text)
        device = _hardware(p)
        lm, tokenizer = _load(p["model"], device)
        for index, text in enumerate(scaffolds):  # before any sampling
            _check_scaffold(index, text, tokenizer)
        with use_cache_dir(p["cache_dir"]):
            train = _train_set(p["train_data"], p["num_workers"])
        frames, reports = [], []
        for text in scaffolds:
            frame = decorate_frame(
                lm,
                tokenizer,
                text,
                p["n"],
                batch_size=p["batch_size"],
                temperature=p["temperature"],
                top_k=p["top_k"],
                top_p=p["top_p"],
                seed=p["seed"],
                device=device,
                precision=str(p["precision"]),
            )
            frames.append(frame)
            reports.append({"scaffold": text} | summarize(frame, train))
        result = pd.concat(frames, ignore_index=True)
        _write_csv(result, output)
    console.print(f"wrote {len(result)} rows to {output}", markup=False, highlight=False)
    console.print(json.dumps(reports, indent=2), markup=False, highlight=False)
