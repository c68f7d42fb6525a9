"""``molfm train``: train models (one command per model family)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer
from rich.console import Console

from molfm.cli.config import merge_config, save_resolved_config

app = typer.Typer(help="Train models.", no_args_is_help=True)
console = Console()


def _devices(value: str):
    return int(value) if value.isdigit() else value


@app.command("gp-molformer")
def gp_molformer(
    ctx: typer.Context,
    output_dir: Path = typer.Option(..., help="Run directory (checkpoints, logs, model/)."),
    data: str = typer.Option("moses", help="Source name (moses) or a CSV of SMILES."),
    smiles_column: str = typer.Option("smiles", help="SMILES column of a CSV."),
    val_data: str | None = typer.Option(None, help="Validation SMILES (default: moses test)."),
    preset: str = typer.Option("small", help="Model size: small (CPU) or paper (46.8M)."),
    n_layer: int | None = typer.Option(None, help="Override the preset's depth."),
    n_head: int | None = typer.Option(None, help="Override the preset's heads."),
    n_embd: int | None = typer.Option(None, help="Override the preset's width."),
    ffn_dim: int | None = typer.Option(None, help="Override the preset's FFN size."),
    dropout: float | None = typer.Option(None, help="Override the preset's dropout."),
    max_length: int = typer.Option(128, help="Longest token sequence (with bos/eos)."),
    batch_size: int = typer.Option(128),
    lr: float = typer.Option(3e-4, help="Peak learning rate."),
    weight_decay: float = typer.Option(0.01),
    warmup_steps: int = typer.Option(500),
    max_steps: int = typer.Option(10_000),
    val_size: int = typer.Option(5_000, help="Validation molecules."),
    val_every_n_steps: int = typer.Option(1_000, help="Validate and checkpoint every N steps."),
    limit_train: int | None = typer.Option(None, help="Only the first N training SMILES."),
    seed: int = typer.Option(0, help="Seed for weights and shuffling."),
    data_seed: int = typer.Option(0, help="Seed for the validation split."),
    accelerator: str = typer.Option("auto", help="Lightning accelerator (cpu, gpu, auto)."),
    devices: str = typer.Option("1", help="Lightning devices (a count, 'auto', or a list)."),
    precision: str = typer.Option("32-true", help="Lightning precision, e.g. bf16-mixed."),
    num_workers: int = typer.Option(0, help="DataLoader workers."),
    on_invalid: str = typer.Option("error", help="error|skip for SMILES the tokenizer rejects."),
    config: Path | None = typer.Option(None, help="YAML file of options (flags win)."),
) -> None:
    """Pretrain a GP-MoLFormer SMILES decoder (resumes from <output-dir>/checkpoints/last.ckpt)."""
    from molfm.systems.gp_molformer.pretrain import LMTrainConfig, train_causal_lm

    p = merge_config(ctx, config, {k: v for k, v in locals().items() if k != "ctx"})
    overrides = {
        k: p[k]
        for k in ("n_layer", "n_head", "n_embd", "ffn_dim", "dropout")
        if p.get(k) is not None
    }
    fields = {f.name for f in dataclasses.fields(LMTrainConfig)}
    cfg = LMTrainConfig(
        **{k: v for k, v in p.items() if k in fields and k not in ("devices", "output_dir")},
        output_dir=str(p["output_dir"]),
        devices=_devices(str(p["devices"])),
        model_overrides=overrides,
    )
    save_resolved_config(p, Path(p["output_dir"]))
    model_dir = train_causal_lm(cfg)
    meta = json.loads((model_dir / "config.json").read_text())["training"]
    console.print(f"[bold]saved[/bold] {model_dir}  steps {meta['steps']}")
    for key, value in sorted(meta["final_metrics"].items()):
        console.print(f"  {key}: {value:.4f}")


@app.command("gp-molformer-analogs")
def gp_molformer_analogs(
    ctx: typer.Context,
    output_dir: Path = typer.Option(..., help="Run directory (pairs, checkpoints, model/)."),
    base_model: str = typer.Option(
        "gp-molformer-small-moses", help="Pretrained GP-MoLFormer (name or directory)."
    ),
    data: str = typer.Option("moses", help="moses (train split) or a CSV of SMILES."),
    smiles_column: str = typer.Option("smiles", help="SMILES column of a CSV."),
    n_molecules: int = typer.Option(20_000, help="Molecules the training pairs are mined from."),
    n_val_molecules: int = typer.Option(2_000, help="Disjoint molecules for validation pairs."),
    min_similarity: float = typer.Option(0.4, help="Tanimoto (Morgan r=2) of an analog pair."),
    max_pairs_per_source: int = typer.Option(2, help="Pairs kept per molecule."),
    batch_size: int = typer.Option(32),
    lr: float = typer.Option(3e-4),
    weight_decay: float = typer.Option(0.01),
    warmup_steps: int = typer.Option(50),
    max_steps: int = typer.Option(1_000),
    val_every_n_steps: int = typer.Option(250, help="Validate and checkpoint every N steps."),
    seed: int = typer.Option(0, help="Seed for shuffling."),
    data_seed: int = typer.Option(0, help="Seed for the molecule draw and pair subsets."),
    accelerator: str = typer.Option("auto", help="Lightning accelerator (cpu, gpu, auto)."),
    devices: str = typer.Option("1", help="Lightning devices (a count, 'auto', or a list)."),
    precision: str = typer.Option("32-true", help="Lightning precision, e.g. bf16-mixed."),
    on_invalid: str = typer.Option("error", help="error|skip for SMILES the tokenizer rejects."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    config: Path | None = typer.Option(None, help="YAML file of options (flags win)."),
) -> None:
    """Continue training a GP-MoLFormer on analog rows '<bos> A <eos> B <eos>' (A, B similar)
    so that pair-tuning (molfm optimize --model <output-dir>/model) has a base that writes an
    analog after a molecule. Resumes from <output-dir>/checkpoints/last.ckpt."""
    from molfm.systems.gp_molformer.analogs import AnalogTrainConfig, train_analog_lm

    p = merge_config(ctx, config, {k: v for k, v in locals().items() if k != "ctx"})
    fields = {f.name for f in dataclasses.fields(AnalogTrainConfig)}
    cfg = AnalogTrainConfig(
        **{k: v for k, v in p.items() if k in fields and k not in ("devices", "output_dir")},
        output_dir=str(p["output_dir"]),
        devices=_devices(str(p["devices"])),
    )
    save_resolved_config(p, Path(p["output_dir"]))
    model_dir = train_analog_lm(cfg)
    meta = json.loads((model_dir / "config.json").read_text())["training"]
    console.print(
        f"[bold]saved[/bold] {model_dir}  steps {meta['steps']}  "
        f"{meta['n_pairs']} analog pairs (mean similarity {meta['mean_pair_similarity']:.3f})"
    )
    for key, value in sorted(meta["final_metrics"].items()):
        console.print(f"  {key}: {value:.4f}")
