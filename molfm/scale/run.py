"""The streamed entry points: ``molfm predict``, ``molfm embed`` and ``molfm name`` over an
input of any size, on the local engine or Ray (:func:`~molfm.scale.stream.run_stream`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from molfm.options import check_options
from molfm.scale.batches import EmbedJob, GenerateJob, Job, NameJob, PredictJob
from molfm.scale.chunks import input_kind, plan_shards
from molfm.scale.config import EmbedConfig
from molfm.scale.stream import StreamResult, run_stream, run_units

__all__ = ["predict", "embed", "name", "caption", "generate", "prepare", "run_job"]


def run_job(job: Job, cfg: Any) -> StreamResult:
    """Run ``job`` over ``cfg.data_path`` into ``cfg.output`` with ``cfg``'s engine options."""
    from molfm.engine.hardware import inference_device

    check_options(cfg)
    inference_device(cfg.accelerator, cfg.devices)  # no such device: one line, before any work
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
    return run_job(NameJob(cfg, "iupac"), cfg)


def caption(cfg) -> StreamResult:
    """``molfm caption``: a description of every readable molecule of ``cfg.data_path``."""
    if cfg.model is None:
        raise ValueError("give --model: a MolCA captioning run (no captioning model is shipped)")
    return run_job(NameJob(cfg, "caption"), cfg)


def generate(cfg, *, progress=None) -> tuple[int, dict[str, Any]]:
    """``molfm generate``: ``cfg.n`` samples into ``cfg.output``; returns the row count and
    the summary (validity, uniqueness, novelty with ``--train-data``, molecules/s).

    Without ``--shard-size``: one seed for every draw, in this process (``progress`` shows
    it). With it: seeded shards (:func:`~molfm.scale.chunks.plan_shards`), run as parts on
    the engine, ``--workers`` models at once; the same shards give the same file anywhere.
    """
    import time

    import pandas as pd

    from molfm.systems.gp_molformer.run import generate as generate_here
    from molfm.systems.gp_molformer.run import summarize, train_set

    check_options(cfg)
    if cfg.shard_size is None:
        if cfg.engine != "local" or cfg.workers > 1:
            raise ValueError(
                "--engine ray and --workers > 1 sample seeded shards: give --shard-size "
                "(the same shards give the same molecules on any engine)"
            )
        frame, summary = generate_here(cfg, progress=progress)
        return len(frame), summary
    train = train_set(cfg)  # before sampling: fail fast
    start = time.perf_counter()
    shards = plan_shards(cfg.n, cfg.shard_size, cfg.seed)
    result = run_units(
        GenerateJob(cfg),
        shards,
        cfg.output,
        stamp={"n": cfg.n, "shard_size": cfg.shard_size},
        engine=cfg.engine,
        workers=cfg.workers,
        ray_address=cfg.ray_address,
        gpus_per_worker=cfg.gpus_per_worker,
    )
    seconds = time.perf_counter() - start
    frame = pd.read_csv(result.output, keep_default_na=False, dtype={"canonical_smiles": str})
    summary = summarize(frame, train)
    summary["molecules_per_s"] = cfg.n / seconds
    return result.rows, summary


def prepare(cfg):
    """``molfm data prepare`` on ``cfg``'s engine: this machine's processes, or Ray actors
    (``--engine ray``, ``-j`` of them) running the same shard function; the cache is the same
    either way (:func:`molfm.data.prepare.prepare`)."""
    from molfm.data.prepare import prepare as prepare_here

    if cfg.engine != "ray":
        return prepare_here(cfg)
    from molfm.scale.engines import ray_shard_engine

    check_options(cfg)
    return prepare_here(
        cfg, shard_engine=ray_shard_engine(cfg.ray_address, max(1, cfg.num_workers))
    )
