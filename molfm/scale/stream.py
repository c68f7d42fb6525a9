"""Run a batch job over a file of any size: parts in, parts out, one output in input order.

1. Plan the input's parts (:func:`~molfm.scale.chunks.plan_chunks`, ``chunk_size`` rows each).
2. Beside the output, ``<output>.parts/`` holds one results file and one rejected-rows file per
   finished part, written atomically, plus ``job.json`` (what the results depend on). A rerun
   of the same job skips the finished parts: a killed run resumes where it stopped. Parts of
   another job there stop the run with one line.
3. The engine (:mod:`molfm.scale.engines`) runs the missing parts: here, in worker processes,
   or on Ray actors, each calling the job's batch function.
4. The parts are joined into the output (CSV, or Parquet by the file name), one part at a
   time, and the rejected rows into ``invalid.csv`` beside it; then the parts go.

Memory holds one part per worker plus the model, whatever the input's size. With
``on_invalid="error"``, the first part holding an unreadable row stops the run with that row
(the finished parts stay, so ``--on-invalid skip`` continues from them).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq

from molfm.atomic import atomic_write_text, atomic_writer
from molfm.chem.parse import InvalidMoleculeError
from molfm.data.sources.user import table_delimiter
from molfm.scale.batches import REJECTED_COLUMNS, Job
from molfm.scale.chunks import Chunk, plan_chunks
from molfm.scale.parts import rejected_path, result_path

__all__ = ["StreamResult", "run_stream", "run_units", "parts_dir_of"]

JOB_FILE = "job.json"


@dataclass
class StreamResult:
    output: Path
    rows: int  # results written
    n_rejected: int  # rows rejected (all listed in invalid_path)
    rejected: pd.DataFrame  # the first few rejected rows: row, smiles, reason
    invalid_path: Path | None
    parts: int
    resumed_parts: int  # parts found finished by an earlier run
    out_of_domain: int = 0  # rows flagged out_of_domain (predictions)


def parts_dir_of(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".parts")


def _open_parts(parts: Path, stamp: dict) -> None:
    """Create ``parts`` with its stamp, or check that the parts there are this run's."""
    marker = parts / JOB_FILE
    if marker.is_file():
        if json.loads(marker.read_text()) != stamp:
            raise ValueError(
                f"{parts} holds the parts of another run (another input or options); "
                "remove it to start again"
            )
        return
    parts.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, json.dumps(stamp, indent=2))


def _check_columns(chunk: Chunk, columns: list[str] | None) -> None:
    """The columns a job reads exist in the file: one line naming the ones it has."""
    if chunk.kind == "sdf" or not columns:
        return
    if chunk.kind == "parquet":
        have = pq.read_schema(chunk.path).names
    else:
        have = list(pd.read_csv(chunk.path, sep=table_delimiter(chunk.path), nrows=0).columns)
    for column in columns:
        if column not in have:
            raise ValueError(f"{chunk.path} has no column {column!r}; columns: {have}")


def _first_rejected(parts: Path, index: int) -> dict | None:
    table = pq.read_table(rejected_path(parts, index))
    return table.slice(0, 1).to_pylist()[0] if table.num_rows else None


def run_stream(
    job: Job,
    input_path: str | Path,
    output: str | Path,
    *,
    chunk_size: int,
    **options,
) -> StreamResult:
    """Run ``job`` over every row of ``input_path`` into ``output``; see the module docstring.

    Raises
    ------
    InvalidMoleculeError
        ``on_invalid="error"`` and a row cannot be read (the first one found, by row).
    ValueError
        The parts directory belongs to another run.
    """
    input_path, output = Path(input_path), Path(output)
    chunks = plan_chunks(input_path, chunk_size)
    _check_columns(chunks[0], job.input_columns())
    stat = input_path.stat()
    stamp = {
        "input": str(input_path.resolve()),
        "input_bytes": stat.st_size,
        "input_mtime_ns": stat.st_mtime_ns,
        "chunk_size": chunk_size,
    }
    # on_invalid, engine, workers, ray_address, gpus_per_worker, progress: as run_units
    return run_units(job, chunks, output, stamp=stamp, **options)


