"""``molfm train``: train models (one command per model family).

Every command checks its options, its data and the hardware before it writes anything: a bad
option, a missing file or a run that would train 0 steps is one line and exit code 1, and a run
directory the command created is removed again. ``resolved_config.yaml`` (every option, flags
and ``--config`` merged) is written into the run directory when training starts.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from molfm.cli.errors import CreatedOutputs, user_errors
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

app = typer.Typer(help="Train models.", no_args_is_help=True)
console = Console()

_MODEL_SIZES = ("n_layer", "n_head", "n_embd", "ffn_dim", "dropout")


class Preset(StrEnum):
    """GP-MoLFormer model sizes (``molfm.systems.gp_molformer.pretrain.PRESETS``)."""

    small = "small"
    paper = "paper"


def _run_started(params: dict[str, Any], directory: Path, outputs: CreatedOutputs):
    """A Lightning callback that writes ``resolved_config.yaml`` when the fit starts (after
    every check, so a refused start never writes or overwrites it) and keeps the run directory
    once training starts: from then on an interrupted run stays there to be resumed."""
    import lightning as L

    from molfm.cli.config import save_resolved_config

    class RunStarted(L.Callback):
        def on_fit_start(self, trainer, pl_module) -> None:
            if trainer.is_global_zero:
                save_resolved_config(params, directory)

        def on_train_start(self, trainer, pl_module) -> None:
            outputs.keep()

    return RunStarted()


def _print_metrics(meta: dict[str, Any]) -> None:
    for key, value in sorted(meta["final_metrics"].items()):
        console.print(f"  {key}: {value:.4f}")


@app.command("gp-molformer")
def gp_molformer(
    ctx: typer.Context,
    output_dir: Path = output_dir_option(
        help="The run directory: checkpoints, logs, the vocabulary and the exported model/. "
        "A run already there is resumed from checkpoints/last.ckpt."
    ),
    data: str | None = data_option(
        help="A registered data set to train on (see `molfm data list`); moses if neither "
        "--data nor --data-path is given."
    ),
    data_path: Path | None = data_path_option(
        help="A CSV (or TSV) of SMILES of your own to train on, instead of --data."
    ),
    smiles_column: str = smiles_column_option(),
    val_data: str | None = typer.Option(
        None,
        "--val-data",
        help="A registered data set to validate on. By default moses validates on its test "
        "subset, and other data on a held-out slice of the training data.",
    ),
    val_data_path: Path | None = typer.Option(
        None,
        "--val-data-path",
        dir_okay=False,
        help="A CSV of SMILES of your own to validate on, instead of --val-data.",
    ),
    preset: Preset = typer.Option(
        Preset.small,
        help="The model size: small (CPU-sized) or paper (the published 46.8M parameters).",
    ),
    n_layer: int | None = typer.Option(
        None, min=1, help="Number of layers (overrides the preset)."
    ),
    n_head: int | None = typer.Option(None, min=1, help="Attention heads (overrides the preset)."),
    n_embd: int | None = typer.Option(None, min=2, help="Model width (overrides the preset)."),
    ffn_dim: int | None = typer.Option(
        None, min=1, help="Feed-forward hidden size (overrides the preset)."
    ),
    dropout: float | None = typer.Option(
        None, min=0.0, max=1.0, help="Dropout rate (overrides the preset)."
    ),
    max_length: int = typer.Option(
        128, min=3, help="The longest token sequence, <bos> and <eos> included."
    ),
    batch_size: int = batch_size_option(128),
    lr: float = typer.Option(3e-4, callback=must_be_positive, help="The peak learning rate (> 0)."),
    weight_decay: float = typer.Option(0.01, min=0.0, help="AdamW weight decay."),
    warmup_steps: int = typer.Option(500, min=0, help="Steps of linear learning-rate warm-up."),
    max_steps: int = typer.Option(
        10_000, min=1, help="Optimizer steps in all (raise it to extend a finished run)."
    ),
    val_size: int = typer.Option(5_000, min=1, help="Validation molecules."),
    val_every_n_steps: int = typer.Option(
        1_000, min=1, help="Validate and save a checkpoint every N steps."
    ),
    limit_train: int | None = typer.Option(
        None, min=1, help="Train on the first N training molecules only."
    ),
    seed: int = seed_option(),
    data_seed: int = data_seed_option(),
    accelerator: Accelerator = accelerator_option(),
    devices: str = devices_option(),
    precision: str = precision_option(),
    num_workers: int = num_workers_option(
        help="DataLoader worker processes (0 = batches are built in the main process)."
    ),
    on_invalid: OnInvalid = on_invalid_option(),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    cache_dir: Path | None = cache_dir_option(),
    config: Path | None = config_option(),
) -> None:
    """Pretrain a GP-MoLFormer SMILES decoder (resumes from <output-dir>/checkpoints/last.ckpt)."""
    p = merge_typed_config(ctx, config, {k: v for k, v in locals().items() if k != "ctx"})
    out = Path(p["output_dir"])
    with user_errors(created=[out]) as outputs:
        from molfm.data.fetch import use_cache_dir
        from molfm.systems.gp_molformer.pretrain import (
            LMTrainConfig,
            check_train_config,
            train_causal_lm,
        )

        data = resolve_data(p["data"], p["data_path"], default="moses")
        if p["data_path"] is None:
            p["data"] = data  # the resolved config names the data set used
        cfg = LMTrainConfig(
            output_dir=str(out),
            data=data,
            smiles_column=p["smiles_column"],
            val_data=resolve_data(
                p["val_data"], p["val_data_path"], flag="--val-data", path_flag="--val-data-path"
            ),
            preset=str(p["preset"]),
            model_overrides={k: p[k] for k in _MODEL_SIZES if p[k] is not None},
            max_length=p["max_length"],
            batch_size=p["batch_size"],
            lr=p["lr"],
            weight_decay=p["weight_decay"],
            warmup_steps=p["warmup_steps"],
            max_steps=p["max_steps"],
            val_size=p["val_size"],
            val_every_n_steps=p["val_every_n_steps"],
            seed=p["seed"],
            data_seed=p["data_seed"],
            limit_train=p["limit_train"],
            accelerator=str(p["accelerator"]),
            devices=_devices(p["devices"]),
            precision=str(p["precision"]),
            num_workers=p["num_workers"],
            on_invalid=str(p["on_invalid"]),
            progress=p["progress"],
        )
        check_train_config(cfg)  # before anything is read or written
        with use_cache_dir(p["cache_dir"]):
            model_dir = train_causal_lm(cfg, callbacks=[_run_started(p, out, outputs)])
    meta = json.loads((model_dir / "config.json").read_text())["training"]
    console.print(f"[bold]saved[/bold] {model_dir}  steps {meta['steps']}", highlight=False)
    _print_metrics(meta)


def _devices(value: Any) -> Any:
    """``--devices`` as the library stores it: a count as an int, else the text (checked by
    :func:`molfm.engine.hardware.lightning_kwargs`)."""
    from molfm.engine.hardware import parse_devices

    parsed = parse_devices(value)
    return str(value) if isinstance(parsed, list) else parsed


@app.command("gp-molformer-analogs")
def gp_molformer_analogs(
    ctx: typer.Context,
    output_dir: Path = output_dir_option(
        help="The run directory: the mined pairs, checkpoints, logs and the exported model/. "
        "A run already there is resumed from checkpoints/last.ckpt."
    ),
    init: str = typer.Option(
        "gp-molformer-small-moses",
        "--init",
        "--base-model",
        help="The pretrained GP-MoLFormer to continue training (a shipped name or a checkpoint "
        "directory).",
    ),
    data: str | None = data_option(
        help="A registered data set to mine pairs from (see `molfm data list`); the moses "
        "train subset if neither --data nor --data-path is given."
    ),
    data_path: Path | None = data_path_option(
        help="A CSV (or TSV) of SMILES of your own to mine pairs from, instead of --data."
    ),
    smiles_column: str = smiles_column_option(),
    n_molecules: int = typer.Option(
        20_000, min=1, help="Molecules the training pairs are mined from."
    ),
    n_val_molecules: int = typer.Option(
        2_000, min=0, help="Other molecules the validation pairs are mined from."
    ),
    min_similarity: float = typer.Option(
        0.4, min=0.0, max=1.0, help="The least Tanimoto similarity (Morgan r=2) of a pair."
    ),
    max_pairs_per_source: int = typer.Option(2, min=1, help="Pairs kept per molecule."),
    batch_size: int = batch_size_option(32),
    lr: float = typer.Option(3e-4, callback=must_be_positive, help="The peak learning rate (> 0)."),
    weight_decay: float = typer.Option(0.01, min=0.0, help="AdamW weight decay."),
    warmup_steps: int = typer.Option(50, min=0, help="Steps of linear learning-rate warm-up."),
    max_steps: int = typer.Option(
        1_000, min=1, help="Optimizer steps in all (raise it to extend a finished run)."
    ),
    val_every_n_steps: int = typer.Option(
        250, min=1, help="Validate and save a checkpoint every N steps."
    ),
    seed: int = seed_option(),
    data_seed: int = data_seed_option(),
    accelerator: Accelerator = accelerator_option(),
    devices: str = devices_option(),
    precision: str = precision_option(),
    num_workers: int = num_workers_option(
        help="DataLoader worker processes (0 = batches are built in the main process)."
    ),
    on_invalid: OnInvalid = on_invalid_option(),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    cache_dir: Path | None = cache_dir_option(),
    config: Path | None = config_option(),
) -> None:
    """Continue training a GP-MoLFormer on analog rows '<bos> A <eos> B <eos>' (A, B similar),
    so that pair-tuning (molfm optimize --model <output-dir>/model) has a base that writes an
    analog after a molecule. Resumes from <output-dir>/checkpoints/last.ckpt."""
    p = merge_typed_config(ctx, config, {k: v for k, v in locals().items() if k != "ctx"})
    out = Path(p["output_dir"])
    with user_errors(created=[out]) as outputs:
        from molfm.data.fetch import use_cache_dir
        from molfm.systems.gp_molformer.analogs import (
            AnalogTrainConfig,
            check_analog_config,
            train_analog_lm,
        )

        data = resolve_data(p["data"], p["data_path"], default="moses")
        if p["data_path"] is None:
            p["data"] = data  # the resolved config names the data set used
        cfg = AnalogTrainConfig(
            output_dir=str(out),
            base_model=str(p["init"]),
            data=data,
            smiles_column=p["smiles_column"],
            n_molecules=p["n_molecules"],
            n_val_molecules=p["n_val_molecules"],
            min_similarity=p["min_similarity"],
            max_pairs_per_source=p["max_pairs_per_source"],
            batch_size=p["batch_size"],
            lr=p["lr"],
            weight_decay=p["weight_decay"],
            warmup_steps=p["warmup_steps"],
            max_steps=p["max_steps"],
            val_every_n_steps=p["val_every_n_steps"],
            seed=p["seed"],
            data_seed=p["data_seed"],
            accelerator=str(p["accelerator"]),
            devices=_devices(p["devices"]),
            precision=str(p["precision"]),
            on_invalid=str(p["on_invalid"]),
            progress=p["progress"],
            num_workers=p["num_workers"],
        )
        check_analog_config(cfg)  # before anything is read or written
        with use_cache_dir(p["cache_dir"]):
            model_dir = train_analog_lm(cfg, callbacks=[_run_started(p, out, outputs)])
    meta = json.loads((model_dir / "config.json").read_text())["training"]
    console.print(
        f"[bold]saved[/bold] {model_dir}  steps {meta['steps']}  "
        f"{meta['n_pairs']} analog pairs (mean similarity {meta['mean_pair_similarity']:.3f})",
        highlight=False,
    )
    _print_metrics(meta)
