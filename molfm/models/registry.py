"""Named checkpoints shipped with molfm, and loading a SMILES model by name or path."""

from __future__ import annotations

from pathlib import Path

import torch

from molfm.data.tokenizer import SmilesTokenizer
from molfm.hub import from_pretrained, load_config
from molfm.models import DEFAULT_PAIR_TUNING_MODEL, DEFAULT_SMILES_MODEL

__all__ = [
    "ASSETS",
    "DEFAULT_SMILES_MODEL",
    "DEFAULT_PAIR_TUNING_MODEL",
    "SHIPPED_MODELS",
    "resolve_checkpoint",
    "load_smiles_model",
]

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SHIPPED_MODELS = {name: ASSETS / name for name in (DEFAULT_SMILES_MODEL, DEFAULT_PAIR_TUNING_MODEL)}


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A shipped model name (see :data:`SHIPPED_MODELS`) or a checkpoint directory."""
    path = SHIPPED_MODELS.get(str(name_or_path), Path(name_or_path))
    if not (path / "config.json").exists():
        shipped = ", ".join(sorted(SHIPPED_MODELS))
        raise FileNotFoundError(
            f"{name_or_path} is neither a shipped model ({shipped}) nor a checkpoint directory "
            "with config.json"
        )
    return path


def load_smiles_model(
    name_or_path: str | Path, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, SmilesTokenizer]:
    """Load a causal SMILES model and its tokenizer from a checkpoint directory."""
    path = resolve_checkpoint(name_or_path)
    config = load_config(path)
    if "tokenizer" not in config:
        raise ValueError(f"{path} holds a {config.get('model_type')} model without a tokenizer")
    model = from_pretrained(path, map_location=device)
    return model, SmilesTokenizer.from_dict(config["tokenizer"])
