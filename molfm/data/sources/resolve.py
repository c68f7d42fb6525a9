"""``--data NAME`` / ``--data-path FILE``: the one data argument a run takes, checked in one
place for the CLI and the library alike."""

from __future__ import annotations

from pathlib import Path

__all__ = ["INPUT_FORMATS", "data_set_names", "resolve_data"]


INPUT_FORMATS = ("csv", "tsv", "sdf")
"""File formats read with ``--data-path FILE``. They are not data sets: ``molfm data list``
shows them apart, and ``--data csv`` is refused with a pointer to ``--data-path``."""


def data_set_names() -> list[str]:
    """Names of the registered data sets (``--data NAME``), input formats left out."""
    from molfm.data.sources.base import list_sources

    return [info.name for info in list_sources() if info.name not in INPUT_FORMATS]


def resolve_data(
    data: str | None,
    data_path: Path | str | None,
    *,
    default: str | None = None,
    flag: str = "--data",
    path_flag: str = "--data-path",
) -> str | None:
    """The one data argument the library takes: a registered data set's name (``--data``,
    aliases resolved to the name) or a user file's path (``--data-path``); ``default`` when
    neither is given.

    Raises
    ------
    ValueError, FileNotFoundError
        One line: both flags given, a name that is not a registered data set (e.g. a file
        name given to ``--data``), or a file that does not exist.
    """
    if data is not None and data_path is not None:
        raise ValueError(f"give {flag} NAME or {path_flag} FILE, not both")
    if data_path is not None:
        path = Path(data_path)
        if path.is_dir():
            raise IsADirectoryError(f"{path_flag} {path} is a directory, not a file")
        if not path.is_file():
            raise FileNotFoundError(f"{path_flag} {path} does not exist")
        return str(path)
    if data is None:
        return default
    from molfm.data.sources.base import get_source

    names = data_set_names()
    text = str(data).strip()
    if text.lower() in INPUT_FORMATS:
        raise ValueError(
            f"{flag} {text!r} is a file format, not a data set; give the file with {path_flag} FILE"
        )
    try:
        return get_source(text).info.name
    except (KeyError, TypeError):
        raise ValueError(
            f"{flag} {text!r} is not a registered data set (choose from {', '.join(names)}); "
            f"for a file of your own use {path_flag} {text}"
        ) from None
