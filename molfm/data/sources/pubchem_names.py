"""PubChem compounds with IUPAC names, common names and synonyms (a text data set).

Read from ``chemicals/Identifiers/chemical identifiers pubchem large.tsv`` in the PyPI wheel
``chemicals==1.5.2``: about 71k PubChem compounds selected by the ``chemicals`` project. The file
has no header; each tab-separated line holds CID, CAS number, formula, molecular weight,
SMILES, InChI (without the ``InChI=1S/`` prefix), InChIKey, IUPAC name, common name and then
any number of synonyms. Lines with fewer fields are padded with missing values, never dropped.
"""

from __future__ import annotations

from typing import ClassVar

import pandas as pd

from molfm.data.sources.base import SourceInfo, WheelSource, register_source, to_float

__all__ = ["PubChemNamesSource", "PubChemNamesSmallSource", "parse_identifier_lines"]

_MEMBER = "chemicals/Identifiers/chemical identifiers pubchem large.tsv"
_SMALL_MEMBER = "chemicals/Identifiers/chemical identifiers pubchem small.tsv"
_FIELDS = (
    "cid",
    "cas",
    "formula",
    "mw",
    "smiles",
    "inchi",
    "inchikey",
    "iupac_name",
    "common_name",
)
_INCHI_PREFIX = "InChI=1S/"


def parse_identifier_lines(text: str) -> pd.DataFrame:
    """Parse the header-less identifier TSV into a frame (one row per non-blank line).

    Parameters
    ----------
    text
        The whole file decoded as UTF-8.

    Returns
    -------
    pandas.DataFrame
        Columns ``cid`` (nullable Int64), ``cas``, ``formula``, ``mw`` (float64, g/mol),
        ``smiles`` (as stored; ``""`` if absent), ``inchi`` (with the ``InChI=1S/`` prefix
        restored), ``inchikey``, ``iupac_name``, ``common_name`` (missing strings are ``None``),
        ``synonyms`` (list of str, possibly empty) and ``text`` (= ``iupac_name``).
    """
    columns: dict[str, list[str | None]] = {name: [] for name in _FIELDS}
    synonyms: list[list[str]] = []
    n = len(_FIELDS)
    for line in text.split("\n"):  # not splitlines(): names may contain U+2028 and friends
        line = line.rstrip("\r")
        if not line.strip():
            continue
        cells = line.split("\t")
        head = cells[:n] + [""] * (n - len(cells))
        for name, cell in zip(_FIELDS, head, strict=True):
            columns[name].append(cell.strip() or None)
        synonyms.append([s for s in (c.strip() for c in cells[n:]) if s])
    frame = pd.DataFrame(
        {name: pd.Series(values, dtype=object) for name, values in columns.items()}
    )
    frame["cid"] = to_float(frame["cid"], "cid").astype("Int64")
    frame["mw"] = to_float(frame["mw"], "mw")
    frame["smiles"] = frame["smiles"].fillna("")
    frame["inchi"] = [None if v is None else _INCHI_PREFIX + v for v in frame["inchi"]]
    frame["synonyms"] = pd.Series(synonyms, dtype=object)
    frame["text"] = frame["iupac_name"]
    return frame


@register_source("pubchem-names", "pubchem")
class PubChemNamesSource(WheelSource):
    """~71k PubChem compounds with identifiers and names; ``text`` is the IUPAC name.

    File key for ``files=``: ``"all"``.
    """

    PACKAGE: ClassVar[str] = "chemicals"
    FORMAT_VERSION: ClassVar[int] = 1
    MEMBERS: ClassVar[dict[str, tuple[str, ...]]] = {"all": (_MEMBER,)}
    info = SourceInfo(
        name="pubchem-names",
        description=(
            "71,347 PubChem compounds with CID, CAS number, formula, molecular weight, SMILES, "
            "InChI, InChIKey, IUPAC name, common name and synonyms, as curated by the "
            "`chemicals` package."
        ),
        provenance=(
            "PyPI wheel chemicals==1.5.2 (chemicals-1.5.2-py3-none-any.whl, sha256 pinned in "
            f"molfm.data.fetch), member '{_MEMBER}'; package "
            "https://github.com/CalebBell/chemicals, data from PubChem "
            "https://pubchem.ncbi.nlm.nih.gov"
        ),
        license=(
            "MIT (chemicals wheel LICENSE.txt and METADATA, Copyright 2016-2021 Caleb Bell); "
            "PubChem content is public-domain US government data (NCBI policy)."
        ),
        citation=(
            "Bell, C. et al., chemicals: Chemical properties component of Chemical Engineering "
            "Design Library (ChEDL), https://github.com/CalebBell/chemicals; Kim et al., PubChem "
            "2023 update, Nucleic Acids Research 51:D1373 (2023), doi:10.1093/nar/gkac956"
        ),
        subsets=("all",),
        default_subset="all",
        targets=(),
        units={"mw": "g/mol"},
        task="text",
    )

    def _load(self, subset: str) -> pd.DataFrame:
        with self.open_files(subset) as (stream,):
            text = stream.read().decode("utf-8")
        return parse_identifier_lines(text)


@register_source("pubchem-names-small")
class PubChemNamesSmallSource(PubChemNamesSource):
    """The second PubChem table of the same wheel ("pubchem small", ~1.8k compounds, nearly all
    absent from the large one), in the same format.

    File key for ``files=``: ``"all"``.
    """

    MEMBERS: ClassVar[dict[str, tuple[str, ...]]] = {"all": (_SMALL_MEMBER,)}
    info = SourceInfo(
        name="pubchem-names-small",
        description=(
            "The 'pubchem small' identifier table of the `chemicals` package: PubChem compounds "
            "with the same fields as pubchem-names."
        ),
        provenance=(
            "PyPI wheel chemicals==1.5.2 (sha256 pinned in molfm.data.fetch), member "
            f"'{_SMALL_MEMBER}'"
        ),
        license=PubChemNamesSource.info.license,
        citation=PubChemNamesSource.info.citation,
        subsets=("all",),
        default_subset="all",
        targets=(),
        units={"mw": "g/mol"},
        task="text",
    )
