"""``molfm train property`` and ``molfm predict``: property models on any encoder.

The work is done by :mod:`molfm.tasks.property_run` and :mod:`molfm.tasks.predict`; this module
maps flags to their configs and turns user errors into one line.
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
    init_option,
    merge_typed_config,
    model_option,
    must_be_positive,
    num_workers_option,
    on_invalid_option,
    output_dir_option,
    output_option,
    precision_option,
    resolve_data,
    seed_option,
    smiles_column_option,
    target_columns_option,
)
from molfm.systems.transformer_m import DEFAULT_PROPERTY_MODEL

console = Console()


class Encoder(StrEnum):
    """Graph encoders a property model can be built on (registered model types)."""

    transformer_m = "transformer-m"
    gine = "gine"
    gps = "gps"


class TrainMode(StrEnum):
    """Which channels a Transformer-M sees: one for every molecule, or drawn per molecule."""

    two_d = "2d"
    three_d = "3d"
    both = "2d3d"
    sampled = "sampled"


class EvalMode(StrEnum):
    available = "available"
    two_d = "2d"
    three_d = "3d"
    both = "2d3d"


class Split(StrEnum):
    random = "random"
    scaffold = "scaffold"


class Task(StrEnum):
    regression = "regression"
    classification = "classification"


def _mode(value: str | None) -> str | None:
    return None if value in (None, "sampled", "available") else str(value)


def train_property(
    ctx: typer.Context,
    output_dir: Path = output_dir_option(
        help="The run directory: checkpoints, logs, model/, metrics.json, test predictions and "
        "a parity plot or ROC curve. A run already there is resumed."
    ),
    model: Encoder = typer.Option(
        Encoder.transformer_m, "--model", help="The graph encoder to train."
    ),
    init: str | None = init_option(),
    data: str | None = data_option(help="A registered data set, e.g. qm9 or b3db."),
    data_path: Path | None = data_path_option(),
    subset: str | None = typer.Option(None, help="A subset of the data set, e.g. regression."),
    smiles_column: str = smiles_column_option(),
    target_columns: list[str] | None = target_columns_option(),
    task: Task | None = typer.Option(
        None, help="Regression or classification (default: from the data)."
    ),
    mode: TrainMode = typer.Option(
        TrainMode.sampled,
        help="Transformer-M channels in training: 2d, 3d, 2d3d, or sampled per molecule "
        "(2D+3D 0.2, 2D 0.2, 3D 0.6; molecules without coordinates run 2D).",
    ),
    eval_mode: EvalMode = typer.Option(
        EvalMode.available,
        help="Channels for validation and test: every channel a molecule has data for, or one mode.",
    ),
    preset: str = typer.Option("small", help="Encoder size: small (CPU) or paper."),
    num_layers: int | None = typer.Option(
        None, min=1, help="Encoder layers (overrides the preset)."
    ),
    dim: int | None = typer.Option(None, min=2, help="Encoder width (overrides the preset)."),
    num_heads: int | None = typer.Option(None, min=1, help="Attention heads (Transformer-M)."),
    loss: str | None = typer.Option(None, help="mae or mse (regression), bce (classification)."),
    auxiliary_weight: float = typer.Option(
        0.0, min=0.0, help="Weight of the encoder's auxiliary loss (Transformer-M: 3D denoising)."
    ),
    split: Split = typer.Option(Split.random, help="How molecules are split."),
    split_sizes: tuple[float, float, float] = typer.Option(
        (0.8, 0.1, 0.1),
        help="Train, validation and test: fractions, or counts (-1 = the rest), e.g. 110000 10000 -1.",
    ),
    split_file: Path | None = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="A saved split (.npz with train, val, test row positions of the prepared data), "
        "e.g. a protocol's; replaces --split and --split-sizes.",
    ),
    limit_train: int | None = typer.Option(
        None, min=1, help="Train on N molecules of the training split (the same N for a data seed)."
    ),
    batch_size: int = batch_size_option(64),
    lr: float = typer.Option(5e-4, callback=must_be_positive, help="The peak learning rate (> 0)."),
    weight_decay: float = typer.Option(0.0, min=0.0, help="AdamW weight decay."),
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
    """Train a property model (regression or classification) on a data set or your CSV/SDF."""
    p = merge_typed_config(ctx, config, {k: v for k, v in locals().items() if k != "ctx"})
    out = Path(p["output_dir"])
    with user_errors(created=[out]):
        from molfm.chem.parse import InvalidMoleculeError
        from molfm.data.fetch import use_cache_dir
        from molfm.tasks.property_run import PropertyTrainConfig
        from molfm.tasks.property_run import train_property as run

        source = resolve_data(p["data"], p["data_path"])
        if source is None:
            raise ValueError("give --data NAME or --data-path FILE")
        overrides = {k: p[k] for k in ("num_layers", "dim", "num_heads") if p[k] is not None}
        cfg = PropertyTrainConfig(
            output_dir=str(out),
            model=str(p["model"]),
            init=p["init"],
            data=None if p["data_path"] else source,
            data_path=str(p["data_path"]) if p["data_path"] else None,
            subset=p["subset"],
            smiles_column=p["smiles_column"],
            target_columns=list(p["target_columns"] or []),
            task=None if p["task"] is None else str(p["task"]),
            encoder_overrides=overrides,
            preset=p["preset"],
            mode=_mode(str(p["mode"])),
            eval_mode=_mode(str(p["eval_mode"])),
            loss=p["loss"],
            auxiliary_weight=p["auxiliary_weight"],
            split=str(p["split"]),
            split_sizes=[float(s) for s in p["split_sizes"]],
            split_file=str(p["split_file"]) if p["split_file"] else None,
            limit_train=p["limit_train"],
            batch_size=p["batch_size"],
            lr=p["lr"],
            weight_decay=p["weight_decay"],
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
            except InvalidMoleculeError as err:  # the data's bad rows: say how to skip them
                raise invalid_input(err) from None
    report = json.loads((out / "metrics.json").read_text())
    console.print(f"[bold]saved[/bold] {model_dir}", highlight=False)
    console.print(json.dumps(report["metrics"], indent=2), markup=False, highlight=False)


def predict(
    model: str = model_option(
        DEFAULT_PROPERTY_MODEL, help="A shipped property model or a run's model/ directory."
    ),
    data_path: Path = typer.Option(
        ..., "--data-path", dir_okay=False, help="A CSV of SMILES, or an SDF (3D)."
    ),
    output: Path = output_option(Path("predictions.csv"), help="The CSV of predictions to write."),
    smiles_column: str = smiles_column_option(),
    conformers: bool = typer.Option(
        False, help="Generate an RDKit conformer per SMILES so 3D-capable models use 3D."
    ),
    mode: EvalMode = typer.Option(
        EvalMode.available,
        help="Channels to use: every channel a molecule has data for, or one mode.",
    ),
    on_invalid: OnInvalid = on_invalid_option(),
    batch_size: int = batch_size_option(64),
    num_workers: int = num_workers_option(1, help="Processes for conformer generation."),
    accelerator: Accelerator = accelerator_option(),
    devices: str = devices_option(),
) -> None:
    """Predict properties for every molecule of a CSV or SDF, in input order.

    Molecules with an element or a size never seen in training are flagged in the
    out_of_domain column; unreadable rows follow --on-invalid (skip: listed in invalid.csv).
    """
    with user_errors(created=[output]):
        from molfm.atomic import atomic_writer
        from molfm.engine.hardware import inference_device
        from molfm.tasks.predict import load_property_model, predict_file

        device = inference_device(str(accelerator), devices)
        property_model = load_property_model(model, device=device)
        result = predict_file(
            property_model,
            data_path,
            smiles_column=smiles_column,
            on_invalid=str(on_invalid),
            conformers=conformers,
            mode=_mode(str(mode)),
            batch_size=batch_size,
            num_workers=max(1, num_workers),
            device=device,
        )
        with atomic_writer(output) as tmp:
            result.predictions.to_csv(tmp, index=False)
        if len(result.rejected):
            invalid = output.with_name("invalid.csv")
            with atomic_writer(invalid) as tmp:
                result.rejected.to_csv(tmp, index=False)
    frame = result.predictions
    console.print(f"wrote {len(frame)} predictions to {output}", highlight=False)
    if frame["out_of_domain"].any():
        console.print(
            f"{int(frame['out_of_domain'].sum())} molecules are outside the training domain "
            "(see the out_of_domain and domain_reason columns)",
            highlight=False,
        )
    if len(result.rejected):
        console.print(f"rejected {len(result.rejected)} rows, listed in {invalid}", highlight=False)
