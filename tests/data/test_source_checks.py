"""Sources refuse, before any work, data without the coordinates or targets a command needs:
one line that names the data set or file and says what to give instead."""

from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from molfm.data.sources import CSVSource, QM9Source, SDFSource, SourceError, get_source
from molfm.data.sources.base import data_sets_with

DATA = Path(__file__).parent
QM9_FILES = {"parts": [DATA / "qm9_100.csv"], "polarizability": DATA / "qm9_polarizability_100.csv"}
NEEDS, HINT = "--mode 3d", "use --mode 2d"


def _sdf(path: Path, kinds: list[str]) -> Path:
    """One record per kind: ``3d`` (embedded), ``2d`` (a drawing, marked 2D) or ``zero`` (marked
    3D, every coordinate 0)."""
    with Chem.SDWriter(str(path)) as writer:
        for kind in kinds:
            mol = Chem.MolFromSmiles("CC(=O)N")
            if kind == "3d":
                mol = Chem.AddHs(mol)
                AllChem.EmbedMolecule(mol, randomSeed=0)
            elif kind == "2d":
                AllChem.Compute2DCoords(mol)
            else:
                mol.AddConformer(Chem.Conformer(mol.GetNumAtoms()))
            mol.SetProp("y", "1.0")
            writer.write(mol)
    return path


def test_only_qm9_and_3d_files_have_coordinates(tmp_path):
    assert data_sets_with("coordinates") == ["qm9"]
    QM9Source(files=QM9_FILES).check_coordinates(None, NEEDS, HINT)
    SDFSource(_sdf(tmp_path / "ok.sdf", ["3d", "3d"])).check_coordinates(None, NEEDS, HINT)
    with pytest.raises(SourceError) as err:
        get_source("moses").check_coordinates(None, NEEDS, HINT)
    assert str(err.value) == (
        "data set 'moses' has no coordinates (SMILES only); --mode 3d needs 3D coordinates: "
        "use --mode 2d"
    )
    csv = tmp_path / "mols.csv"
    csv.write_text("smiles\nCCO\n")
    with pytest.raises(SourceError, match=f"^{csv} holds SMILES without coordinates; --mode 3d"):
        CSVSource(csv).check_coordinates(None, NEEDS, HINT)


def test_flat_sd_records_are_named(tmp_path):
    path = _sdf(tmp_path / "mixed.sdf", ["3d", "2d", "zero", "3d"])
    with pytest.raises(SourceError) as err:
        SDFSource(path).check_coordinates(None, NEEDS, HINT)
    assert str(err.value) == (
        f"{path}: 2 of 4 SD records have 2D coordinates (not marked 3D, or every z = 0), the "
        "first is record 1; --mode 3d needs 3D coordinates: use --mode 2d"
    )
    # build_mol agrees record by record: flat records come without positions
    source = SDFSource(path)
    frame = source.load()
    has_pos = [source.build_mol(frame.iloc[i], row=i)[1] is not None for i in range(4)]
    assert has_pos == [True, False, False, True]


def test_unreadable_records_are_left_to_build_mol(tmp_path):
    path = _sdf(tmp_path / "ok.sdf", ["3d"])
    with open(path, "a") as fh:
        fh.write("garbage\n  no counts line here\n\n  x  y\nM  END\n$$$$\n")
    SDFSource(path).check_coordinates(None, NEEDS, HINT)


def test_missing_targets_say_which_flag_and_columns(tmp_path):
    csv = tmp_path / "mols.csv"
    csv.write_text("smiles,logS,name\nCCO,1.0,ethanol\n")
    with pytest.raises(SourceError) as err:
        CSVSource(csv).check_targets(None)
    assert str(err.value) == (
        f"{csv}: no target columns given; name them with --target-columns (the file's "
        "columns: smiles, logS, name)"
    )
    CSVSource(csv, target_columns=["logS"]).check_targets(None)
    sdf = _sdf(tmp_path / "mols.sdf", ["3d"])
    with pytest.raises(
        SourceError, match=r"name them with --target-columns \(the file's columns: y\)"
    ):
        SDFSource(sdf).check_targets(None)
    SDFSource(sdf, target_columns=["y"]).check_targets(None)
    QM9Source(files=QM9_FILES).check_targets(None)
    assert {"qm9", "b3db"} <= set(data_sets_with("targets"))
    assert "moses" not in data_sets_with("targets")
    with pytest.raises(SourceError, match="data set 'moses' has no target columns; use one .*qm9"):
        get_source("moses").check_targets(None)


def test_sdf_positions_are_float32_heavy_atoms(tmp_path):
    source = SDFSource(_sdf(tmp_path / "ok.sdf", ["3d"]))
    mol, pos = source.build_mol(source.load().iloc[0], row=0)
    assert pos.dtype == np.float32 and pos.shape == (mol.GetNumAtoms(), 3) == (4, 3)
