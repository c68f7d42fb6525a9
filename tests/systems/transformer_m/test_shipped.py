"""The shipped transformer-m-small-qm9: loads by name, predictions stay the same, QM9 domain."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from molfm.chem.featurize import mol_to_data
from molfm.chem.io import mol_from_xyz
from molfm.data.dense import DenseGraphDataset, collate_dense
from molfm.data.sources.qm9 import parse_elements, parse_float_lists
from molfm.hub import load_config, resolve_checkpoint
from molfm.tasks.predict import load_property_model, predict_file

DATA = Path(__file__).parents[2] / "data"
HARTREE_EV = 27.211386
# predictions of the shipped fp16 checkpoint for the first four QM9 fixture molecules (eV)
EXPECTED_2D = [
    [-6.2412, 0.4663, 6.6933],
    [-7.0966, 2.0546, 9.1585],
    [-7.4126, -1.0518, 6.3569],
    [-6.9799, 1.7787, 8.7648],
]
EXPECTED_3D = [
    [-6.2093, 0.4803, 6.6832],
    [-7.1342, 2.0418, 9.1753],
    [-7.3762, -0.9738, 6.4010],
    [-6.9599, 1.7399, 8.7059],
]


def _graphs(with_pos: bool):
    frame = pd.read_csv(DATA / "qm9_100.csv").iloc[:4]
    graphs = []
    for elements, xyz, smiles in zip(
        parse_elements(frame["Elements"]), parse_float_lists(frame["XYZ_Ang"], 3), frame["SMILES"]
    ):
        mol = mol_from_xyz(elements, xyz, smiles)
        pos = mol.GetConformer().GetPositions().astype(np.float32) if with_pos else None
        graphs.append(mol_to_data(mol, pos=pos))
    return graphs, frame


@pytest.mark.parametrize(("with_pos", "expected"), [(False, EXPECTED_2D), (True, EXPECTED_3D)])
def test_predictions_stay_the_same(with_pos, expected):
    model = load_property_model("transformer-m-small-qm9")
    assert model.config.targets == ["homo", "lumo", "gap"]
    graphs, frame = _graphs(with_pos)
    dataset = DenseGraphDataset(graphs, pair_structure=type(model.encoder).pair_structure)
    pred = model.predict(collate_dense([dataset[i] for i in range(4)])).numpy()
    np.testing.assert_allclose(pred, expected, atol=2e-3)
    # and they are chemistry, not noise: within 0.15 eV of the DFT values for these molecules
    dft = frame[["HOMO_au", "LUMO_au", "HOMO_LUMO_gap_au"]].to_numpy() * HARTREE_EV
    assert np.abs(pred - dft).max() < 0.15


def test_shipped_checkpoint_is_small_and_knows_its_domain(tmp_path):
    path = resolve_checkpoint("transformer-m-small-qm9")
    assert (path / "model.safetensors").stat().st_size < 20 * 2**20
    config = load_config(path)["model_config"]
    assert config["domain"]["max_atoms"] == 9 and config["units"]["gap"] == "eV"
    csv = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": ["CC(=O)Oc1ccccc1C(=O)O", "CCO"]}).to_csv(csv, index=False)
    frame = predict_file(load_property_model("transformer-m-small-qm9"), csv).predictions
    assert frame["out_of_domain"].tolist() == [True, False]  # aspirin: 13 heavy atoms > 9
