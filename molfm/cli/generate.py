"""``molfm generate`` and ``molfm decorate``: sample molecules from a SMILES model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from molfm.systems.gp_molformer import DEFAULT_SMILES_MODEL

console = Console()
err_console = Console(stderr=True)


def _load(model: str, device: str):
    from molfm.systems.gp_molformer.model import load_smiles_model  # torch: imported when needed

    try:
        return load_smiles_model(model, device=device)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise typer.BadParameter(str(err), param_hint="--model") from None


def _train_set(data: str | None) -> frozenset[str] | None:
    """Canonical training SMILES for novelty (cached after the first use)."""
    if data is None:
        return None
    from molfm.eval.training_set import training_set

    return training_set(data)


def generate(
    n: int = typer.Option(1000, "-n", help="Number of molecules to sample."),
    model: str = typer.Option(DEFAULT_SMILES_MODEL, help="Shipped model name or checkpoint dir."),
    output: Path = typer.Option(Path("generated.csv"), "--output", "-o", help="CSV to write."),
    batch_size: int = typer.Option(256),
    temperature: float = typer.Option(1.0, help="Softmax temperature (0 = greedy)."),
    top_k: int | None = typer.Option(None, help="Keep the k most likely tokens."),
    top_p: float | None = typer.Option(None, help="Nucleus sampling mass."),
    max_length: int | None = typer.Option(None, help="Token limit (default: the model's)."),
    seed: int = typer.Option(0),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
    train_data: str | None = typer.Option(None, help="Novelty against this (moses or a CSV)."),
    syntax_mask: bool = typer.Option(
        False, help="Ban tokens that break SMILES syntax (rings, branches, endings)."
    ),
) -> None:
    """De novo generation to CSV, with live validity/uniqueness."""
    from molfm.systems.gp_molformer.generation import generate_frame, summarize

    lm, tokenizer = _load(model, device)
    columns = [TextColumn("sampling"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, TextColumn("{task.fields[stats]}"), console=console) as bar:
        task = bar.add_task("sampling", total=n, stats="")
        frame = generate_frame(
            lm,
            tokenizer,
            n,
            batch_size=batch_size,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            max_length=max_length,
            seed=seed,
            device=device,
            syntax_mask=syntax_mask,
            on_batch=lambda k, stats: bar.update(task, advance=k, stats=stats.describe()),
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(output, index=False)
    summary = summarize(frame, _train_set(train_data))
    summary["molecules_per_s"] = n / frame.attrs["seconds"]
    console.print(f"wrote {len(frame)} rows to {output}")
    console.print(json.dumps(summary, indent=2), markup=False, highlight=False)


def decorate(
    scaffold: list[str] = typer.Option(None, help="Scaffold SMILES with [*] (repeatable)."),
    scaffolds_file: Path | None = typer.Option(None, help="Text/CSV file of scaffolds."),
    n: int = typer.Option(100, "-n", help="Decorations per scaffold."),
    model: str = typer.Option(DEFAULT_SMILES_MODEL, help="Shipped model name or checkpoint dir."),
    output: Path = typer.Option(Path("decorated.csv"), "--output", "-o"),
    batch_size: int = typer.Option(256),
    temperature: float = typer.Option(1.0),
    top_k: int | None = typer.Option(None),
    top_p: float | None = typer.Option(None),
    seed: int = typer.Option(0),
    device: str = typer.Option("cpu"),
    train_data: str | None = typer.Option(None, help="Novelty against this (moses or a CSV)."),
) -> None:
    """Scaffold-constrained decoration: fill every [*] of each scaffold, no extra training."""
    from molfm.chem.parse import InvalidMoleculeError
    from molfm.systems.gp_molformer.generation import decorate_frame, summarize
    from molfm.systems.gp_molformer.tokenizer import UnknownTokenError

    scaffolds = list(scaffold or [])
    if scaffolds_file is not None:
        if not scaffolds_file.exists():
            raise typer.BadParameter(
                f"{scaffolds_file} does not exist", param_hint="--scaffolds-file"
            )
        lines = [ln.split(",")[0].strip() for ln in scaffolds_file.read_text().splitlines()]
        scaffolds += [ln for ln in lines if ln and ln.lower() not in ("scaffold", "smiles")]
    if not scaffolds:
        raise typer.BadParameter("give --scaffold or a non-empty --scaffolds-file")
    lm, tokenizer = _load(model, device)
    train = _train_set(train_data)
    frames, reports = [], []
    for index, text in enumerate(scaffolds):
        try:
            frame = decorate_frame(
                lm,
                tokenizer,
                text,
                n,
                batch_size=batch_size,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                seed=seed,
                device=device,
            )
        except (InvalidMoleculeError, UnknownTokenError) as err:
            err_console.print(f"[red]scaffold {index}[/red] {escape(str(err))}")
            raise typer.Exit(1) from None
        frames.append(frame)
        reports.append({"scaffold": text} | summarize(frame, train))
    result = pd.concat(frames, ignore_index=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(output, index=False)
    console.print(f"wrote {len(result)} rows to {output}")
    console.print(json.dumps(reports, indent=2), markup=False, highlight=False)
