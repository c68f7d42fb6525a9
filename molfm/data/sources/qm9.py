"""QM9: 130,831 small organic molecules with B3LYP/6-31G(2df,p) geometries and properties.

Read from the PyPI wheel ``qm9pack==1.0.3`` (``qm9pack/data/qm9_part{1,2,3}.csv`` joined with
``qm9_polarizability.csv`` on ``XYZ_file``). The original QM9 has 133,885 molecules; the 3,054
that failed the QM9 authors' geometry consistency check are absent from qm9pack, so the
``qm9_index`` column (the original ``gdb`` index) has gaps.

Units. Energies in the raw file are in Hartree; molfm converts ``homo``, ``lumo``, ``gap``,
``zpve``, ``u0``, ``u``, ``h`` and ``g`` to eV with 1 Ha = 27.211386245988 eV (CODATA 2018).
``mu`` (Debye), ``alpha`` (bohr^3), ``r2`` (bohr^2), ``cv`` (cal/mol K) and the rotational
constants ``A``, ``B``, ``C`` (GHz) keep their raw units. Coordinates are in Angstrom.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from rdkit import Chem

from molfm.data.sources.base import (
    SourceError,
    SourceInfo,
    WheelSource,
    register_source,
    to_float,
)

__all__ = ["QM9Source", "HARTREE_TO_EV", "QM9_TARGETS"]

HARTREE_TO_EV = 27.211386245988
"""eV per Hartree (CODATA 2018)."""

# molfm target name -> (raw qm9pack column, unit after conversion, factor applied to raw value)
QM9_TARGETS: dict[str, tuple[str, str, float]] = {
    "mu": ("Dipole_debye", "D", 1.0),
    "alpha": ("Polarizability_bohr3", "bohr^3", 1.0),
    "homo": ("HOMO_au", "eV", HARTREE_TO_EV),
    "lumo": ("LUMO_au", "eV", HARTREE_TO_EV),
    "gap": ("HOMO_LUMO_gap_au", "eV", HARTREE_TO_EV),
    "r2": ("R2_bohr2", "bohr^2", 1.0),
    "zpve": ("ZPVE_au", "eV", HARTREE_TO_EV),
    "u0": ("InternalEnergy_0K_au", "eV", HARTREE_TO_EV),
    "u": ("InternalEnergy_298K_au", "eV", HARTREE_TO_EV),
    "h": ("Enthalphy_298K_au", "eV", HARTREE_TO_EV),
    "g": ("GibbsFreeEnergy_298K_au", "eV", HARTREE_TO_EV),
    "cv": ("Heatcapacity_Cv_cal_mol_K", "cal/(mol K)", 1.0),
    "A": ("RotA_GHz", "GHz", 1.0),
    "B": ("RotB_GHz", "GHz", 1.0),
    "C": ("RotC_GHz", "GHz", 1.0),
}

_TENSOR = ("A_xx", "A_xy", "A_yy", "A_xz", "A_yz", "A_zz")

_UNITS = {name: unit for name, (_, unit, _) in QM9_TARGETS.items()}
_UNITS.update({f"alpha_{c[2:]}": "bohr^3" for c in _TENSOR})
_UNITS.update({"positions": "Angstrom", "mulliken_charges": "e", "frequencies": "cm^-1"})


_TO_NEWLINES = bytes.maketrans(b";,", b"\n\n")


def _parse_row(text: str) -> np.ndarray:
    body = text.replace("[", "").replace("]", "").strip()
    return np.array(body.split(","), dtype=np.float64) if body else np.empty(0)


def _parse_all(cells: list[str]) -> list[np.ndarray] | None:
    """Vectorized pass: one byte string, counts from comma positions, numbers via pandas' C parser.

    Returns ``None`` if any cell is malformed (the caller then parses row by row).
    """
    if not cells:
        return []
    try:
        blob = ";".join(cells).encode("ascii").translate(None, b"[]")
    except UnicodeEncodeError:
        return None
    codes = np.frombuffer(blob, dtype=np.uint8)
    bounds = np.concatenate([[-1], np.flatnonzero(codes == ord(";")), [codes.size]])
    commas = np.flatnonzero(codes == ord(","))
    lengths = np.diff(bounds) - 1
    counts = np.where(lengths > 0, np.diff(np.searchsorted(commas, bounds)) + 1, 0)
    try:
        numbers = pd.read_csv(
            io.BytesIO(blob.translate(_TO_NEWLINES)),
            header=None,
            names=["v"],
            dtype=np.float64,
            skip_blank_lines=True,
            engine="c",
        )["v"].to_numpy()
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None if counts.sum() else [np.empty(0) for _ in cells]
    if numbers.size != counts.sum():
        return None
    ends = np.cumsum(counts).tolist()
    return [numbers[end - n : end] for end, n in zip(ends, counts.tolist(), strict=True)]


def parse_float_lists(values: pd.Series, width: int = 1) -> list[np.ndarray | None]:
    """Parse JSON-like number lists (``"[[x,y,z],[x,y,z]]"`` or ``"[a,b]"``) row by row.

    All rows are parsed in one vectorized pass; if that pass fails (a malformed cell), rows are
    parsed one at a time and the malformed ones become ``None`` so no row is lost.

    Parameters
    ----------
    values
        String column.
    width
        Reshape each row to ``[-1, width]`` when ``width > 1``.

    Returns
    -------
    list
        One float32 array per row (``None`` for malformed or, with ``width > 1``, empty cells).
    """
    cells = [str(v) for v in values.fillna("").tolist()]
    rows: list[np.ndarray | None] | None = _parse_all(cells)  # type: ignore[assignment]
    if rows is None:
        rows = []
        for text in cells:
            try:
                rows.append(_parse_row(text))
            except ValueError:
                rows.append(None)
    out: list[np.ndarray | None] = []
    for arr in rows:
        if arr is None or (width > 1 and (arr.size == 0 or arr.size % width)):
            out.append(None)
        else:
            arr = arr.astype(np.float32)
            out.append(arr.reshape(-1, width) if width > 1 else arr)
    return out


def parse_elements(values: pd.Series) -> list[list[str]]:
    """Parse ``"['C','H','H']"`` cells into lists of element symbols."""
    cleaned = values.fillna("").astype(str).str.replace(r"[\[\]'\" ]", "", regex=True)
    return [cell.split(",") if cell else [] for cell in cleaned]


def _as_xyz(positions: Any) -> np.ndarray:
    arr = np.asarray(positions)
    if arr.dtype == object:
        arr = np.stack([np.asarray(p, dtype=np.float64) for p in arr])
    return arr.astype(np.float64).reshape(-1, 3)


@register_source("qm9", "qm9pack")
class QM9Source(WheelSource):
    """QM9 molecules with DFT coordinates and the 12 standard targets plus A, B, C.

    Columns: ``smiles``; targets (see module docstring for units); ``qm9_index`` (int64, the
    original QM9 index), ``xyz_file``, ``inchi``, ``n_atoms``; ``elements`` (list of symbols,
    all atoms including H); ``positions`` (float32 ``[n_atoms, 3]``, Angstrom, all atoms);
    ``mulliken_charges`` (float32 ``[n_atoms]``); ``frequencies`` (float32 harmonic
    frequencies, cm^-1); ``alpha_xx`` .. ``alpha_zz`` (static polarizability tensor, bohr^3,
    NaN when no polarizability file is given).

    File keys for ``files=``: ``"parts"`` (one or more CSV parts) and ``"polarizability"``.
    """

    PACKAGE: ClassVar[str] = "qm9pack"
    FORMAT_VERSION: ClassVar[int] = 1
    HAS_COORDINATES: ClassVar[bool] = True
    MEMBERS: ClassVar[dict[str, tuple[str, ...]]] = {
        "parts": tuple(f"qm9pack/data/qm9_part{i}.csv" for i in (1, 2, 3)),
        "polarizability": ("qm9pack/data/qm9_polarizability.csv",),
    }
    info = SourceInfo(
        name="qm9",
        description=(
            "QM9: 130,831 molecules with up to 9 heavy atoms (C, N, O, F) with B3LYP/6-31G(2df,p) "
            "geometries, energies, orbital energies, dipoles, polarizabilities and heat "
            "capacities. The 3,054 of 133,885 molecules that failed the QM9 consistency check "
            "are absent from qm9pack."
        ),
        provenance=(
            "PyPI wheel qm9pack==1.0.3 (qm9pack-1.0.3-py3-none-any.whl, sha256 pinned in "
            "molfm.data.fetch), members qm9pack/data/qm9_part1.csv, qm9_part2.csv, qm9_part3.csv "
            "and qm9pack/data/qm9_polarizability.csv; upstream QM9 "
            "https://doi.org/10.6084/m9.figshare.c.978904.v5, package "
            "https://github.com/raghurama123/qm9pack"
        ),
        license=(
            "MIT (qm9pack wheel LICENSE and METADATA, Copyright 2024 Raghu); the QM9 data "
            "themselves are published openly with Scientific Data on figshare."
        ),
        citation=(
            "Ramakrishnan, Dral, Rupp, von Lilienfeld, Quantum chemistry structures and "
            "properties of 134 kilo molecules, Scientific Data 1:140022 (2014), "
            "doi:10.1038/sdata.2014.22"
        ),
        subsets=("all",),
        default_subset="all",
        targets=tuple(QM9_TARGETS),
        units=_UNITS,
        task="multitask-regression",
    )

    def file_keys(self, subset: str) -> tuple[str, ...]:
        if self._files is not None and "polarizability" not in self._files:
            return ("parts",)
        return ("parts", "polarizability")

    def _load(self, subset: str) -> pd.DataFrame:
        keys = self.file_keys(subset)
        with self.open_files("parts") as streams:
            raw = pd.concat(
                [pd.read_csv(s, keep_default_na=False, na_values=[""]) for s in streams],
                ignore_index=True,
            )
        missing = [c for c, _, _ in QM9_TARGETS.values() if c not in raw.columns]
        if missing:
            raise SourceError(f"qm9: raw file lacks columns {missing}")
        frame = pd.DataFrame(
            {
                "smiles": raw["SMILES"].fillna("").astype(str),
                "qm9_index": raw["Index"].astype(np.int64),
                "xyz_file": raw["XYZ_file"],
                "inchi": raw["InChi"],
                "n_atoms": raw["N_atoms"].astype(np.int64),
            }
        )
        for name, (column, _, factor) in QM9_TARGETS.items():
            frame[name] = to_float(raw[column], column) * factor
        frame["elements"] = parse_elements(raw["Elements"])
        frame["positions"] = parse_float_lists(raw["XYZ_Ang"], width=3)
        frame["mulliken_charges"] = parse_float_lists(raw["Mulliken_pop"])
        frame["frequencies"] = parse_float_lists(raw["Harmonic_Freq_cmi"])
        if "polarizability" in keys:
            with self.open_files("polarizability") as (stream,):
                tensor = pd.read_csv(stream)
            tensor = tensor.drop_duplicates("XYZ_file").set_index("XYZ_file")
            aligned = tensor.reindex(raw["XYZ_file"])
            for column in _TENSOR:
                frame[f"alpha_{column[2:]}"] = aligned[column].to_numpy(np.float64)
        else:
            for column in _TENSOR:
                frame[f"alpha_{column[2:]}"] = np.nan
        return frame

    def build_mol(
        self, record: Mapping[str, Any], *, row: int, standardize: Any = None
    ) -> tuple[Chem.Mol, np.ndarray | None]:
        """Heavy-atom molecule from the DFT coordinates, checked against the SMILES.

        ``standardize`` is not applied: standardization may remove or reorder atoms, which would
        detach the molecule from its DFT coordinates and targets (QM9 holds single, overall
        neutral molecules, so there is nothing to strip).

        Returns
        -------
        tuple
            The molecule and its heavy-atom positions (float32 ``[n_heavy, 3]``, Angstrom) taken
            from the molecule's conformer.

        Raises
        ------
        molfm.chem.parse.InvalidMoleculeError
            If the coordinates are missing/malformed or their connectivity disagrees with the
            SMILES.
        """
        from molfm.chem.parse import InvalidMoleculeError

        smiles = record["smiles"]
        elements, positions = record.get("elements"), record.get("positions")
        if elements is None or positions is None:
            raise InvalidMoleculeError(smiles, "missing or malformed xyz coordinates", row=row)
        xyz = _as_xyz(positions)
        if len(elements) != len(xyz):
            reason = f"{len(elements)} elements but {len(xyz)} coordinate rows"
            raise InvalidMoleculeError(smiles, reason, row=row)
        from molfm.chem.io import mol_from_xyz

        mol = mol_from_xyz(list(elements), xyz, smiles, row=row)
        heavy = mol.GetConformer().GetPositions().astype(np.float32)
        return mol, heavy
