from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ogb.utils.features import get_atom_feature_dims, get_bond_feature_dims
from ogb.utils.mol import smiles2graph
from rdkit import Chem
from torch_geometric.utils.smiles import from_rdmol

from molfm.chem.featurize import (
    OGB_SCHEMA,
    FeatureSchema,
    FeatureSpec,
    GraphArrays,
    featurize,
    get_schema,
    mol_to_data,
    register_schema,
    smiles_to_data,
    to_pyg,
)
from molfm.chem.parse import InvalidMoleculeError, StandardizeOptions, parse_smiles

# Molecules that exercise the misc buckets and the slow paths (dative bond -> enum bond types).
EXOTIC = [
    "*C",  # dummy atom: atomic number 0
    "[Fe+6]",  # formal charge outside -5..5
    "[Na+]",  # no bonds, S hybridization
    "[NH3]->[Fe]",  # dative bond
    "F[S](F)(F)(F)(F)F",  # SP3D2
    "[CH2]C",  # radical
    "C[C@H](F)Cl",
    "F/C=C/F",
    "F/C=C\\F",
    "[U](F)(F)(F)(F)(F)(F)(F)(F)(F)(F)(F)F",  # degree 12
    "C=[N+]=[N-]",
    "[2H]C([2H])([2H])O",
    "CC(=O)[O-].[Na+]",
    "C1CC2CCC1C2",
    "c1ccc2[nH]ccc2c1",
    "[H]C([H])([H])[H]",
    "C#N",
]


def assert_same_as_ogb(smiles: str) -> None:
    ref = smiles2graph(smiles)
    graph = featurize(Chem.MolFromSmiles(smiles))
    np.testing.assert_array_equal(graph.x, ref["node_feat"], err_msg=smiles)
    np.testing.assert_array_equal(graph.edge_index, ref["edge_index"], err_msg=smiles)
    np.testing.assert_array_equal(graph.edge_attr, ref["edge_feat"], err_msg=smiles)
    assert graph.num_nodes == ref["num_nodes"]


def test_identical_to_ogb_on_moses(moses_smiles: list[str]) -> None:
    assert len(moses_smiles) == 500
    for smiles in moses_smiles:
        assert_same_as_ogb(smiles)


def test_identical_to_ogb_on_b3db(b3db_smiles: list[str]) -> None:
    stereo = charged = 0
    for smiles in b3db_smiles:
        assert_same_as_ogb(smiles)
        stereo += "@" in smiles or "/" in smiles
        charged += "+" in smiles or "-]" in smiles
    assert stereo > 10 and charged > 0  # the slice does cover stereo and charges


@pytest.mark.parametrize("smiles", EXOTIC)
def test_identical_to_ogb_on_exotic(smiles: str) -> None:
    assert_same_as_ogb(smiles)


def test_identical_to_ogb_on_pubchem(pubchem_smiles: list[str]) -> None:
    checked = 0
    for smiles in pubchem_smiles:
        if Chem.MolFromSmiles(smiles) is None:
            continue
        assert_same_as_ogb(smiles)
        checked += 1
    assert checked >= 140


def test_misc_buckets() -> None:
    def x(smiles: str) -> np.ndarray:
        return featurize(parse_smiles(smiles)).x

    assert x("*C")[0, 0] == 118  # atomic number 0 is outside OGB's 1..118
    assert x("[Og]")[0, 0] == 117  # the heaviest element OGB knows
    assert x("[Fe+6]")[0, 3] == 11
    assert x("[Na+]")[0, 6] == 5  # S hybridization is not in OGB's list
    assert x("[U](F)(F)(F)(F)(F)(F)(F)(F)(F)(F)(F)F")[0, 2] == 11  # degree 12
    dative = featurize(parse_smiles("[NH3]->[Fe]"))
    assert dative.edge_attr.tolist() == [[4, 0, 0], [4, 0, 0]]


