"""One part of a streamed job: its files in the parts directory, and how a worker computes
and writes it (:func:`run_part`, what every engine calls)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from molfm.atomic import atomic_writer
from molfm.scale.chunks import Chunk, read_chunk

__all__ = ["result_path", "rejected_path", "run_part"]


def result_path(parts: Path, index: int) -> Path:
    return parts / f"part-{index:06d}.parquet"


def rejected_path(parts: Path, index: int) -> Path:
    return parts / f"rejected-{index:06d}.parquet"


def run_part(job_fn: Callable, chunk: Chunk, columns: list[str] | None, parts: Path) -> int:
    """Read, compute and write one part (rejected rows first: the results file marks the part
    finished). Returns the part's index."""
    frame = read_chunk(chunk, None if chunk.kind == "sdf" else columns)
    table, rejected = job_fn(frame)
    with atomic_writer(rejected_path(parts, chunk.index)) as tmp:
        pq.write_table(pa.Table.from_pandas(rejected, preserve_index=False), tmp)
    with atomic_writer(result_path(parts, chunk.index)) as tmp:
        pq.write_table(table, tmp)
    return chunk.index
