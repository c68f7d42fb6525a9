"""The pair-tuning soft prompt and its file format.

:class:`SoftPrompt` holds ``P`` learnable vectors of width ``C`` that
:class:`~molfm.systems.gp_molformer.model.GPMoLFormer` reads before the tokens
(``forward(..., prefix_embeds=prompt())`` or ``embed_step`` in the recurrent form).

A saved prompt is a directory with ``prompt.safetensors`` (one float32 tensor ``"prompt"``
``[P, C]``) and ``prompt_config.json``: format and version, ``n_prompt``/``n_embd``, the
sequence layout, the base model's name or path and a sha256 of its weights
(:func:`model_fingerprint`), the tokenizer, the property and the training statistics.
:func:`load_prompt` checks the base model and tokenizer against them. No pickle anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from molfm.atomic import atomic_write_text, atomic_writer
from molfm.systems.gp_molformer.model import GPMoLFormer
from molfm.systems.gp_molformer.tokenizer import SmilesTokenizer

__all__ = [
    "SoftPrompt",
    "model_fingerprint",
    "save_prompt",
    "load_prompt",
    "PROMPT_FORMAT",
    "PROMPT_FILE",
    "PROMPT_CONFIG",
    "LAYOUT",
]

PROMPT_FORMAT = "molfm-soft-prompt"
_PROMPT_VERSION = 1
PROMPT_FILE = "prompt.safetensors"
PROMPT_CONFIG = "prompt_config.json"
LAYOUT = "[prompt] <bos> source <eos> target <eos>; target positions restart at 1"
"""Token layout of a pair-tuning sequence (stored with every prompt)."""


class SoftPrompt(nn.Module):
    """``P`` learnable input vectors of width ``C`` placed before the tokens.

    Parameters
    ----------
    n_prompt
        Number of prompt vectors ``P``.
    n_embd
        Width ``C`` (the base model's ``n_embd``).
    init_embeddings
        Optional ``[V', C]`` token-embedding rows to initialize from: each prompt vector is a
        copy of a row drawn uniformly at random (without replacement while ``P <= V'``). This
        is the "sampled vocabulary" initialization of Lester et al., which starts the prompt
        on the scale and manifold the frozen model expects. None: ``N(0, init_std^2)``
        (``0.02`` matches GP-MoLFormer's embedding initialization).
    init_std
        Standard deviation of the normal initialization.
    seed
        Seed of the initialization draws.
    """

    def __init__(
        self,
        n_prompt: int,
        n_embd: int,
        *,
        init_embeddings: torch.Tensor | None = None,
        init_std: float = 0.02,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if n_prompt < 1:
            raise ValueError(f"n_prompt must be >= 1, got {n_prompt}")
        generator = torch.Generator().manual_seed(seed)
        if init_embeddings is not None:
            rows = init_embeddings.detach().float().cpu()
            if rows.dim() != 2 or rows.shape[1] != n_embd:
                raise ValueError(f"init_embeddings must be [V, {n_embd}], got {tuple(rows.shape)}")
            if n_prompt <= rows.shape[0]:
                pick = torch.randperm(rows.shape[0], generator=generator)[:n_prompt]
            else:
                pick = torch.randint(rows.shape[0], (n_prompt,), generator=generator)
            weight = rows[pick].clone()
        else:
            weight = torch.randn(n_prompt, n_embd, generator=generator) * init_std
        self.weight = nn.Parameter(weight)

    @classmethod
    def from_model(
        cls,
        model: GPMoLFormer,
        n_prompt: int,
        *,
        init: Literal["vocab", "normal"] = "vocab",
        seed: int = 0,
        special_ids: Sequence[int] = (0, 1, 2, 3),
    ) -> SoftPrompt:
        """A prompt sized for ``model``; ``init="vocab"`` samples non-special token rows."""
        if init not in ("vocab", "normal"):
            raise ValueError(f"init must be 'vocab' or 'normal', got {init!r}")
        rows = None
        if init == "vocab":
            weight = model.tok_emb.weight
            keep = torch.ones(weight.shape[0], dtype=torch.bool)
            keep[list(special_ids)] = False
            rows = weight.detach()[keep.to(weight.device)]
        return cls(n_prompt, model.config.n_embd, init_embeddings=rows, seed=seed)

    @property
    def n_prompt(self) -> int:
        return self.weight.shape[0]

    @property
    def n_embd(self) -> int:
        return self.weight.shape[1]

    def forward(self) -> torch.Tensor:
        """The prompt vectors ``[P, C]``."""
        return self.weight


def model_fingerprint(model: nn.Module) -> str:
    """sha256 over the model's parameters and buffers (names, dtypes, shapes, bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        array = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{array.dtype}|{tuple(array.shape)}|".encode())
        digest.update(array.view(torch.uint8).numpy().tobytes() if array.numel() else b"")
    return digest.hexdigest()


def save_prompt(
    directory: str | os.PathLike,
    prompt: SoftPrompt,
    *,
    model: nn.Module | None = None,
    base_model: str | None = None,
    property_name: str | None = None,
    tokenizer: SmilesTokenizer | None = None,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write ``prompt.safetensors`` and ``prompt_config.json`` into ``directory``.

    ``model`` (to record its weight fingerprint), ``base_model`` (its name or path),
    ``property_name``, ``tokenizer`` and ``training`` statistics are stored for provenance
    and checked again by :func:`load_prompt`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "format": PROMPT_FORMAT,
        "version": _PROMPT_VERSION,
        "n_prompt": prompt.n_prompt,
        "n_embd": prompt.n_embd,
        "layout": LAYOUT,
        "base_model": None if base_model is None else str(base_model),
        "base_model_sha256": None if model is None else model_fingerprint(model),
        "property": property_name,
        "tokenizer": None if tokenizer is None else tokenizer.to_dict(),
        "training": training or {},
    }
    weights = {"prompt": prompt.weight.detach().cpu().float().contiguous()}
    with atomic_writer(directory / PROMPT_FILE) as tmp:
        save_file(weights, str(tmp), metadata={"format": PROMPT_FORMAT})
    atomic_write_text(
        directory / PROMPT_CONFIG, json.dumps(config, indent=2, default=_json_default)
    )
    return directory


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def load_prompt(
    directory: str | os.PathLike,
    model: nn.Module | None = None,
    tokenizer: SmilesTokenizer | None = None,
) -> tuple[SoftPrompt, dict[str, Any]]:
    """Read a prompt written by :func:`save_prompt`.

    When ``model`` / ``tokenizer`` are given they must be the ones the prompt was trained
    with (same width, same weight fingerprint, same vocabulary), else ``ValueError``.
    """
    directory = Path(directory)
    config_path, weights_path = directory / PROMPT_CONFIG, directory / PROMPT_FILE
    if not config_path.exists() or not weights_path.exists():
        raise FileNotFoundError(f"{directory} has no {PROMPT_CONFIG} and {PROMPT_FILE}")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("format") != PROMPT_FORMAT or config.get("version") != _PROMPT_VERSION:
        raise ValueError(f"{config_path} is not a version-{_PROMPT_VERSION} molfm soft prompt")
    weight = load_file(str(weights_path))["prompt"]
    if tuple(weight.shape) != (config["n_prompt"], config["n_embd"]):
        raise ValueError(f"{weights_path}: shape {tuple(weight.shape)} != config")
    if model is not None:
        width = model.config.n_embd
        if width != config["n_embd"]:
            raise ValueError(f"prompt width {config['n_embd']} != model n_embd {width}")
        expected = config.get("base_model_sha256")
        if expected is not None and model_fingerprint(model) != expected:
            raise ValueError(
                f"the prompt in {directory} was trained on another base model "
                f"({config.get('base_model')}, sha256 {expected[:12]}...); pass that model"
            )
    if tokenizer is not None and config.get("tokenizer") is not None:
        if SmilesTokenizer.from_dict(config["tokenizer"]) != tokenizer:
            raise ValueError(f"the prompt in {directory} was trained with another vocabulary")
    prompt = SoftPrompt(config["n_prompt"], config["n_embd"])
    with torch.no_grad():
        prompt.weight.copy_(weight)
    return prompt, config