def test_stereo_outside_ogb_list_goes_to_last_index() -> None:
    # OGB's bond-stereo list has no "misc" entry and its own code raises on atropisomer labels;
    # molfm applies OGB's safe_index rule instead (last index).
    mol = Chem.RWMol(parse_smiles("c1ccccc1-c1ccccc1"))
    biaryl = next(b for b in mol.GetBonds() if not b.GetIsAromatic())
    begin, end = biaryl.GetBeginAtom(), biaryl.GetEndAtom()
    a = next(n.GetIdx() for n in begin.GetNeighbors() if n.GetIdx() != end.GetIdx())
    b = next(n.GetIdx() for n in end.GetNeighbors() if n.GetIdx() != begin.GetIdx())
    biaryl.SetStereoAtoms(a, b)
    biaryl.SetStereo(Chem.BondStereo.STEREOATROPCW)
    graph = featurize(mol)
    assert graph.edge_attr[2 * biaryl.GetIdx(), 1] == 5
    assert (
        np.delete(graph.edge_attr[:, 1], [2 * biaryl.GetIdx(), 2 * biaryl.GetIdx() + 1]) == 0
    ).all()


def test_bonds_are_both_directions_in_bond_order() -> None:
    mol = parse_smiles("CC=O")
    graph = featurize(mol)
    assert graph.edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
    assert graph.edge_attr.tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0]]
    single = featurize(parse_smiles("[Na+]"))
    assert single.edge_index.shape == (2, 0) and single.edge_attr.shape == (0, 3)
    assert single.num_nodes == 1 and single.num_edges == 0


def test_empty_molecule_rejected() -> None:
    with pytest.raises(InvalidMoleculeError, match="no atoms"):
        featurize(Chem.Mol())


def test_explicit_hydrogens_become_nodes() -> None:
    mol = Chem.AddHs(parse_smiles("C"))
    graph = featurize(mol)
    assert graph.num_nodes == 5 and graph.num_edges == 8
    assert graph.x[0, 2] == 4 and graph.x[0, 4] == 0  # degree 4 via H atoms, no implicit H
    assert (graph.x[1:, 0] == 0).all()  # hydrogen = atomic number 1 -> index 0


def test_schema_matches_ogb_dims() -> None:
    assert OGB_SCHEMA.atom_dims == get_atom_feature_dims()
    assert OGB_SCHEMA.bond_dims == get_bond_feature_dims()
    assert get_schema("ogb") is OGB_SCHEMA and get_schema("ogb@1") is OGB_SCHEMA
    with pytest.raises(KeyError, match="unknown feature schema"):
        get_schema("nope")


def test_schema_round_trip_and_fingerprint() -> None:
    d = OGB_SCHEMA.to_dict()
    back = FeatureSchema.from_dict(json.loads(json.dumps(d)))
    assert back == OGB_SCHEMA
    assert back.fingerprint() == OGB_SCHEMA.fingerprint()
    # Pinned: a change here means cached features and checkpoints no longer match.
    assert OGB_SCHEMA.fingerprint() == PINNED_OGB_FINGERPRINT
    changed = FeatureSchema.from_dict({**d, "version": 2})
    assert changed.fingerprint() != OGB_SCHEMA.fingerprint()
    graph_a = featurize(parse_smiles("CC[C@H](N)C(=O)O"), back)
    graph_b = featurize(parse_smiles("CC[C@H](N)C(=O)O"))
    np.testing.assert_array_equal(graph_a.x, graph_b.x)


PINNED_OGB_FINGERPRINT = "68c0748abdc0500d"


def test_custom_schema_subset_and_order() -> None:
    specs = {s.name: s for s in OGB_SCHEMA.atom_features}
    hyb = FeatureSpec("hybridization", ("SP3", "SP2", "misc"))
    schema = FeatureSchema(
        name="tiny",
        version=1,
        atom_features=(specs["is_aromatic"], specs["atomic_num"], hyb),
        bond_features=(OGB_SCHEMA.bond_features[2],),
    )
    register_schema(schema, "tiny-alias")
    assert get_schema("tiny@1") is schema and get_schema("tiny-alias") is schema
    mol = parse_smiles("c1ccccc1CC#N")
    full = featurize(mol)
    tiny = featurize(mol, schema)
    np.testing.assert_array_equal(tiny.x[:, 0], full.x[:, 7])
    np.testing.assert_array_equal(tiny.x[:, 1], full.x[:, 0])
    names = [str(a.GetHybridization()) for a in mol.GetAtoms()]
    expected = [{"SP3": 0, "SP2": 1}.get(name, 2) for name in names]
    assert tiny.x[:, 2].tolist() == expected and 2 in expected  # nitrile C/N are SP -> misc
    np.testing.assert_array_equal(tiny.edge_attr[:, 0], full.edge_attr[:, 2])
    assert schema.atom_dims == [2, 119, 3]


