"""molfm predict's library side: input order, bad rows, 3D inputs, out-of-domain flags."""

import numpy as np
import pandas as pd
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from molfm.chem.parse import InvalidMoleculeError
from molfm.hub import save_pretrained
from molfm.tasks.predict import load_property_model, predict_file
from molfm.tasks.property import PropertyModel, PropertyModelConfig

TINY_TM = {"num_layers": 1, "dim": 32, "num_heads": 4, "ffn_dim": 64, "num_kernels": 8}


@pytest.fixture
def model_dir(tmp_path):
    torch.manual_seed(0)
    carbon, nitrogen, oxygen = 5, 6, 7  # OGB atomic-number feature ids (atomic number - 1)
    config = PropertyModelConfig(
        "transformer-m",
        TINY_TM,
        targets=["gap"],
        head_hidden=16,
        mean=[6.8],
        std=[1.3],
        units={"gap": "eV"},
        domain={"atomic_number_ids": [carbon, nitrogen, oxygen], "max_atoms": 9, "n_train": 1},
    )
    return save_pretrained(PropertyModel(config), tmp_path / "model")


def test_rows_keep_input_order_and_bad_rows_follow_the_policy(model_dir, tmp_path):
    path = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": ["CCO", "C1CC", "c1ccccc1", "CCS", "CCCCCCCCCCCC"]}).to_csv(
        path, index=False
    )
    model = load_property_model(model_dir)
    with pytest.raises(InvalidMoleculeError, match="row 1"):
        predict_file(model, path)
    result = predict_file(model, path, on_invalid="skip")
    frame = result.predictions
    assert frame["row"].tolist() == [0, 2, 3, 4] and frame["smiles"].tolist()[0] == "CCO"
    assert (
        result.rejected["row"].tolist() == [1] and "unclosed ring" in result.rejected["reason"][0]
    )
    # sulfur was never seen in training, nor 12 heavy atoms: predicted, but flagged
    assert frame["out_of_domain"].tolist() == [False, False, True, True]
    assert (
        "never seen" in frame["domain_reason"][2]
        and "12 heavy atoms > 9" in frame["domain_reason"][3]
    )
    assert np.isfinite(frame["gap"]).all() and not frame["used_3d"].any()


def test_sdf_coordinates_and_generated_conformers_use_the_3d_channel(model_dir, tmp_path):
    model = load_property_model(model_dir)
    sdf = tmp_path / "mols.sdf"
    writer = Chem.SDWriter(str(sdf))
    for smiles in ("CCO", "CC(=O)N"):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(mol, randomSeed=1)
        writer.write(mol)
    flat = Chem.MolFromSmiles("CCN")
    flat.AddConformer(Chem.Conformer(flat.GetNumAtoms()))  # all-zero coordinates
    writer.write(flat)
    writer.close()
    frame = predict_file(model, sdf).predictions
    assert frame["used_3d"].tolist() == [True, True, False]
    csv = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": ["CCO", "CC(=O)N"]}).to_csv(csv, index=False)
    flat_pred = predict_file(model, csv).predictions
    with_3d = predict_file(model, csv, conformers=True).predictions
    assert with_3d["used_3d"].all() and not flat_pred["used_3d"].any()
    assert not np.allclose(with_3d["gap"], flat_pred["gap"])  # the 3D channel changes the output
    two_d = predict_file(model, csv, conformers=True, mode="2d").predictions
    np.testing.assert_allclose(two_d["gap"], flat_pred["gap"], rtol=1e-5)


def test_missing_and_empty_files_are_clear_errors(model_dir, tmp_path):
    model = load_property_model(model_dir)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        predict_file(model, tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.csv is empty"):
        predict_file(model, empty)
    other = tmp_path / "other.csv"
    other.write_text("name\nx\n")
    with pytest.raises(ValueError, match="no column 'smiles'"):
        predict_file(model, other)


def test_3d_mode_on_molecules_without_coordinates_is_a_clear_error(model_dir, tmp_path):
    model = load_property_model(model_dir)
    sdf = tmp_path / "flat.sdf"
    writer = Chem.SDWriter(str(sdf))
    flat = Chem.MolFromSmiles("CCO")
    flat.AddConformer(Chem.Conformer(flat.GetNumAtoms()))  # an SDF written without coordinates
    writer.write(flat)
    writer.close()
    with pytest.raises(ValueError, match="flat.sdf: 1 of 1 SD records have 2D coordinates"):
        predict_file(model, sdf, mode="3d")
