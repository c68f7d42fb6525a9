"""User data: a CSV/TSV of SMILES (+ targets or text), or an SDF of (3D) molecules.

Neither reader drops a row. Empty SMILES cells and SDF records RDKit cannot read are kept and
reported later, record by record, by :meth:`~molfm.data.sources.base.Source.build_mol`.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from rdkit import Chem, rdBase

from molfm.chem.io import flat_records_message, positions_3d, sdf_molecule
from molfm.data.fetch import sha256_file
from molfm.data.sources.base import (
    TASKS,
    Source,
    SourceError,
    SourceInfo,
    coordinates_error,
    get_source,
    register_source,
    to_float,
)

__all__ = [
    "CSVSource",
    "SDFSource",
    "data_or_file_source",
    "parse_sd_fields",
    "read_user_table",
    "table_delimiter",
    "user_file_source",
]

_USER_LICENSE = "as provided by the user"


def _not_text(path: Path, err: UnicodeDecodeError) -> SourceError:
    return SourceError(
        f"{path} is not a UTF-8 text file (byte {err.object[err.start]:#04x}); "
        "give a CSV or TSV file"
    )


def table_delimiter(path: str | PathLike[str]) -> str:
    """A tab when the file's header line holds one, else a comma (for files whose name does
    not say which they are)."""
    path = Path(path)
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            return "\t" if "\t" in handle.readline() else ","
    except UnicodeDecodeError as err:
        raise _not_text(path, err) from None
    except (gzip.BadGzipFile, EOFError) as err:  # a .gz name on a file that is not gzip
        raise SourceError(f"{path} could not be decompressed: {err}") from None


def read_user_table(
    path: str | PathLike[str], *, sep: str | None = None, **options: Any
) -> pd.DataFrame:
    """Every cell of a user's CSV/TSV file as a string, or one-line errors that name the file.

    Every command that reads a user's table goes through here, so an empty, binary or ragged
    file is reported the same way everywhere (pandas' own messages name no file).

    Parameters
    ----------
    path
        The file (``.gz`` is decompressed).
    sep
        The delimiter; ``None``: :func:`table_delimiter`.
    **options
        Passed to :func:`pandas.read_csv` (default ``dtype=str, keep_default_na=False``).

    Raises
    ------
    FileNotFoundError
        ``path`` is not a file.
    SourceError
        The file is empty, not UTF-8 text, not a table, or has a header but no data rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist or is not a file")
    options = {"dtype": str, "keep_default_na": False, **options}
    try:
        frame = pd.read_csv(path, sep=sep or table_delimiter(path), **options)
    except pd.errors.EmptyDataError:
        raise SourceError(f"{path} is empty (no header, no rows)") from None
    except UnicodeDecodeError as err:
        raise _not_text(path, err) from None
    except (gzip.BadGzipFile, EOFError) as err:
        raise SourceError(f"{path} could not be decompressed: {err}") from None
    except pd.errors.ParserError as err:
        reason = " ".join(str(err).split())
        raise SourceError(f"{path} could not be read as a table: {reason}") from None
    if frame.empty:
        raise SourceError(f"{path} has a header but no data rows")
    return frame


def _infer_task(targets: Sequence[str], text_column: str | None, task: str | None) -> str:
    if task is not None:
        if task not in TASKS:
            raise ValueError(f"task {task!r} is not one of {sorted(TASKS)}")
        return task
    if targets:
        return "regression" if len(targets) == 1 else "multitask-regression"
    return "text" if text_column else "generation"


def _user_info(kind: str, path: Path | None, targets: Sequence[str], task: str) -> SourceInfo:
    where = f"user file {path}" if path is not None else "a user file given with path="
    return SourceInfo(
        name=kind,
        description=f"User {kind.upper()} data ({where}).",
        provenance=where,
        license=_USER_LICENSE,
        citation="",
        subsets=("all",),
        default_subset="all",
        targets=tuple(targets),
        units={},
        task=task,
    )


class _UserFileSource(Source):
    """Shared parts of user-file sources: one subset, content-hashed file."""

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"data file {self.path} does not exist")

    def content_hash(self, subset: str) -> str:
        return sha256_file(self.path)

    def file_columns(self) -> list[str]:
        """The columns the user's file offers (CSV header, SD data items)."""
        raise NotImplementedError

    def check_targets(self, subset: str | None, flag: str = "--target-columns") -> None:
        if not self.target_columns:
            raise SourceError(
                f"{self.path}: no target columns given; name them with {flag} (the file's "
                f"columns: {', '.join(self.file_columns()) or 'none'})"
            )


