"""``molfm optimize``: pair-tune a soft prompt for a property and optimize molecules with it.

All logic lives in :mod:`molfm.systems.gp_molformer.pair_tuning.pipeline`; this module maps flags to a
:class:`~molfm.systems.gp_molformer.pair_tuning.pipeline.PairTuningConfig` and turns errors into clear messages.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from molfm.systems.gp_molformer import DEFAULT_PAIR_TUNING_MODEL

console = Console()
err_console = Console(stderr=True)

__all__ = ["optimize"]


def optimize(
    model: str = typer.Option(
        DEFAULT_PAIR_TUNING_MODEL,
        help="Base model (shipped name or checkpoint dir); default: the analog-pretrained one.",
    ),
    property: str | None = typer.Option(
        None, "--property", help="qed, plogp, or a numeric column of --data (default qed)."
    ),
    data: str = typer.Option("moses", help="Molecules to mine pairs from: moses or a CSV path."),
    smiles_column: str = typer.Option("smiles", help="SMILES column of --data and --input."),
    property_column: str | None = typer.Option(
        None, help="Column of --data/--input with precomputed values of --property."
    ),
    n_molecules: int = typer.Option(20_000, help="Molecules to mine pairs from."),
    min_similarity: float = typer.Option(0.4, help="Least Tanimoto similarity of a pair."),
    min_improvement: float = typer.Option(0.0, help="Least property gain of a pair (strict)."),
    n_prompt: int = typer.Option(20, help="Soft-prompt vectors."),
    max_steps: int = typer.Option(1000, help="Prompt training steps."),
    batch_size: int = typer.Option(32, help="Pairs per training step."),
    lr: float = typer.Option(3e-2, help="Prompt learning rate (AdamW)."),
    n_sources: int = typer.Option(100, help="Held-out lowest-property molecules to optimize."),
    n_candidates: int = typer.Option(20, help="Candidates generated per molecule."),
    temperature: float = typer.Option(1.0, help="Sampling temperature (0 = greedy)."),
    top_k: int | None = typer.Option(None, help="Keep the k most likely tokens."),
    top_p: float | None = typer.Option(None, help="Nucleus sampling mass."),
    syntax_mask: bool = typer.Option(False, help="Sample candidates with the SMILES syntax mask."),
    seed: int = typer.Option(0, help="Seed of the prompt and of sampling."),
    data_seed: int = typer.Option(0, help="Seed of the molecule draws and pair subsets."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
    output_dir: Path = typer.Option(Path("optimize_out"), help="Where outputs are written."),
    prompt: Path | None = typer.Option(
        None, help="Reuse a trained prompt directory; only optimize --input."
    ),
    input: Path | None = typer.Option(None, "--input", help="CSV of molecules to optimize."),
    on_invalid: str = typer.Option("error", help="error or skip (skipped rows: invalid.csv)."),
    progress: bool = typer.Option(True, help="Show the training progress bar."),
) -> None:
    """Pair-tuning (GP-MoLFormer): learn a soft prompt from similar molecule pairs whose
    target has the better property, then generate improved, similar molecules.

    Writes pairs.csv, prompt/, candidates.csv, report.json (and invalid.csv) to --output-dir.
    """
    from molfm.systems.gp_molformer.pair_tuning.pipeline import (  # heavy: lazy
        PairTuningConfig,
        run_pair_tuning,
    )

    if on_invalid not in ("error", "skip"):
        raise typer.BadParameter("must be 'error' or 'skip'", param_hint="--on-invalid")
    for path, hint in ((input, "--input"), (prompt, "--prompt")):
        if path is not None and not path.exists():
            raise typer.BadParameter(f"{path} does not exist", param_hint=hint)
    if prompt is not None and input is None:
        raise typer.BadParameter("--prompt needs --input (the molecules to optimize)")
    cfg = PairTuningConfig(
        output_dir=str(output_dir),
        model=model,
        property=property,
        property_column=property_column,
        data=data,
        smiles_column=smiles_column,
        n_molecules=n_molecules,
        min_similarity=min_similarity,
        min_improvement=min_improvement,
        n_prompt=n_prompt,
        max_steps=max_steps,
        batch_size=batch_size,
        lr=lr,
        n_sources=n_sources,
        n_candidates=n_candidates,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        syntax_mask=syntax_mask,
        seed=seed,
        data_seed=data_seed,
        device=device,
        prompt=None if prompt is None else str(prompt),
        input=None if input is None else str(input),
        on_invalid=on_invalid,
        progress=progress,
    )
    try:
        result = run_pair_tuning(cfg, log=lambda text: console.print(escape(str(text))))
    except (ValueError, FileNotFoundError, KeyError) as err:
        err_console.print(f"[red]error:[/red] {escape(str(err))}", soft_wrap=True)
        raise typer.Exit(1) from None
    if result["n_invalid"]:
        console.print(f"rejected {result['n_invalid']} molecules, listed in invalid.csv")
    report = {k: v for k, v in result["report"].items() if k != "training"}
    console.print(json.dumps(report, indent=2), markup=False, highlight=False)
    console.print(f"outputs in {output_dir}")
