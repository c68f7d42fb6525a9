"""The common interface of every data-set source, and the registry that names them.

A *source* knows where one data set's raw file lives (a pinned wheel on PyPI, or a user file),
its license and units, and how to turn the raw rows into a :class:`pandas.DataFrame` with a
standard layout. It never parses or drops molecules while loading: every raw row comes back,
and molecules are built one record at a time by :meth:`Source.build_mol`, which reports bad
rows as :class:`molfm.chem.parse.InvalidMoleculeError` for the shared ``--on-invalid`` policy.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import IO, Any, ClassVar, TypeVar

import numpy as np
import pandas as pd
from rdkit import Chem

from molfm.data.fetch import WHEELS, open_member, sha256_file

__all__ = [
    "TASKS",
    "SourceInfo",
    "SourceError",
    "Source",
    "WheelSource",
    "register_source",
    "get_source",
    "list_sources",
    "to_float",
    "coordinates_error",
    "data_sets_with",
]

TASKS = frozenset({"generation", "regression", "classification", "multitask-regression", "text"})

StrPath = str | PathLike[str]


class SourceError(ValueError):
    """A source's files do not have the expected content (missing column, empty file, ...)."""


@dataclass(frozen=True)
class SourceInfo:
    """What a data set is, where it comes from and how it may be used.

    Attributes
    ----------
    name
        Registry name (kebab-case), e.g. ``"pubchem-names"``.
    description
        One or two sentences on the content.
    provenance
        Pinned package (``name==version``), the member paths read from its wheel, and the
        original upstream location / paper.
    license
        License of the data as declared by the package, with notes on the upstream terms.
    citation
        The reference to cite when using the data.
    subsets
        Names accepted by :meth:`Source.load`.
    default_subset
        The subset loaded when none is given.
    targets
        Target column names in the loaded frame (float, NaN where missing); the union over
        subsets when subsets differ (see :meth:`Source.targets_for`).
    units
        Unit of each target (and of other physical columns), e.g. ``{"gap": "eV"}``.
    task
        One of :data:`TASKS` (of the default subset when subsets differ, see
        :meth:`Source.task_for`).
    """

    name: str
    description: str
    provenance: str
    license: str
    citation: str
    subsets: tuple[str, ...]
    default_subset: str
    targets: tuple[str, ...] = ()
    units: dict[str, str] = field(default_factory=dict)
    task: str = "generation"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task {self.task!r} is not one of {sorted(TASKS)}")
        if self.default_subset not in self.subsets:
            raise ValueError(f"default subset {self.default_subset!r} not in {self.subsets}")


def to_float(values: pd.Series, column: str) -> pd.Series:
    """Convert a column of strings to float64: blank cells and ``nan`` become NaN.

    Raises
    ------
    SourceError
        If a non-blank cell is not a number; the message names the column and the rows.
    """
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.astype(np.float64)
    text = values.astype(object).where(values.notna(), "").map(str).str.strip()
    blank = text.eq("") | text.str.lower().eq("nan")
    out = pd.to_numeric(text.where(~blank, None), errors="coerce").astype(np.float64)
    bad = out.isna() & ~blank
    if bad.any():
        rows = list(bad[bad].index[:5])
        examples = ", ".join(f"row {r}: {text[r]!r}" for r in rows)
        raise SourceError(
            f"column {column!r} must be numeric; {int(bad.sum())} cell(s) are not ({examples})"
        )
    return out


def coordinates_error(subject: str, needs: str, hint: str) -> SourceError:
    """The one message for data without the 3D coordinates a command needs."""
    return SourceError(f"{subject}; {needs} needs 3D coordinates: {hint}")


def _maybe_gunzip(stream: IO[bytes]) -> IO[bytes]:
    """Wrap ``stream`` in a gzip reader when it starts with the gzip magic bytes."""
    head = stream.read(2)
    stream.seek(0)
    return gzip.GzipFile(fileobj=stream) if head == b"\x1f\x8b" else stream


