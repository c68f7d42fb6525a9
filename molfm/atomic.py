"""Atomic file writes: readers see either the old file, nothing, or the whole new file.

The one write helper of molfm. Everything that leaves a file behind for a later run or another
process (checkpoints, cache shards, manifests, splits, prompt files, outputs of a command)
writes through :func:`atomic_writer`, so that a run killed mid-write never leaves a
half-written file under the final name.

It lives at the package root, beside ``hub.py``, rather than in ``engine/``: the data layer
(cache shards, splits) needs it, and ``data`` sits below ``engine`` in the import order. It
imports only the standard library.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["TMP_PREFIX", "atomic_writer", "atomic_write_text", "atomic_write_bytes"]

TMP_PREFIX = ".tmp-"
"""Prefix of in-flight files; a directory's leftovers from a killed run match ``.tmp-*``."""


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on normal exit it replaces ``path``.

    Write the whole file to the yielded path (with any library: ``pq.write_table``,
    ``np.savez``, ``safetensors.save_file``, ``DataFrame.to_csv``). If the block raises, the
    temporary file is removed and ``path`` is left as it was. The parent directory is created.

    Examples
    --------
    >>> with atomic_writer(out / "pairs.csv") as tmp:  # doctest: +SKIP
    ...     frame.to_csv(tmp, index=False)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the target's suffix kept: np.savez would append ".npz" to a name without it (writing
    # another file than the one replaced below), and to_csv infers compression from ".gz"
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}.", suffix=path.suffix
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return ``path``."""
    with atomic_writer(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return ``path``."""
    with atomic_writer(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