@register_source("csv", "tsv")
class CSVSource(_UserFileSource):
    """A CSV (or ``.tsv``) file with a SMILES column and optional target / text columns.

    Parameters
    ----------
    path
        The file; ``.tsv``/``.tab`` files are tab-separated, others comma-separated.
    smiles_column
        Name of the SMILES column (exact match).
    target_columns
        Numeric target columns (blank cells become NaN; other non-numbers are an error).
    text_column
        Column copied into the standard ``text`` column (captions, names).
    task
        Override the inferred task (``"classification"`` for 0/1 targets).

    Notes
    -----
    The frame keeps every row, with ``smiles`` exactly as in the file (``""`` for empty
    cells), the targets as float64, ``text`` if requested, and every other column as strings.
    """

    info: SourceInfo = _user_info("csv", None, (), "generation")  # class-level, for listings

    def __init__(
        self,
        path: str | PathLike[str],
        smiles_column: str = "smiles",
        target_columns: Sequence[str] | None = None,
        text_column: str | None = None,
        *,
        task: str | None = None,
    ) -> None:
        super().__init__(path)
        self.smiles_column = smiles_column
        self.target_columns = tuple(target_columns or ())
        self.text_column = text_column
        self.info = _user_info(
            "csv",
            self.path,
            self.target_columns,
            _infer_task(self.target_columns, text_column, task),
        )

    def check_coordinates(self, subset: str | None, needs: str, hint: str) -> None:
        raise coordinates_error(f"{self.path} holds SMILES without coordinates", needs, hint)

    def options(self) -> dict[str, Any]:
        return {
            "smiles_column": self.smiles_column,
            "target_columns": list(self.target_columns),
            "text_column": self.text_column,
            "task": self.info.task,
        }

    def _read(self) -> pd.DataFrame:
        sep = "\t" if self.path.suffix.lower() in {".tsv", ".tab"} else ","
        return read_user_table(self.path, sep=sep, na_filter=False)

    def file_columns(self) -> list[str]:
        """The file's header, as the user wrote it."""
        return list(self._read().columns)

    def _load(self, subset: str) -> pd.DataFrame:
        raw = self._read()
        wanted = [self.smiles_column, *self.target_columns]
        if self.text_column is not None:
            wanted.append(self.text_column)
        missing = [c for c in wanted if c not in raw.columns]
        if missing:
            hints = [c for c in raw.columns if c.lower() in {m.lower() for m in missing}]
            hint = f" (did you mean {hints}?)" if hints else ""
            raise SourceError(
                f"{self.path}: column(s) {missing} not found; available columns: "
                f"{list(raw.columns)}{hint}"
            )
        frame = pd.DataFrame({"smiles": raw[self.smiles_column]})
        for column in self.target_columns:
            frame[column] = to_float(raw[column], column)
        if self.text_column is not None:
            frame["text"] = raw[self.text_column]
        for column in raw.columns:
            if column not in frame.columns and column not in wanted:
                frame[column] = raw[column]
        return frame


