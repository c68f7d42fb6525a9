"""Checkpoint directories: ``config.json`` + ``model.safetensors``, loaded without pickle.

A molfm checkpoint is a directory::

    config.json        {"molfm_version", "model_type", "model_config", ...extras}
    model.safetensors  the state dict (optionally stored in fp16/bf16)
    <other files>      tokenizer / scaler files written by the caller

Models opt in with :func:`register_model`: the class needs a ``config_class`` (a dataclass
whose fields are JSON-serializable), a constructor ``Model(config)`` and a ``config``
attribute. Extras such as the feature schema or tokenizer go next to the model config so a
checkpoint is self-describing.

A model whose checkpoint holds only part of its state (MolCA: not the frozen LM weights, which
it rebuilds from the LM's identity in its config) defines two methods, used when present:
``checkpoint_state_dict()`` (what :func:`save_pretrained` writes, instead of ``state_dict()``)
and ``load_checkpoint_state_dict(state)`` (what :func:`from_pretrained` calls, instead of a
strict ``load_state_dict``; it must check the keys itself).

Where the model types and shipped checkpoints are. This module sits below every layer that
defines models (``nn``, ``tasks``, ``systems``) and imports none of them, so each model class
registers itself where it is defined (``@register_model("gine")`` in :mod:`molfm.nn.gine`)
without an import cycle. A library user who only calls :func:`from_pretrained` has imported
none of those modules, so two static tables answer for them (rather than registration calls
in each system's ``__init__``, which made this module import the systems to find them while
they imported it):

* :data:`MODEL_MODULES` -- model type -> the module that defines it, imported by name on
  first use. Plain strings: the lookup needs no import of the systems, and ``lint-imports``
  (``pyproject.toml``) sees no upward dependency because there is none until a checkpoint
  asks for that type. ``tests/test_hub.py`` checks the table against every
  ``@register_model`` in the package, so a renamed module fails a test, not a user.
* shipped checkpoints -- the folders of ``molfm/assets/`` (:func:`shipped_models`); a
  checkpoint is shipped by being there.

This module imports torch and safetensors only inside the functions that read or write
tensors, so naming models and resolving checkpoints stays light.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from molfm import __version__
from molfm.atomic import atomic_write_text, atomic_writer

if TYPE_CHECKING:
    import torch

__all__ = [
    "MODEL_MODULES",
    "register_model",
    "shipped_models",
    "resolve_checkpoint",
    "get_model_class",
    "save_pretrained",
    "from_pretrained",
    "load_config",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ASSETS = Path(__file__).resolve().parent / "assets"
MODEL_MODULES: dict[str, str] = {
    "gine": "molfm.nn.gine",
    "gps": "molfm.nn.gps",
    "property": "molfm.tasks.property",
    "gp-molformer": "molfm.systems.gp_molformer.model",
    "transformer-m": "molfm.systems.transformer_m.model",
    "molca": "molfm.systems.molca.model",
    "molca-stage1": "molfm.systems.molca.stage1",
}
"""Model type -> the module whose ``@register_model`` defines it (imported on first use)."""
_MODELS: dict[str, type[torch.nn.Module]] = {}  # filled by @register_model as modules load


def shipped_models() -> dict[str, Path]:
    """Every shipped checkpoint name and its directory: the checkpoints in ``molfm/assets/``."""
    return {p.name: p for p in sorted(ASSETS.iterdir()) if (p / CONFIG_NAME).is_file()}


def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """A shipped model name (see :func:`shipped_models`), a checkpoint directory, or a run
    directory holding its exported ``model/``.

    Raises
    ------
    FileNotFoundError
        One line naming the value and the shipped names.
    """
    shipped = shipped_models()
    path = shipped.get(str(name_or_path), Path(name_or_path))
    if not (path / CONFIG_NAME).exists() and (path / "model" / CONFIG_NAME).exists():
        path = path / "model"  # a run directory: its exported model
    if not (path / CONFIG_NAME).exists():
        names = ", ".join(sorted(shipped))
        raise FileNotFoundError(
            f"{name_or_path} is neither a shipped model ({names}) nor a checkpoint directory "
            f"with {CONFIG_NAME}"
        )
    return path


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
    """The class registered as ``name``, importing its module from :data:`MODEL_MODULES` first
    if nothing has yet."""
    if name not in _MODELS and name in MODEL_MODULES:
        importlib.import_module(MODEL_MODULES[name])
    try:
        return _MODELS[name]
    except KeyError:
        known = sorted(set(_MODELS) | set(MODEL_MODULES))  # listed ones too, not yet imported
        raise KeyError(f"unknown model type {name!r}; registered: {known}") from None


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
    from safetensors.torch import save_file

    model_type = getattr(type(model), "model_type", None)
    if model_type is None or _MODELS.get(model_type) is not type(model):
        raise TypeError(f"{type(model).__name__} is not a registered molfm model")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {}
    partial = getattr(model, "checkpoint_state_dict", None)  # see the module docstring
    for key, tensor in (partial() if partial is not None else model.state_dict()).items():
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
    with atomic_writer(directory / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"model_type": model_type})
    atomic_write_text(directory / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True))
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
    from safetensors.torch import load_file

    config = load_config(directory)
    cls = get_model_class(config["model_type"])
    model_config = cls.config_class(**config["model_config"])
    model = cls(model_config)
    state = load_file(str(Path(directory) / WEIGHTS_NAME), device=str(map_location))
    reference = model.state_dict()
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
    load_partial = getattr(model, "load_checkpoint_state_dict", None)
    if load_partial is not None:
        load_partial(state)
    else:
        model.load_state_dict(state, strict=True)
    return model.to(map_location).eval()
