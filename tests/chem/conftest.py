"""Fixture data for the chemistry tests: small slices of the real data sets in tests/data."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parents[1] / "data"


@pytest.fixture(scope="session")
def moses_smiles() -> list[str]:
    with open(DATA / "moses_train_500.csv", newline="") as handle:
        return [row["SMILES"] for row in csv.DictReader(handle)]


@pytest.fixture(scope="session")
def b3db_smiles() -> list[str]:
    with open(DATA / "b3db_classification_150.tsv", newline="") as handle:
        return [row["SMILES"] for row in csv.DictReader(handle, delimiter="\t")]


@pytest.fixture(scope="session")
def pubchem_smiles() -> list[str]:
    with open(DATA / "pubchem_names_150.tsv", newline="") as handle:
        return [row[4] for row in csv.reader(handle, delimiter="\t") if len(row) > 4]


def read_qm9_rows(name: str) -> list[tuple[str, list[str], np.ndarray]]:
    rows = []
    with open(DATA / name, newline="") as handle:
        for row in csv.DictReader(handle):
            elements = ast.literal_eval(row["Elements"])
            positions = np.array(ast.literal_eval(row["XYZ_Ang"]), dtype=np.float64)
            rows.append((row["SMILES"], elements, positions))
    return rows


@pytest.fixture(scope="session")
def qm9_rows() -> list[tuple[str, list[str], np.ndarray]]:
    """(SMILES, elements, positions [N, 3] in Angstrom) for the 100 QM9 fixture rows."""
    return read_qm9_rows("qm9_100.csv")


@pytest.fixture(scope="session")
def qm9_hard_rows() -> dict[str, tuple[str, list[str], np.ndarray]]:
    """Raw qm9pack rows of strained cages (bicyclo[1.1.1]pentanes, ...) keyed by SMILES.

    Seven whose short non-bonded contacts once broke distance-based connectivity, and two
    (gdb 133857 and 133859) whose relaxed geometry has a different skeleton than the SMILES.
    """
    return {row[0]: row for row in read_qm9_rows("qm9_hard_rows.csv")}