def test_unknown_feature_rejected() -> None:
    schema = FeatureSchema("bad", 1, (FeatureSpec("electronegativity", (1, 2)),), ())
    with pytest.raises(ValueError, match="no extractor"):
        register_schema(schema)


def test_relationship_to_pyg_from_smiles(moses_smiles: list[str]) -> None:
    """PyG's x_map differs from OGB's by fixed offsets, and PyG sorts its edges."""
    pyg_stereo = {0: 0, 1: 2, 2: 3, 3: 4, 4: 5, 5: 1}  # OGB index -> PyG index
    pyg_bond = {0: 1, 1: 2, 2: 3, 3: 12}
    for smiles in moses_smiles[:200]:
        mol = Chem.MolFromSmiles(smiles)
        ours = featurize(mol)
        ref = from_rdmol(mol)
        expected = ours.x.copy()
        expected[:, 0] += 1  # atomic number
        expected[:, 6] += 2  # hybridization SP..SP3D2 (drug-like: never misc here)
        np.testing.assert_array_equal(ref.x.numpy(), expected)
        n = ours.num_nodes
        order = np.argsort(ours.edge_index[0] * n + ours.edge_index[1], kind="stable")
        np.testing.assert_array_equal(ref.edge_index.numpy(), ours.edge_index[:, order])
        attr = ours.edge_attr[order]
        mapped = np.stack(
            [
                [pyg_bond[v] for v in attr[:, 0]],
                [pyg_stereo[v] for v in attr[:, 1]],
                attr[:, 2],
            ],
            axis=1,
        ).reshape(-1, 3)
        np.testing.assert_array_equal(ref.edge_attr.numpy(), mapped)


def test_to_pyg_and_helpers() -> None:
    mol = parse_smiles("CCO")
    pos = np.arange(9, dtype=np.float64).reshape(3, 3)
    data = mol_to_data(mol, pos=pos, smiles="CCO")
    assert data.x.dtype == torch.long and data.edge_index.dtype == torch.long
    assert data.edge_attr.dtype == torch.long and data.pos.dtype == torch.float32
    assert data.pos.shape == (3, 3) and data.smiles == "CCO" and data.num_nodes == 3
    extra = to_pyg(featurize(mol), y=torch.tensor([1.5]))
    assert float(extra.y) == 1.5 and extra.pos is None
    with pytest.raises(ValueError, match="pos has shape"):
        to_pyg(featurize(mol), pos=np.zeros((2, 3)))


def test_smiles_to_data() -> None:
    data = smiles_to_data(" CC(=O)[O-].[Na+] ")
    assert data.smiles == "CC(=O)[O-].[Na+]" and data.num_nodes == 5
    opts = StandardizeOptions(largest_fragment=True, neutralize=True)
    clean = smiles_to_data("CC(=O)[O-].[Na+]", standardize=opts)
    assert clean.smiles == "CC(=O)O" and clean.num_nodes == 4
    with pytest.raises(InvalidMoleculeError) as info:
        smiles_to_data("C1CC", row=4)
    assert str(info.value) == "row 4: 'C1CC' : unclosed ring"


def test_canonical_standardization_gives_order_free_features() -> None:
    opts = StandardizeOptions()
    a = featurize(parse_smiles("OC(=O)c1ccccc1N", standardize=opts))
    b = featurize(parse_smiles("Nc1ccccc1C(O)=O", standardize=opts))
    for left, right in zip(
        (a.x, a.edge_index, a.edge_attr), (b.x, b.edge_index, b.edge_attr), strict=True
    ):
        np.testing.assert_array_equal(left, right)


def test_graph_arrays_dtypes() -> None:
    graph = featurize(parse_smiles("c1ccncc1"))
    assert isinstance(graph, GraphArrays)
    for arr in (graph.x, graph.edge_index, graph.edge_attr):
        assert arr.dtype == np.int64 and arr.flags.c_contiguous


def test_schema_module_is_reexported() -> None:
    import importlib

    import molfm.chem as chem
    from molfm.chem import schema

    # molfm.chem.featurize the attribute is the function; the module is in sys.modules.
    featurize_module = importlib.import_module("molfm.chem.featurize")

    for name in ("OGB_SCHEMA", "FeatureSchema", "FeatureSpec", "get_schema", "register_schema"):
        assert getattr(featurize_module, name) is getattr(schema, name)
        assert getattr(chem, name) is getattr(schema, name)
