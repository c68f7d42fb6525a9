"""Checkpoint directories: ``config.json`` + ``model.safetensors``, loaded without pickle.

A molfm checkpoint is a directory::

    config.json        {"molfm_version", "model_type", "model_config", ...extras}
    model.safetensors  the state dict (optionally stored in fp16/bf16)
    <other files>      tokenizer / scaler files written by the caller

Models opt in with :func:`register_model`: the class needs a ``config_class`` (a dataclass
whose fields are JSON-serializable), a constructor ``Model(config)`` and a ``config``
attribute. Extras such as the feature schema or tokenizer go next to the model config so a
checkpoint is self-describing.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from molfm import __version__

__all__ = [
    "register_model",
    "get_model_class",
    "save_pretrained",
    "from_pretrained",
    "load_config",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_MODELS: dict[str, type[torch.nn.Module]] = {}
# Built-in model types register on import; from_pretrained imports their module on demand.
_BUILTIN_MODULES = {"gp-molformer": "molfm.models.gp_molformer"}


def register_model(name: str) -> Callable[[type], type]:
    """Class decorator registering a model type under ``name`` for :func:`from_pretrained`."""

    def decorator(cls: type) -> type:
        if not dataclasses.is_dataclass(getattr(cls, "config_class", None)):
            raise TypeError(f"{cls.__name__} needs a dataclass `config_class` to be registered")
        if _MODELS.get(name, cls) is not cls:
            raise ValueError(f"model type {name!r} is already registered to {_MODELS[name]}")
        _MODELS[name] = cls
        cls.model_type = name
        return cls

    return decorator


def get_model_class(name: str) -> type[torch.nn.Module]:
    if name not in _MODELS and name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
    try:
        return _MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model type {name!r}; registered: {sorted(_MODELS)}") from None


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; checkpoints are meant to be shared
    os.replace(tmp, path)


def save_pretrained(
    model: torch.nn.Module,
    directory: str | os.PathLike,
    *,
    extra: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``model`` as a checkpoint directory.

    Parameters
    ----------
    model
        A model whose class was registered with :func:`register_model`.
    directory
        Created if missing; existing config/weights are replaced atomically.
    extra
        JSON-serializable entries stored beside the model config (feature schema,
        tokenizer, scaler, training metadata).
    dtype
        Store floating-point tensors in this dtype (e.g. ``torch.float16`` for small
        shipped checkpoints); they are cast back to float32 on load.
    """
    model_type = getattr(type(model), "model_type", None)
    if model_type is None or _MODELS.get(model_type) is not type(model):
        raise TypeError(f"{type(model).__name__} is not a registered molfm model")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        state[key] = tensor.contiguous().clone()  # clone: safetensors refuses shared storage
    config = {
        "molfm_version": __version__,
        "model_type": model_type,
        "model_config": dataclasses.asdict(model.config),
        **(extra or {}),
    }
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{WEIGHTS_NAME}.")
    os.close(fd)
    save_file(state, tmp, metadata={"model_type": model_type})
    os.chmod(tmp, 0o644)
    os.replace(tmp, directory / WEIGHTS_NAME)
    _atomic_write_text(directory / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True))
    return directory


def load_config(directory: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint's ``config.json``."""
    path = Path(directory) / CONFIG_NAME
    if not path.exists():
        raise FileNotFoundError(f"{directory} is not a molfm checkpoint: no {CONFIG_NAME}")
    return json.loads(path.read_text(encoding="utf-8"))


def from_pretrained(
    directory: str | os.PathLike, *, map_location: str | torch.device = "cpu"
) -> torch.nn.Module:
    """Rebuild a registered model from a checkpoint directory (no pickle involved).

    The returned model is in eval mode with float32 weights.
    """
    config = load_config(directory)
    cls = get_model_class(config["model_type"])
    model_config = cls.config_class(**config["model_config"])
    model = cls(model_config)
    state = load_file(str(Path(directory) / WEIGHTS_NAME), device=str(map_location))
    reference = model.state_dict()
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    return model.to(map_location).eval()