def parse_sd_fields(record: str) -> dict[str, str]:
    """Data items (``> <name>`` blocks after ``M  END``) of one SD record's text."""
    lines = record.split("\n")
    fields: dict[str, str] = {}
    start = next((i for i, line in enumerate(lines) if line.startswith("M  END")), -1) + 1
    name: str | None = None
    value: list[str] = []
    for line in [*lines[start:], ""]:
        line = line.rstrip("\r")
        if name is None:
            if line.startswith(">") and "<" in line and ">" in line[line.index("<") :]:
                name = line[line.index("<") + 1 : line.index(">", line.index("<"))]
                value = []
        elif line.strip() == "" or line.startswith("$$$$"):
            fields[name] = "\n".join(value)
            name = None
        else:
            value.append(line)
    return fields


def _molblock(record: str) -> str:
    lines = record.split("\n")
    end = next((i for i, line in enumerate(lines) if line.startswith("M  END")), None)
    return "\n".join(lines[: end + 1] if end is not None else lines) + "\n"


def _smiles_of(mol: Chem.Mol | None) -> str:
    """Canonical SMILES of an unsanitized supplier molecule, ``""`` if it cannot be sanitized."""
    if mol is None:
        return ""
    copy = Chem.Mol(mol)
    with rdBase.CaptureErrorLog():  # build_mol reports the reason; keep load() quiet
        try:
            Chem.SanitizeMol(copy)
            return Chem.MolToSmiles(Chem.RemoveHs(copy))
        except Exception:  # RDKit raises several exception types
            return ""


@register_source("sdf")
class SDFSource(_UserFileSource):
    """An SD file; every record is kept, with its mol block, title and data items.

    Parameters
    ----------
    path
        The ``.sdf`` file.
    target_columns
        SD data items to use as numeric targets (float64; missing items are NaN).
    task
        Override the inferred task.

    Notes
    -----
    Columns: ``smiles`` (canonical SMILES computed from the record, ``""`` when RDKit cannot
    read or sanitize it; SD files carry no SMILES of their own), ``molblock``, ``title``,
    ``sdf_index`` (0-based record number), the targets, and every other data item as a string
    column (an item named like a standard column is stored as ``sdf_<name>``).
    """

    info: SourceInfo = _user_info("sdf", None, (), "generation")
    FORMAT_VERSION: ClassVar[int] = 2  # 2: molecules in canonical atom order
    HAS_COORDINATES: ClassVar[bool] = True
    _RESERVED: ClassVar[frozenset[str]] = frozenset({"smiles", "molblock", "title", "sdf_index"})

    def __init__(
        self,
        path: str | PathLike[str],
        target_columns: Sequence[str] | None = None,
        *,
        task: str | None = None,
    ) -> None:
        super().__init__(path)
        self.target_columns = tuple(target_columns or ())
        self.info = _user_info(
            "sdf", self.path, self.target_columns, _infer_task(self.target_columns, None, task)
        )

    def options(self) -> dict[str, Any]:
        return {"target_columns": list(self.target_columns), "task": self.info.task}

    def file_columns(self) -> list[str]:
        return [c for c in self.load().columns if c not in self._RESERVED]

    def check_coordinates(self, subset: str | None, needs: str, hint: str) -> None:
        """Refuse a file with flat (2D) records by reading only their coordinates; records
        RDKit cannot read are left to :meth:`build_mol` to report."""
        supplier = Chem.SDMolSupplier(str(self.path), sanitize=False, removeHs=False)
        flat = []
        with rdBase.CaptureErrorLog():
            for index in range(len(supplier)):
                mol = supplier[index]
                # build_mol reads the heavy atoms' coordinates: judge the same atoms
                if mol is not None and positions_3d(Chem.RemoveHs(mol, sanitize=False)) is None:
                    flat.append(index)
        if flat:
            raise coordinates_error(
                flat_records_message(self.path, flat, len(supplier)), needs, hint
            )

    def _load(self, subset: str) -> pd.DataFrame:
        if not self.path.read_bytes().strip():
            raise SourceError(f"{self.path} contains no SD records (empty file)")
        supplier = Chem.SDMolSupplier(str(self.path), sanitize=False, removeHs=False)
        n = len(supplier)
        if n == 0:
            raise SourceError(f"{self.path} contains no SD records")
        rows: list[dict[str, Any]] = []
        for index in range(n):
            text = supplier.GetItemText(index)
            mol = supplier[index]
            row: dict[str, Any] = {
                "smiles": _smiles_of(mol),
                "molblock": _molblock(text),
                "title": text.split("\n", 1)[0].rstrip("\r"),
                "sdf_index": index,
            }
            for key, value in parse_sd_fields(text).items():
                row[f"sdf_{key}" if key in self._RESERVED else key] = value
            rows.append(row)
        frame = pd.DataFrame(rows)
        for column in self.target_columns:
            if column not in frame.columns:
                raise SourceError(
                    f"{self.path}: no SD data item {column!r}; items found: "
                    f"{[c for c in frame.columns if c not in self._RESERVED]}"
                )
            frame[column] = to_float(frame[column], column)
        return frame

    def build_mol(
        self, record: Mapping[str, Any], *, row: int, standardize: Any = None
    ) -> tuple[Chem.Mol, np.ndarray | None]:
        """Sanitize the record's mol block; positions are the file's heavy-atom coordinates.

        The molecule comes in canonical atom order, its positions permuted alike, so its graph
        does not depend on the order the file lists atoms in (:func:`~molfm.chem.io.sdf_molecule`).
        ``standardize`` is not applied (it could remove atoms and detach the coordinates).
        Positions are ``None`` for flat (2D) records (:func:`~molfm.chem.io.positions_3d`).

        Raises
        ------
        molfm.chem.parse.InvalidMoleculeError
            With ``row`` and RDKit's reason, when the block cannot be parsed or sanitized.
        """
        from molfm.chem.parse import InvalidMoleculeError

        value = record.get("smiles") or record.get("title") or f"SD record {row}"
        mol = Chem.MolFromMolBlock(record["molblock"], sanitize=False, removeHs=False)
        if mol is None:
            raise InvalidMoleculeError(value, "RDKit could not parse the mol block", row=row)
        try:
            Chem.SanitizeMol(mol)
            mol = Chem.RemoveHs(mol)
        except Exception as exc:  # AtomValenceException, KekulizeException, ...
            raise InvalidMoleculeError(value, str(exc) or type(exc).__name__, row=row) from exc
        if mol.GetNumAtoms() == 0:
            raise InvalidMoleculeError(value, "record has no heavy atoms", row=row)
        return sdf_molecule(mol, value=value, row=row)


