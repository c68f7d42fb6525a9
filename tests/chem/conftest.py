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


@pytest.fixture(scope="session")
def qm9_rows() -> list[tuple[str, list[str], np.ndarray]]:
    """(SMILES, elements, positions [N, 3] in Angstrom) for the 100 QM9 fixture rows."""
    rows = []
    with open(DATA / "qm9_100.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            elements = ast.literal_eval(row["Elements"])
            positions = np.array(ast.literal_eval(row["XYZ_Ang"]), dtype=np.float64)
            rows.append((row["SMILES"], elements, positions))
    return rows