class Source(ABC):
    """One data set: its description, its records, and how to build a molecule from a record.

    Subclasses set :attr:`info` and :attr:`FORMAT_VERSION` and implement :meth:`_load` and
    :meth:`content_hash`. Bump ``FORMAT_VERSION`` whenever the loaded frame changes for the
    same raw file (new column, unit change, parsing fix): it is part of :meth:`fingerprint`,
    so caches built by an older version are not reused.
    """

    info: SourceInfo
    FORMAT_VERSION: ClassVar[int] = 1
    HAS_COORDINATES: ClassVar[bool] = False
    """Whether :meth:`build_mol` gives every record 3D coordinates."""

    def resolve_subset(self, subset: str | None) -> str:
        """Return ``subset`` or the default one; raise ``ValueError`` for unknown names."""
        if subset is None:
            return self.info.default_subset
        if subset not in self.info.subsets:
            raise ValueError(
                f"{self.info.name!r} has no subset {subset!r}; choose from {list(self.info.subsets)}"
            )
        return subset

    def targets_for(self, subset: str | None = None) -> tuple[str, ...]:
        """Target columns of ``subset`` (default: all of ``info.targets``)."""
        self.resolve_subset(subset)
        return self.info.targets

    def task_for(self, subset: str | None = None) -> str:
        """Task of ``subset`` (default: ``info.task``)."""
        self.resolve_subset(subset)
        return self.info.task

    def check_coordinates(self, subset: str | None, needs: str, hint: str) -> None:
        """Refuse, before any work, data without the 3D coordinates that ``needs`` (what the
        caller runs, e.g. ``"--mode 3d"``) requires; ``hint`` says what to do instead.

        Raises
        ------
        SourceError
            One line naming the data set or file, ``needs`` and ``hint``.
        """
        if not self.HAS_COORDINATES:
            raise coordinates_error(
                f"data set {self.info.name!r} has no coordinates (SMILES only)", needs, hint
            )

    def check_targets(self, subset: str | None, flag: str = "--target-columns") -> None:
        """Refuse, before any work, a data set without target columns (a user file names its
        own with ``flag``)."""
        if not self.targets_for(subset):
            raise SourceError(
                f"data set {self.info.name!r} has no target columns; use one that has them "
                f"({', '.join(data_sets_with('targets'))}) or a file of your own with {flag}"
            )

    @abstractmethod
    def content_hash(self, subset: str) -> str:
        """sha256 identifying the raw bytes ``subset`` is read from (wheel or user file)."""

    def options(self) -> dict[str, Any]:
        """Reader options that change the loaded frame (JSON-serializable); part of the fingerprint."""
        return {}

    def fingerprint(self, subset: str | None = None) -> str:
        """Stable sha256 hex key of (source name, raw content hash, subset, format version, options)."""
        subset = self.resolve_subset(subset)
        payload = {
            "source": self.info.name,
            "content_sha256": self.content_hash(subset),
            "subset": subset,
            "format_version": self.FORMAT_VERSION,
            "options": self.options(),
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    @abstractmethod
    def _load(self, subset: str) -> pd.DataFrame:
        """Read the raw rows of ``subset`` (already validated) into a frame."""

    def load(self, subset: str | None = None) -> pd.DataFrame:
        """Load every raw row of ``subset`` (default subset when ``None``).

        Returns
        -------
        pandas.DataFrame
            Index ``0..n-1`` (the row number reported for invalid molecules), a ``smiles``
            column exactly as in the source, the float64 target columns
            :meth:`targets_for` ``(subset)``, and source-specific columns.
        """
        subset = self.resolve_subset(subset)
        frame = self._load(subset)
        if "smiles" not in frame.columns:
            raise SourceError(f"{self.info.name}: loaded frame has no 'smiles' column")
        for target in self.targets_for(subset):
            if target not in frame.columns:
                raise SourceError(f"{self.info.name}: loaded frame lacks target {target!r}")
            frame[target] = frame[target].astype(np.float64)
        return frame.reset_index(drop=True)

    def build_mol(
        self, record: Mapping[str, Any], *, row: int, standardize: Any = None
    ) -> tuple[Chem.Mol, np.ndarray | None]:
        """Build the molecule of one record.

        Parameters
        ----------
        record
            One row of :meth:`load` (a mapping with at least ``smiles``).
        row
            Row number within the subset, reported in errors.
        standardize
            ``molfm.chem.parse.StandardizeOptions`` or ``None``.

        Returns
        -------
        tuple
            The sanitized molecule and heavy-atom positions (float32 ``[n_atoms, 3]``, Angstrom),
            or ``None`` where the source has no coordinates.

        Raises
        ------
        molfm.chem.parse.InvalidMoleculeError
            If the record does not give a valid molecule.
        """
        from molfm.chem.parse import parse_smiles

        return parse_smiles(record["smiles"], row=row, standardize=standardize), None


class WheelSource(Source):
    """A source read from members of a pinned wheel (see :mod:`molfm.data.fetch`).

    Parameters
    ----------
    files
        Optional local replacements for the wheel members, keyed like :attr:`MEMBERS` (a path,
        or a sequence of paths for multi-part keys). When given, the wheel is never opened or
        downloaded, and a key the requested subset needs but ``files`` lacks is an error.
        Gzip-compressed and plain files are both accepted. Tests use this with fixture slices.
    wheel_dir
        Directory of the wheel cache (default ``molfm`` cache).
    """

    PACKAGE: ClassVar[str]
    MEMBERS: ClassVar[Mapping[str, tuple[str, ...]]]

    def __init__(
        self,
        files: Mapping[str, StrPath | Sequence[StrPath]] | None = None,
        *,
        wheel_dir: StrPath | None = None,
    ) -> None:
        self._files: dict[str, tuple[Path, ...]] | None = None
        if files is not None:
            unknown = set(files) - set(self.MEMBERS)
            if unknown:
                raise ValueError(
                    f"unknown file keys {sorted(unknown)}; known: {list(self.MEMBERS)}"
                )
            self._files = {
                key: (Path(value),)
                if isinstance(value, str | PathLike)
                else tuple(map(Path, value))
                for key, value in files.items()
            }
        self._wheel_dir = Path(wheel_dir) if wheel_dir is not None else None

    def file_keys(self, subset: str) -> tuple[str, ...]:
        """The :attr:`MEMBERS` keys needed to load ``subset`` (default: the subset's own name)."""
        return (subset,)

    def _local(self, key: str) -> tuple[Path, ...]:
        assert self._files is not None
        if key not in self._files:
            raise ValueError(
                f"{self.info.name}: local files given for {sorted(self._files)} but not for {key!r}"
            )
        return self._files[key]

    def content_hash(self, subset: str) -> str:
        if self._files is None:
            return WHEELS[self.PACKAGE].sha256
        digest = hashlib.sha256()
        for key in self.file_keys(subset):
            for path in self._local(key):
                digest.update(f"{key}:{sha256_file(path)};".encode())
        return digest.hexdigest()

    @contextmanager
    def open_files(self, key: str) -> Iterator[list[IO[bytes]]]:
        """Open every file of ``key`` (local override or wheel members) as binary streams."""
        with ExitStack() as stack:
            streams: list[IO[bytes]] = []
            if self._files is not None:
                for path in self._local(key):
                    streams.append(stack.enter_context(open(path, "rb")))
            else:
                for member in self.MEMBERS[key]:
                    raw = open_member(self.PACKAGE, member, wheel_dir=self._wheel_dir)
                    streams.append(stack.enter_context(raw))
            yield [stack.enter_context(_maybe_gunzip(s)) for s in streams]


S = TypeVar("S", bound=type[Source])

_REGISTRY: dict[str, type[Source]] = {}
_ALIASES: dict[str, str] = {}


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register_source(name: str, *aliases: str) -> Callable[[S], S]:
    """Class decorator registering a source under ``name`` (and optional aliases).

    Names are matched case-insensitively with ``_`` and ``-`` treated alike, so
    ``"pubchem_names"`` finds ``"pubchem-names"``.
    """

    def decorator(cls: S) -> S:
        key = _normalize(name)
        if key in _REGISTRY and _REGISTRY[key] is not cls:
            raise ValueError(f"source {name!r} is already registered")
        _REGISTRY[key] = cls
        for alias in aliases:
            _ALIASES[_normalize(alias)] = key
        return cls

    return decorator


def get_source(name: str, **kwargs: Any) -> Source:
    """Instantiate the source registered as ``name`` (or an alias) with ``kwargs``."""
    key = _normalize(name)
    key = _ALIASES.get(key, key)
    try:
        cls = _REGISTRY[key]
    except KeyError:
        raise KeyError(f"unknown data source {name!r}; available: {sorted(_REGISTRY)}") from None
    return cls(**kwargs)


def resolve_source(
    data: str | PathLike[str],
    *,
    smiles_column: str = "smiles",
    target_columns: Sequence[str] | None = None,
) -> Source:
    """A registered data set by name (``"moses"``), or a user CSV/TSV file by path.

    A name wins over a file only when no such file exists, so ``moses`` is the data set unless
    a file called ``moses`` sits in the working directory.
    """
    path = Path(data)
    if path.is_file():
        return get_source(
            "csv", path=path, smiles_column=smiles_column, target_columns=target_columns
        )
    key = _normalize(str(data))
    if _ALIASES.get(key, key) in _REGISTRY and key not in ("csv", "tsv", "sdf"):
        return get_source(str(data))
    raise FileNotFoundError(
        f"{str(data)!r} is neither a data set ({sorted(_REGISTRY)}) nor an existing file"
    )


def data_sets_with(what: str) -> list[str]:
    """Registered data sets (user file formats left out) with ``"coordinates"`` or
    ``"targets"``, for messages that say where to find them."""
    out = []
    for key, cls in sorted(_REGISTRY.items()):
        if issubclass(cls, WheelSource):
            has = cls.HAS_COORDINATES if what == "coordinates" else bool(cls.info.targets)
            out += [key] if has else []
    return out


def list_sources() -> list[SourceInfo]:
    """The :class:`SourceInfo` of every registered source, sorted by name."""
    return [_REGISTRY[key].info for key in sorted(_REGISTRY)]
