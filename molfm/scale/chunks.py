"""Input files cut into parts that any worker can read on its own.

A :class:`Chunk` is a small, picklable description of ``n_rows`` consecutive input rows: a
byte range of a CSV/TSV or SDF file, or a row range of a Parquet file. Planning a file
(:func:`plan_chunks`) reads it once, block by block, to find where records end (bounded
memory, whatever the size); reading a chunk (:func:`read_chunk`) touches only its own bytes.
The local engine and Ray read the same chunks with the same function, so they see the same
rows, numbered the same way (``row`` = position in the file, from 0, as every molfm command
numbers rows).

A gzip-compressed file has no random access: it is read front to back
(:func:`iter_chunk_frames`), on the local engine only.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from molfm.data.sources.base import SourceError
from molfm.data.sources.user import read_user_table, table_delimiter

__all__ = [
    "Chunk",
    "input_kind",
    "plan_chunks",
    "plan_shards",
    "shard_seed",
    "read_chunk",
    "iter_chunk_frames",
]

_BLOCK = 1 << 22  # bytes scanned at a time while planning (a few arrays of this size)
_SDF_END = b"$$$$"


@dataclass(frozen=True)
class Chunk:
    """``n_rows`` consecutive rows of ``path``, the first being row ``first_row``.

    ``start``/``stop`` are byte offsets (CSV/TSV/SDF) or row offsets (Parquet). A generation
    shard (``kind="shard"``, no file) draws ``n_rows`` samples with the seed ``start``."""

    path: str
    kind: str  # "csv" | "sdf" | "parquet" | "shard"
    index: int
    first_row: int
    n_rows: int
    start: int
    stop: int


def input_kind(path: str | Path) -> str:
    """``"csv"`` (CSV/TSV), ``"sdf"`` or ``"parquet"`` by the file name (``.gz`` allowed for
    text files)."""
    name = Path(path).name.lower().removesuffix(".gz")
    if name.endswith((".sdf", ".sd")):
        return "sdf"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return "csv"


def _is_gz(path: str | Path) -> bool:
    return str(path).lower().endswith(".gz")


def _record_ends_csv(path: Path) -> tuple[int, list[int]]:
    """Byte length of the header line and the end offset (one past the newline) of every
    data record: newlines outside double quotes ending a non-empty line (pandas skips empty
    lines), found block by block with numpy."""
    ends: list[np.ndarray] = []
    in_quotes = False
    offset = 0
    previous_newline = -1  # offset of the last newline seen (a line starts after it)
    last_byte = 0  # the previous block's last byte
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            data = np.frombuffer(block, dtype=np.uint8)
            quotes = np.cumsum(data == ord('"'), dtype=np.int32) + (1 if in_quotes else 0)
            local = np.flatnonzero((data == ord("\n")) & (quotes % 2 == 0))
            in_quotes = bool(quotes[-1] % 2)
            newline = local + offset
            starts = np.concatenate(([previous_newline], newline[:-1])) + 1
            lengths = newline - starts
            before = np.where(local > 0, data[np.maximum(local - 1, 0)], last_byte)
            # an empty line, or one holding only "\r", is no record (pandas skips it)
            keep = (lengths > 1) | ((lengths == 1) & (before != ord("\r")))
            ends.append(newline[keep] + 1)
            if newline.size:
                previous_newline = int(newline[-1])
            last_byte = int(data[-1])
            offset += len(block)
    size = offset
    all_ends = np.concatenate(ends) if ends else np.empty(0, dtype=np.int64)
    if size > previous_newline + 1:  # a last line without a newline
        tail_start = previous_newline + 1
        with open(path, "rb") as handle:
            handle.seek(tail_start)
            if handle.read().strip():
                all_ends = np.append(all_ends, size)
    if all_ends.size == 0:
        raise SourceError(f"{path} is empty (no header, no rows)")
    return int(all_ends[0]), all_ends[1:].tolist()


def _record_ends_sdf(path: Path) -> list[int]:
    """End offset of every SDF record (one past its ``$$$$`` line)."""
    ends: list[int] = []
    offset = 0
    carry = b""
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            data = carry + block
            base = offset - len(carry)
            position = 0
            while (found := data.find(_SDF_END, position)) != -1:
                line_start = found == 0 and base == 0 or (found > 0 and data[found - 1] == 10)
                newline = data.find(b"\n", found)
                if newline == -1:  # the $$$$ line continues in the next block
                    break
                if line_start and data[found + 4 : newline].strip() == b"":
                    ends.append(base + newline + 1)
                position = newline + 1
            carry = data[position:]
            offset += len(block)
    if carry.strip():
        ends.append(offset)  # a last record without its $$$$ line
    return ends


def plan_chunks(path: str | Path, chunk_size: int) -> list[Chunk]:
    """The parts of ``path``, ``chunk_size`` rows each (the last one shorter).

    Raises
    ------
    SourceError
        The file is empty or has no data rows; or it is gzip-compressed (no random access:
        use :func:`iter_chunk_frames`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist or is not a file")
    kind = input_kind(path)
    if _is_gz(path):
        raise SourceError(f"{path} is compressed: parts need random access; decompress it")
    if kind == "parquet":
        n = pq.ParquetFile(path).metadata.num_rows
        bounds = [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]
    else:
        if kind == "csv":
            header_end, ends = _record_ends_csv(path)
            starts = [header_end, *ends[:-1]]
        else:
            ends = _record_ends_sdf(path)
            starts = [0, *ends[:-1]]
        n = len(ends)
        bounds = [(starts[s], ends[min(s + chunk_size, n) - 1]) for s in range(0, n, chunk_size)]
    if n == 0:
        raise SourceError(f"{path} has a header but no data rows")
    return [
        Chunk(str(path), kind, i, i * chunk_size, min(chunk_size, n - i * chunk_size), a, b)
        for i, (a, b) in enumerate(bounds)
    ]


def shard_seed(seed: int, shard: int) -> int:
    """The seed of generation shard ``shard`` of a run seeded ``seed`` (independent streams,
    the same on every engine)."""
    return int(np.random.SeedSequence([seed, shard]).generate_state(1, dtype=np.uint32)[0])


def plan_shards(n: int, shard_size: int, seed: int) -> list[Chunk]:
    """``n`` samples as seeded shards of ``shard_size`` (the last one smaller)."""
    return [
        Chunk("", "shard", i, first, min(shard_size, n - first), shard_seed(seed, i), 0)
        for i, first in enumerate(range(0, n, shard_size))
    ]


def _read_bytes(path: str, start: int, stop: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(start)
        return handle.read(stop - start)


def read_chunk(chunk: Chunk, columns: list[str] | None = None) -> pd.DataFrame:
    """The rows of ``chunk`` (every cell a string for CSV/TSV; ``molblock`` for SDF), indexed
    by their row numbers in the file.

    Raises
    ------
    SourceError
        The part does not hold the rows its plan says (the file changed since planning).
    """
    if chunk.kind == "shard":
        frame = pd.DataFrame({"shard": [chunk.index], "n": [chunk.n_rows], "seed": [chunk.start]})
        frame.index = pd.RangeIndex(chunk.first_row, chunk.first_row + 1)
        return frame
    if chunk.kind == "parquet":
        frame = _read_parquet_rows(chunk.path, chunk.start, chunk.stop, columns)
    elif chunk.kind == "sdf":
        data = _read_bytes(chunk.path, chunk.start, chunk.stop).decode("utf-8", "replace")
        blocks = data.split("\n$$$$")
        # each record after the first starts with the rest of the previous "$$$$" line
        records = [
            (b if i == 0 else b.split("\n", 1)[1] if "\n" in b else "") + "\n$$$$\n"
            for i, b in enumerate(blocks[: chunk.n_rows])
        ]
        frame = pd.DataFrame({"molblock": records})
    else:
        with open(chunk.path, "rb") as handle:
            header = handle.readline()
        text = header + _read_bytes(chunk.path, chunk.start, chunk.stop)
        frame = pd.read_csv(
            io.BytesIO(text),
            sep=table_delimiter(chunk.path),
            dtype=str,
            keep_default_na=False,
            usecols=columns,
        )
    if len(frame) != chunk.n_rows:
        raise SourceError(
            f"{chunk.path} changed while it was read: part {chunk.index} holds {len(frame)} "
            f"rows, {chunk.n_rows} expected"
        )
    frame.index = pd.RangeIndex(chunk.first_row, chunk.first_row + chunk.n_rows)
    return frame


def _read_parquet_rows(path: str, start: int, stop: int, columns: list[str] | None) -> pd.DataFrame:
    """Rows ``[start, stop)`` of a Parquet file, reading only the row groups that hold them."""
    handle = pq.ParquetFile(path)
    first, tables = 0, []
    for group in range(handle.num_row_groups):
        size = handle.metadata.row_group(group).num_rows
        if first < stop and first + size > start:
            table = handle.read_row_group(group, columns=columns)
            tables.append(
                table.slice(
                    max(0, start - first), min(stop, first + size) - first - max(0, start - first)
                )
            )
        first += size
    frame = (
        pd.concat([t.to_pandas() for t in tables], ignore_index=True) if tables else pd.DataFrame()
    )
    return frame


def iter_chunk_frames(path: str | Path, chunk_size: int) -> Iterator[pd.DataFrame]:
    """The rows of a gzip-compressed CSV/TSV, ``chunk_size`` at a time, front to back,
    indexed by row number (what :func:`read_chunk` gives for an uncompressed file)."""
    path = Path(path)
    if input_kind(path) != "csv":
        raise SourceError(f"{path}: a compressed file must be a CSV or TSV")
    read_user_table(path, nrows=1)  # one-line errors for an empty or binary file
    reader = pd.read_csv(
        path, sep=table_delimiter(path), dtype=str, keep_default_na=False, chunksize=chunk_size
    )
    first = 0
    with gzip.open(path, "rb"), reader:
        for frame in reader:
            frame.index = pd.RangeIndex(first, first + len(frame))
            first += len(frame)
            yield frame
