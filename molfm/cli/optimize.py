"""``molfm optimize``: pair-tune a soft prompt for a property and optimize molecules with it.

All logic lives in :mod:`molfm.systems.gp_molformer.pair_tuning.pipeline`; this module maps
flags (and ``--config FILE.yaml``) to a
:class:`~molfm.systems.gp_molformer.pair_tuning.pipeline.PairTuningConfig`. Every error a user
can cause is one line and exit code 1, and an output directory the command created is removed
again when the run fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from molfm.cli.errors import user_errors
from molfm.cli.options import (
    Accelerator,
    OnInvalid,
    accelerator_option,
    batch_size_option,
    cache_dir_option,
    config_option,
    data_option,
    data_path_option,
    data_seed_option,
    devices_option,
    merge_typed_config,
    model_option,
    must_be_positive,
    on_invalid_option,
    output_dir_option,
    precision_option,
    resolve_data,
    seed_option,
    smiles_column_option,
    temperature_option,
    top_k_option,
    top_p_option,
)
from molfm.systems.gp_molformer import DEFAULT_PAIR_TUNING_MODEL

console = Console()

__all__ = ["optimize"]


def optimize(
    ctx: typer.Context,
    model: str = model_option(
        DEFAULT_PAIR_TUNING_MODEL,
        "The base model (a shipped name or a checkpoint directory); default: the "
        "analog-pretrained one.",
    ),
    property: str | None = typer.Option(
        None,
        "--property",
        help="The property to improve: qed, plogp, or a numeric column of --data-path "
        "(default: qed).",
    ),
    data: str | None = data_option(
        None, "The registered data set to mine pairs from (default: moses)."
    ),
    data_path: Path | None = data_path_option(
        "A CSV file of your own to mine pairs from (instead of --data)."
    ),
    smiles_column: str = smiles_column_option(),
    property_column: str | None = typer.Option(
        None, help="The column of --data-path or --input that holds precomputed --property values."
    ),
    n_molecules: int = typer.Option(20_000, min=1, help="How many molecules to mine pairs from."),
    min_similarity: float = typer.Option(
        0.4, min=0.0, max=1.0, help="The least Tanimoto similarity of a pair."
    ),
    min_improvement: float = typer.Option(
        0.0, min=0.0, help="The least property gain of a pair (a pair must exceed it)."
    ),
    n_prompt: int = typer.Option(20, min=1, help="How many soft-prompt vectors to train."),
    max_steps: int = typer.Option(1000, min=1, help="How many prompt training steps to run."),
    batch_size: int = batch_size_option(32, "Pairs per training step."),
    lr: float = typer.Option(
        3e-2, callback=must_be_positive, help="The prompt learning rate (AdamW)."
    ),
    n_sources: int = typer.Option(
        100, min=1, help="How many held-out lowest-property molecules to optimize."
    ),
    n_candidates: int = typer.Option(
        20, min=1, help="How many candidates to generate per molecule."
    ),
    temperature: float = temperature_option(),
    top_k: int | None = top_k_option(),
    top_p: float | None = top_p_option(),
    syntax_mask: bool = typer.Option(False, help="Sample candidates with the SMILES syntax mask."),
    seed: int = seed_option(),
    data_seed: int = data_seed_option(),
    accelerator: Accelerator = accelerator_option(),
    devices: str = devices_option(),
    precision: str = precision_option(),
    output_dir: Path = output_dir_option(
        Path("optimize_out"),
        "The directory to write pairs.csv, prompt/, candidates.csv, report.json and "
        "resolved_config.yaml to.",
    ),
    prompt: Path | None = typer.Option(
        None,
        file_okay=False,
        help="A trained prompt directory to reuse: only --input is optimized.",
    ),
    input: Path | None = typer.Option(
        None, "--input", dir_okay=False, help="A CSV file of the molecules to optimize."
    ),
    on_invalid: OnInvalid = on_invalid_option(),
    progress: bool = typer.Option(True, help="Show the training progress bar."),
    cache_dir: Path | None = cache_dir_option(),
    config: Path | None = config_option(),
) -> None:
    """Pair-tune GP-MoLFormer: learn a soft prompt from pairs of similar molecules whose
    target has the better property, then generate improved, similar molecules.

    Writes pairs.csv, prompt/, candidates.csv, report.json, run_config.json,
    resolved_config.yaml (and invalid.csv) to --output-dir.
    """
    p = merge_typed_config(ctx, config, {k: v for k, v in locals().items() if k != "ctx"})
    out = Path(p["output_dir"])
    with user_errors(created=[out]):
        from molfm.cli.config import save_resolved_config
        from molfm.data.fetch import use_cache_dir
        from molfm.systems.gp_molformer.pair_tuning.pipeline import (  # heavy: lazy
            PairTuningConfig,
            run_pair_tuning,
        )

        for path, flag in ((p["input"], "--input"), (p["prompt"], "--prompt")):
            if path is not None and not Path(path).exists():
                raise FileNotFoundError(f"{flag} {path} does not exist")
        if p["prompt"] is not None and p["input"] is None:
            raise ValueError("--prompt needs --input (the molecules to optimize)")
        data_name = resolve_data(p["data"], p["data_path"], default="moses")
        if p["data_path"] is None:
            p["data"] = data_name  # the resolved config names the data set used
        cfg = PairTuningConfig(
            output_dir=str(out),
            model=p["model"],
            property=p["property"],
            property_column=p["property_column"],
            data=data_name,
            smiles_column=p["smiles_column"],
            n_molecules=p["n_molecules"],
            min_similarity=p["min_similarity"],
            min_improvement=p["min_improvement"],
            n_prompt=p["n_prompt"],
            max_steps=p["max_steps"],
            batch_size=p["batch_size"],
            lr=p["lr"],
            n_sources=p["n_sources"],
            n_candidates=p["n_candidates"],
            temperature=p["temperature"],
            top_k=p["top_k"],
            top_p=p["top_p"],
            syntax_mask=p["syntax_mask"],
            seed=p["seed"],
            data_seed=p["data_seed"],
            accelerator=str(p["accelerator"]),
            devices=p["devices"],
            precision=str(p["precision"]),
            prompt=None if p["prompt"] is None else str(p["prompt"]),
            input=None if p["input"] is None else str(p["input"]),
            on_invalid=str(p["on_invalid"]),
            progress=p["progress"],
        )
        with use_cache_dir(p["cache_dir"]):
            result = run_pair_tuning(
                cfg, log=lambda text: console.print(escape(str(text)), highlight=False)
            )
        save_resolved_config(p, out)
    if result["n_invalid"]:
        console.print(f"rejected {result['n_invalid']} molecules, listed in invalid.csv")
    report = {k: v for k, v in result["report"].items() if k != "training"}
    console.print(json.dumps(report, indent=2), markup=False, highlight=False)
    console.print(f"outputs in {escape(str(out))}", highlight=False)
