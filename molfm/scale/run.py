"""The streamed entry points: ``molfm predict``, ``molfm embed`` and ``molfm name`` over an
input of any size, on the local engine or Ray (:func:`~molfm.scale.stream.run_stream`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from molfm.options import check_options
from molfm.scale.batches import EmbedJob, Job, NameJob, PredictJob
from molfm.scale.chunks import input_kind
from molfm.scale.config import EmbedConfig
from molfm.scale.stream import StreamResult, run_stream

__all__ = ["predict", "embed", "name", "run_job"]


def run_job(job: Job, cfg: Any) -> StreamResult:
    """Run ``job`` over ``cfg.data_path`` into ``cfg.output`` with ``cfg``'s engine options."""
    check_options(cfg)
    if not Path(cfg.data_path).is_file():
        raise FileNotFoundError(f"--data-path {cfg.data_path} does not exist")
    return run_stream(
        job,
        cfg.data_path,
        cfg.output,
        chunk_size=cfg.chunk_size,
        on_invalid=cfg.on_invalid,
        engine=cfg.engine,
        workers=cfg.workers,
        ray_address=cfg.ray_address,
        gpus_per_worker=cfg.gpus_per_worker,
        progress=getattr(cfg, "progress", False),
    )


def reads_coordinates(model: str) -> bool:
    """Whether a checkpoint's graph encoder (its own, or its property model's) reads 3D."""
    from molfm.hub import get_model_class, load_config, resolve_checkpoint

    config = load_config(resolve_checkpoint(model))
    kind = config.get("model_config", {}).get("encoder_type") or config.get("model_type", "")
    try:
        return hasattr(get_model_class(kind), "select_modes")
    except (KeyError, ValueError):
        return False


def _check_3d_input(cfg: Any) -> None:
    """A mode that needs coordinates, on SMILES without ``--conformers``: one line, before any
    work (flat SDF records are found part by part)."""
    from molfm.data.sources.base import coordinates_error

    if cfg.mode not in ("3d", "2d3d") or cfg.conformers or input_kind(cfg.data_path) == "sdf":
        return
    if reads_coordinates(cfg.model):
        raise coordinates_error(
            f"{cfg.data_path} holds SMILES without coordinates",
            f"--mode {cfg.mode}",
            "add --conformers to generate them, or use --mode 2d",
        )


def predict(cfg) -> StreamResult:
    """``molfm predict``: every readable molecule of ``cfg.data_path``, predicted by
    ``cfg.model``, into ``cfg.output`` in input order; rejected rows in ``invalid.csv``."""
    _check_3d_input(cfg)
    return run_job(PredictJob(cfg), cfg)


def embed(cfg: EmbedConfig) -> StreamResult:
    """``molfm embed``: one vector per readable molecule of ``cfg.data_path`` into the
    Parquet file ``cfg.output`` (row, the id column, smiles, embedding), in input order."""
    if Path(cfg.output).suffix.lower() not in (".parquet", ".pq"):
        raise ValueError(f"--output {cfg.output}: embeddings are written to a .parquet file")
    _check_3d_input(cfg)
    return run_job(EmbedJob(cfg), cfg)


def name(cfg) -> StreamResult:
    """``molfm name``: IUPAC names of every readable molecule of ``cfg.data_path``."""
    return run_job(NameJob(cfg), cfg)