def run_units(
    job: Job,
    chunks: list[Chunk],
    output: str | Path,
    *,
    stamp: dict,
    on_invalid: str = "error",
    engine: str = "local",
    workers: int = 1,
    ray_address: str | None = None,
    gpus_per_worker: float | None = None,
    progress: bool = False,
) -> StreamResult:
    """Run ``job`` over planned parts (of a file, or generation shards) into ``output``:
    steps 2-4 of the module docstring. ``stamp`` says what the parts depend on besides the
    job (the input file, the part size)."""
    from molfm.scale.engines import run_local, run_ray

    output = Path(output)
    parts = parts_dir_of(output)
    _open_parts(parts, {"job": job.fingerprint(), **stamp})
    finished = {c.index for c in chunks if result_path(parts, c.index).is_file()}
    todo = [c for c in chunks if c.index not in finished]

    def check(index: int) -> None:
        if on_invalid == "error" and (bad := _first_rejected(parts, index)) is not None:
            raise InvalidMoleculeError(bad["smiles"], bad["reason"], row=bad["row"])

    try:
        for index in sorted(finished):
            check(index)
        if todo:
            if engine == "ray":
                options = {"address": ray_address, "gpus_per_worker": gpus_per_worker}
                run_ray(
                    job, todo, parts, workers=workers, on_done=check, progress=progress, **options
                )
            else:
                run_local(job, todo, parts, workers=workers, on_done=check, progress=progress)
    except BaseException:
        if not any(parts.glob("part-*.parquet")):  # nothing worth resuming: leave nothing
            shutil.rmtree(parts, ignore_errors=True)
        raise
    result = _assemble(parts, [c.index for c in chunks], output)
    result.resumed_parts = len(finished)
    shutil.rmtree(parts)
    return result


def _assemble(parts: Path, indices: list[int], output: Path) -> StreamResult:
    """Join the parts in order into ``output`` (CSV or Parquet) and ``invalid.csv``, one part
    in memory at a time."""
    rows, flagged = 0, 0
    as_parquet = output.suffix.lower() in (".parquet", ".pq")
    with atomic_writer(output) as tmp:
        writer, header = None, True
        try:
            for index in indices:
                table = pq.read_table(result_path(parts, index))
                rows += table.num_rows
                if "out_of_domain" in table.column_names:
                    flagged += pa.compute.sum(table["out_of_domain"]).as_py() or 0
                if not as_parquet:
                    # pandas writes the numbers: the same text as a whole-file to_csv
                    table.to_pandas().to_csv(tmp, mode="a", header=header, index=False)
                    header = False
                elif table.num_rows or (writer is None and index == indices[-1]):
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                    writer.write_table(table.cast(writer.schema))
        finally:
            if writer is not None:
                writer.close()
    n_rejected, first = 0, []
    invalid_path = output.with_name("invalid.csv")
    with atomic_writer(invalid_path) as tmp:
        tmp.touch()
        for index in indices:
            frame = pq.read_table(rejected_path(parts, index)).to_pandas()
            frame = frame.reindex(columns=REJECTED_COLUMNS)
            if len(frame):
                frame.to_csv(tmp, mode="a", header=n_rejected == 0, index=False)
            if len(first) < 5:
                first.extend(frame.head(5 - len(first)).to_dict("records"))
            n_rejected += len(frame)
    if not n_rejected:  # an empty file was written: no rejected rows, no invalid.csv
        invalid_path.unlink()
        invalid_path = None
    rejected = pd.DataFrame(first, columns=REJECTED_COLUMNS)
    return StreamResult(
        output, rows, n_rejected, rejected, invalid_path, len(indices), 0, out_of_domain=flagged
    )
