"""Data-set sources: where each data set comes from, its license and units, and its raw rows.

Importing this package registers every built-in source::

    from molfm.data.sources import get_source, list_sources

    source = get_source("qm9")
    frame = source.load()  # every raw row; molecules are built later with source.build_mol
"""

from molfm.data.sources.b3db import B3DBSource
from molfm.data.sources.base import (
    TASKS,
    Source,
    SourceError,
    SourceInfo,
    WheelSource,
    get_source,
    list_sources,
    register_source,
    resolve_source,
)
from molfm.data.sources.moses import MosesSource, reference_stats
from molfm.data.sources.pubchem_names import PubChemNamesSource
from molfm.data.sources.qm9 import HARTREE_TO_EV, QM9Source
from molfm.data.sources.resolve import INPUT_FORMATS, data_set_names, resolve_data
from molfm.data.sources.user import CSVSource, SDFSource, data_or_file_source, user_file_source

__all__ = [
    "INPUT_FORMATS",
    "data_set_names",
    "resolve_data",
    "TASKS",
    "Source",
    "SourceError",
    "SourceInfo",
    "WheelSource",
    "get_source",
    "list_sources",
    "register_source",
    "resolve_source",
    "user_file_source",
    "data_or_file_source",
    "B3DBSource",
    "MosesSource",
    "reference_stats",
    "PubChemNamesSource",
    "HARTREE_TO_EV",
    "QM9Source",
    "CSVSource",
    "SDFSource",
]
