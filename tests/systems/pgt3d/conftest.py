"""A 3D data set for 3D-PGT tests: the committed QM9 slice as an SDF with DFT coordinates and U0."""

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem

from molfm.chem.io import mol_from_xyz
from molfm.data.sources.qm9 import HARTREE_TO_EV

DATA = Path(__file__).parents[2] / "data"
TINY_GPS = {"num_layers": 1, "dim": 32, "num_heads": 2, "rwse_dim": 8}


@pytest.fixture
def qm9_sdf(tmp_path, monkeypatch) -> Path:
    """100 QM9 molecules (heavy atoms, DFT geometry) with ``u0`` in eV, as a user SDF."""
    monkeypatch.setenv("MOLFM_CACHE", str(tmp_path / "cache"))
    frame = pd.read_csv(DATA / "qm9_100.csv")
    path = tmp_path / "qm9.sdf"
    with Chem.SDWriter(str(path)) as writer:
        for _, row in frame.iterrows():
            mol = mol_from_xyz(
                ast.literal_eval(row["Elements"]),
                np.array(ast.literal_eval(row["XYZ_Ang"])),
                row["SMILES"],
            )
            mol = Chem.RemoveHs(mol)
            mol.SetProp("u0", f"{row['InternalEnergy_0K_au'] * HARTREE_TO_EV:.6f}")
            writer.write(mol)
    return path