def user_file_source(
    path: str | PathLike[str],
    *,
    smiles_column: str = "smiles",
    target_columns: Sequence[str] | None = None,
    text_column: str | None = None,
) -> CSVSource | SDFSource:
    """The source of a user file: an SDF (``.sdf``/``.sd``, 3D) or else a CSV/TSV of SMILES.

    Raises
    ------
    FileNotFoundError
        One line when ``path`` is not an existing file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist or is not a file")
    if path.suffix.lower() in (".sdf", ".sd"):
        return SDFSource(path=path, target_columns=target_columns)
    return CSVSource(
        path=path,
        smiles_column=smiles_column,
        target_columns=target_columns,
        text_column=text_column,
    )


def data_or_file_source(
    data: str | None,
    data_path: str | PathLike[str] | None,
    *,
    smiles_column: str = "smiles",
    target_columns: Sequence[str] | None = None,
) -> Source:
    """The source a training command reads: exactly one of a registered data set (``data``,
    e.g. ``"qm9"``) or a user file (``data_path``, see :func:`user_file_source`).

    Raises
    ------
    ValueError
        Neither or both given (one line naming the two options).
    """
    if (data is None) == (data_path is None):
        raise ValueError("give exactly one of --data NAME or --data-path FILE")
    if data_path is not None:
        return user_file_source(
            data_path, smiles_column=smiles_column, target_columns=target_columns
        )
    return get_source(data)
