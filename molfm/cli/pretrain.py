"""``molfm pretrain``: self-supervised pretraining of graph encoders.

``molfm pretrain 3d-pgt`` runs :func:`molfm.systems.pgt3d.run.pretrain_3dpgt`; its
``<output-dir>`` (or ``<output-dir>/model``) is what ``molfm train property --init`` takes.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console

from molfm.cli.errors import invalid_input, user_errors
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
    must_be_positive,
    num_workers_option,
    on_invalid_option,
    output_dir_option,
    precision_option,
    resolve_data,
    seed_option,
    smiles_column_option,
)

app = typer.Typer(help="Pretrain graph encoders (3D-PGT).", no_args_is_help=True)
console = Console()


class PretrainEncoder(StrEnum):
    gps = "gps"
    gine = "gine"


class Weighting(StrEnum):
    """How the three pretext losses are weighted."""

    auto = "auto"
    equal = "equal"
    fixed = "fixed"


def _weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{text!r}: give three numbers, e.g. 1,0,0") from None
    if len(values) != 3 or min(values) < 0 or sum(values) <= 0:
        raise typer.BadParameter(f"{text!r}: give three non-negative numbers, e.g. 1,0,0")
    return values


@app.command("3d-pgt")
def pretrain_3dpgt(
    ctx: typer.Context,
    output_dir: Path = output_dir_option(
        help="The run directory: model/ (the pretrained encoder), task_weights.csv, "
        "metrics.json, checkpoints, logs. A run already there is resumed."
    ),
    data: str | None = data_option(help="A registered data set with 3D, e.g. qm9."),
    data_path: Path | None = data_path_option(help="An SDF (3D), or a CSV with --conformers."),
    smiles_column: str = smiles_column_option(),
    conformers: bool = typer.Option(
        False, help="Generate an RDKit conformer per molecule (for SMILES-only data)."
    ),
    conformer_seed: int = typer.Option(0, help="Seed of the conformer embedding."),
    encoder: PretrainEncoder = typer.Option(PretrainEncoder.gps, help="The encoder to pretrain."),
    preset: str = typer.Option("small", help="Encoder size: small (CPU) or paper."),
    num_layers: int | None = typer.Option(None, min=1, help="Encoder layers (over the preset)."),
    dim: int | None = typer.Option(None, min=2, help="Encoder width (over the preset)."),
    weighting: Weighting = typer.Option(
        Weighting.auto,
        help="Task weights: auto (searched against the total energy), equal, or fixed.",
    ),
    task_weights: str | None = typer.Option(
        None, help="With --weighting fixed: BOND,ANGLE,DIHEDRAL, e.g. 1,0,0 for bonds alone."
    ),
    energy_column: str | None = typer.Option(
        None, help="The total-energy column the weight search follows (default: u0 if present)."
    ),
    search_every: int = typer.Option(10, min=1, help="Update the task weights every N steps."),
    search_step: float = typer.Option(
        0.05, callback=must_be_positive, help="Exponentiated-gradient step of the weight search."
    ),
    split_file: Path | None = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="A saved split: train = pretraining molecules, val = held-out (weight search).",
    ),
    batch_size: int = batch_size_option(64),
    lr: float = typer.Option(5e-4, callback=must_be_positive, help="The peak learning rate (> 0)."),
    warmup_steps: int = typer.Option(100, min=0, help="Steps of linear learning-rate warm-up."),
    max_steps: int = typer.Option(2000, min=1, help="Optimizer steps in all."),
    val_every_n_steps: int | None = typer.Option(
        None, min=1, help="Validate and checkpoint every N steps (default: once per epoch)."
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
    """3D-PGT: pretrain a 2D encoder to predict bond lengths, angles and dihedrals."""
    p = merge_typed_config(ctx, config, {k: v for k, v in locals().items() if k != "ctx"})
    out = Path(p["output_dir"])
    weights = _weights(p["task_weights"])
    with user_errors(created=[out]):
        from molfm.chem.parse import InvalidMoleculeError
        from molfm.data.fetch import use_cache_dir
        from molfm.systems.pgt3d.run import PGTPretrainConfig
        from molfm.systems.pgt3d.run import pretrain_3dpgt as run

        source = resolve_data(p["data"], p["data_path"])
        if source is None:
            raise ValueError("give --data NAME or --data-path FILE")
        if weights is not None and str(p["weighting"]) != "fixed":
            raise ValueError("--task-weights goes with --weighting fixed")
        overrides = {k: p[k] for k in ("num_layers", "dim") if p[k] is not None}
        cfg = PGTPretrainConfig(
            output_dir=str(out),
            data=None if p["data_path"] else source,
            data_path=str(p["data_path"]) if p["data_path"] else None,
            smiles_column=p["smiles_column"],
            conformers=p["conformers"],
            conformer_seed=p["conformer_seed"],
            encoder=str(p["encoder"]),
            preset=p["preset"],
            encoder_overrides=overrides,
            weighting=str(p["weighting"]),
            task_weights=weights,
            energy_column=p["energy_column"],
            search_every=p["search_every"],
            search_step=p["search_step"],
            split_file=str(p["split_file"]) if p["split_file"] else None,
            batch_size=p["batch_size"],
            lr=p["lr"],
            warmup_steps=p["warmup_steps"],
            max_steps=p["max_steps"],
            val_every_n_steps=p["val_every_n_steps"],
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
    console.print(json.dumps(report["heldout"], indent=2), markup=False, highlight=False)
    console.print(f"task weights: {report['final_task_weights']}", highlight=False)
