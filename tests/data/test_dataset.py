"""Atom-permutation invariance of featurize and of a prepared dataset's GraphStore.

Renumbering a molecule's atoms (RDKit ``RenumberAtoms`` under a random permutation) must
permute node features and positions the same way and map the edge set, with its edge
features, onto itself: a graph model then sees the same molecule whatever the atom order.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem

from molfm.chem.conformers import ConformerOptions, generate_conformer
from molfm.chem.featurize import OGB_SCHEMA, featurize
from molfm.chem.io import canonical_atom_order
from molfm.chem.parse import StandardizeOptions, parse_smiles
from molfm.data.dataset import GraphStore, MolDataModule
from molfm.data.prepare import prepare_dataset
from molfm.data.sources import CSVSource, QM9Source, SDFSource

DATA = Path(__file__).parent
QM9_FILES = {"parts": [DATA / "qm9_100.csv"], "polarizability": DATA / "qm9_polarizability_100.csv"}


def _renumber(mol: Chem.Mol, rng: np.random.Generator) -> tuple[Chem.Mol, np.ndarray]:
    """``(renumbered, order)``: atom ``i`` of ``renumbered`` is atom ``order[i]`` of ``mol``."""
    order = rng.permutation(mol.GetNumAtoms())
    if mol.GetNumAtoms() > 1 and np.array_equal(order, np.arange(len(order))):
        order = np.roll(order, 1)  # never the identity: the test must move atoms
    return Chem.RenumberAtoms(mol, order.tolist()), order


def _edges(edge_index: np.ndarray, edge_attr: np.ndarray, relabel: np.ndarray | None = None):
    """The directed edges with their features, as a sorted list (a multiset)."""
    ends = np.asarray(edge_index).T
    if relabel is not None:
        ends = relabel[ends]
    return sorted((int(u), int(v), *map(int, a)) for (u, v), a in zip(ends, np.asarray(edge_attr)))


CHIRALITY = [spec.name for spec in OGB_SCHEMA.atom_features].index("chirality")


def _chiral_flag(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[:, CHIRALITY] = x[:, CHIRALITY] != 0
    return x


def assert_permuted(
    original, renumbered, order: np.ndarray, *, tag_as_flag=False, positions=True
) -> None:
    """``renumbered`` is ``original`` with atom ``i`` taken from ``order[i]``: x and pos
    permuted, the edge set (with features) the same after mapping the old indices.

    ``tag_as_flag``: compare only whether an atom has a chiral tag, not CW vs CCW (see
    :func:`test_chiral_tag_depends_on_the_written_atom_order`)."""
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    x, x_new = np.asarray(original.x), np.asarray(renumbered.x)
    if tag_as_flag:
        x, x_new = _chiral_flag(x), _chiral_flag(x_new)
    np.testing.assert_array_equal(x_new, x[order])
    old_edges = _edges(original.edge_index, original.edge_attr, relabel=inverse)
    new_edges = _edges(renumbered.edge_index, renumbered.edge_attr)
    assert new_edges == old_edges
    assert len(set(new_edges)) == len(new_edges)  # no edge doubled
    pos = getattr(original, "pos", None)
    if pos is not None and positions:
        np.testing.assert_array_equal(np.asarray(renumbered.pos), np.asarray(pos)[order])


def _moses(n: int) -> list[Chem.Mol]:
    return [Chem.MolFromSmiles(s) for s in pd.read_csv(DATA / "moses_train_500.csv")["SMILES"][:n]]


def _stereo(n: int) -> list[Chem.Mol]:
    """B3DB drugs with chiral centres (chiral tags are relative to neighbour order, so they
    are what a renumbering could corrupt)."""
    frame = pd.read_csv(DATA / "b3db_classification_150.tsv", sep="\t")
    mols = [Chem.MolFromSmiles(s) for s in frame["SMILES"]]
    return [m for m in mols if m is not None and Chem.FindMolChiralCenters(m)][:n]


@pytest.fixture(scope="module")
def qm9():
    """``[(mol, pos)]``: 40 QM9 molecules built from their DFT coordinates."""
    source = QM9Source(files=QM9_FILES)
    frame = source.load()
    return [source.build_mol(frame.iloc[i], row=i) for i in range(40)]


class _Graph:
    def __init__(self, mol: Chem.Mol, pos: np.ndarray | None = None):
        graph = featurize(mol)
        self.x, self.edge_index, self.edge_attr = graph.x, graph.edge_index, graph.edge_attr
        self.pos = pos


def test_featurize_permutes_with_the_atoms():
    rng = np.random.default_rng(0)
    mols = _moses(60) + _stereo(30)
    assert sum(bool(Chem.FindMolChiralCenters(m)) for m in mols) == 30
    moved = 0
    for mol in mols:
        renumbered, order = _renumber(mol, rng)
        original, new = _Graph(mol), _Graph(renumbered)
        assert_permuted(original, new, order)
        moved += not np.array_equal(new.x, original.x)
    assert moved >= 0.9 * len(mols)  # the permutations did reorder the features


def test_featurize_positions_follow_the_atoms(qm9):
    """QM9 with DFT coordinates: the conformer is renumbered with the atoms."""
    rng = np.random.default_rng(1)
    for mol, pos in qm9:
        np.testing.assert_allclose(mol.GetConformer().GetPositions(), pos, atol=1e-6)
        renumbered, order = _renumber(mol, rng)
        new_pos = renumbered.GetConformer().GetPositions().astype(np.float32)
        assert_permuted(_Graph(mol, pos), _Graph(renumbered, new_pos), order)
        # the geometry is the same: all pairwise distances agree after the permutation
        dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        new_dist = np.linalg.norm(new_pos[:, None] - new_pos[None], axis=-1)
        np.testing.assert_allclose(new_dist, dist[np.ix_(order, order)], atol=1e-5)


def _write_sdf(path: Path, mols: list[Chem.Mol]) -> Path:
    with Chem.SDWriter(str(path)) as writer:
        for i, mol in enumerate(mols):
            mol = Chem.Mol(mol)
            mol.SetProp("_Name", f"mol{i}")
            mol.SetProp("y", str(float(i)))
            writer.write(mol)
    return path


def _store(source, root: Path) -> GraphStore:
    result = prepare_dataset(source, on_invalid="skip", root=root, shard_size=16, progress=False)
    assert result.n_invalid == 0
    return GraphStore(result.dataset)


def _same_atoms_at_same_places(data, mol: Chem.Mol, pos: np.ndarray) -> None:
    """``data`` holds ``mol``'s atoms (elements) at ``pos``, in an order of its own."""
    new_pos = np.asarray(data.pos)
    match = np.linalg.norm(new_pos[:, None] - pos[None], axis=-1).argmin(axis=1)
    assert sorted(match) == list(range(len(pos)))  # a one-to-one correspondence
    np.testing.assert_allclose(new_pos, pos[match], atol=1e-4)
    np.testing.assert_array_equal(np.asarray(data.x)[:, 0], featurize(mol).x[match, 0])  # element


def _assert_same_graph(a, b) -> None:
    """Identical graph arrays, and the same positions up to the molecule's symmetry: which of
    two equivalent atoms (the oxygens of a nitro group) comes first is RDKit's tie-break, so
    the positions may be relabelled, but only by a map that preserves features and bonds."""
    for key in ("x", "edge_index", "edge_attr"):
        np.testing.assert_array_equal(np.asarray(getattr(a, key)), np.asarray(getattr(b, key)))
    pos_a, pos_b = np.asarray(a.pos), np.asarray(b.pos)
    match = np.linalg.norm(pos_b[:, None] - pos_a[None], axis=-1).argmin(axis=1)
    assert sorted(match) == list(range(len(pos_a)))
    np.testing.assert_allclose(pos_b, pos_a[match], atol=1e-5)
    assert_permuted(a, b, match, positions=False)  # the map is an automorphism


def test_graph_store_of_renumbered_3d_molecules_is_the_same(qm9, tmp_path):
    """Through a prepared SDF (3D) and the GraphStore round trip, a file listing the atoms in
    another order gives the same graphs and positions (canonical atom order: the DFT
    coordinates, atom for atom), and the same targets."""
    rng = np.random.default_rng(2)
    mols = [mol for mol, _ in qm9]
    renumbered, orders = zip(*(_renumber(mol, rng) for mol in mols), strict=True)
    plain = _store(SDFSource(_write_sdf(tmp_path / "a.sdf", mols), ["y"]), tmp_path / "ca")
    moved = _store(SDFSource(_write_sdf(tmp_path / "b.sdf", renumbered), ["y"]), tmp_path / "cb")
    assert len(plain) == len(moved) == len(mols)
    assert plain.pos is not None and moved.pos is not None
    changed = 0
    for i in range(len(mols)):
        a, b = plain.get(i), moved.get(i)
        assert a.num_nodes == b.num_nodes == mols[i].GetNumAtoms()
        _assert_same_graph(a, b)
        _same_atoms_at_same_places(a, mols[i], qm9[i][1])  # DFT coordinates
        changed += not np.array_equal(a.pos.numpy(), qm9[i][1])
        assert float(a.y) == float(b.y) == float(i)
        assert a.smiles == b.smiles  # SDF smiles are canonical: the same molecule
    assert changed >= len(mols) // 2  # canonical order is not the xyz order: atoms did move


def _written_order(mol: Chem.Mol) -> tuple[str, np.ndarray]:
    """``(smiles, order)``: ``mol`` written without canonical order; atom ``j`` of the parsed
    SMILES is atom ``order[j]`` of ``mol`` (atoms are numbered in the order they are written)."""
    smiles = Chem.MolToSmiles(mol, canonical=False)
    return smiles, np.asarray(mol.GetPropsAsDict(True, True)["_smilesAtomOutputOrder"])


def test_graph_store_is_independent_of_how_the_smiles_is_written(tmp_path):
    """A CSV of the same molecules written from renumbered atoms prepares (canonical atom
    order, the default) to identical arrays; kept in written order, to permuted graphs."""
    rng = np.random.default_rng(3)
    mols = _moses(24) + _stereo(8)
    original, written, orders = [], [], []
    for mol in mols:
        smiles_a, out_a = _written_order(mol)
        renumbered, order = _renumber(mol, rng)
        smiles_b, out_b = _written_order(renumbered)
        inverse_a = np.empty_like(out_a)
        inverse_a[out_a] = np.arange(len(out_a))
        original.append(smiles_a), written.append(smiles_b)
        # parsed b atom j = renumbered atom out_b[j] = mol atom order[out_b[j]] = parsed a atom:
        orders.append(inverse_a[order[out_b]])
    assert sum(a != b for a, b in zip(original, written, strict=True)) >= 0.9 * len(mols)
    for name, column in (("a.csv", original), ("b.csv", written)):
        pd.DataFrame({"smiles": column, "y": np.arange(len(mols))}).to_csv(
            tmp_path / name, index=False
        )
    canonical = [
        _store(CSVSource(tmp_path / name, target_columns=["y"]), tmp_path / f"canonical-{name}")
        for name in ("a.csv", "b.csv")
    ]
    for key in ("x", "edge_index", "edge_attr", "y", "node_ptr", "edge_ptr"):
        np.testing.assert_array_equal(getattr(canonical[0], key), getattr(canonical[1], key))
    as_written = []
    for name in ("a.csv", "b.csv"):
        result = prepare_dataset(
            CSVSource(tmp_path / name, target_columns=["y"]),
            standardize=StandardizeOptions(canonical=False),
            root=tmp_path / f"written-{name}",
            progress=False,
        )
        as_written.append(GraphStore(result.dataset))
    moved = 0
    for i, order in enumerate(orders):
        a, b = as_written[0].get(i), as_written[1].get(i)
        assert_permuted(a, b, order, tag_as_flag=True)
        assert a.smiles == original[i] and b.smiles == written[i]
        moved += not np.array_equal(a.x.numpy(), b.x.numpy())
    assert moved >= 0.8 * len(mols)  # the written orders really differ


def test_batches_of_a_renumbered_dataset_carry_the_same_graphs(qm9, tmp_path):
    """The PyG batches a data module serves (collation shifts the edge indices) hold, for a file
    listing the atoms in another order, the same graphs: those of the molecules in canonical
    atom order, molecule by molecule."""
    rng = np.random.default_rng(4)
    mols = [mol for mol, _ in qm9]
    renumbered, _ = zip(*(_renumber(mol, rng) for mol in mols), strict=True)
    batches = []
    for name, group in (("a", mols), ("b", renumbered)):
        path = _write_sdf(tmp_path / f"{name}.sdf", list(group))
        dataset = prepare_dataset(SDFSource(path, ["y"]), root=tmp_path / name, progress=False)
        module = MolDataModule(dataset.dataset, batch_size=len(mols), split_sizes=(0.5, 0.25, 0.25))
        module.setup()
        batches.append(next(iter(module.test_dataloader())))
    a, b = batches
    assert a.num_graphs == b.num_graphs == 10 and a.row.tolist() == b.row.tolist()
    for k in range(a.num_graphs):
        _assert_same_graph(a.get_example(k), b.get_example(k))
        mol, pos = canonical_atom_order(*qm9[int(a.row[k])])
        identity = np.arange(mol.GetNumAtoms())
        assert_permuted(_Graph(mol), a.get_example(k), identity)
        np.testing.assert_allclose(a.get_example(k).pos.numpy(), pos, atol=1e-4)  # SDF: 4 digits


def _with_conformer(mol: Chem.Mol, pos: np.ndarray) -> Chem.Mol:
    conf = Chem.Conformer(mol.GetNumAtoms())
    conf.SetPositions(np.asarray(pos, dtype=np.float64))
    conf.Set3D(True)
    mol = Chem.Mol(mol)
    mol.AddConformer(conf, assignId=True)
    return mol


def test_chiral_tags_do_not_depend_on_the_written_atom_order(tmp_path):
    """The same stereocentres in two SDFs that list atoms and bonds in other orders: read in
    file order, RDKit gives some of them the other CW/CCW tag (the OGB chirality feature);
    prepared, both files give identical graphs and positions, equal to those of the molecules'
    canonical SMILES (what a CSV of them featurizes)."""
    rng = np.random.default_rng(5)
    group_a, group_b, perms = [], [], []
    for mol in _stereo(30):
        smiles_a, out_a = _written_order(mol)
        renumbered, order = _renumber(mol, rng)
        smiles_b, out_b = _written_order(renumbered)
        inverse_a = np.empty_like(out_a)
        inverse_a[out_a] = np.arange(len(out_a))
        perm = inverse_a[order[out_b]]  # atom j of b is atom perm[j] of a
        a, b = Chem.MolFromSmiles(smiles_a), Chem.MolFromSmiles(smiles_b)
        pos = generate_conformer(a, ConformerOptions(seed=0))
        group_a.append(_with_conformer(a, pos)), group_b.append(_with_conformer(b, pos[perm]))
        perms.append(perm)
    files = [_write_sdf(tmp_path / f"{n}.sdf", g) for n, g in (("a", group_a), ("b", group_b))]
    mols_a, mols_b = (list(Chem.SDMolSupplier(str(f))) for f in files)
    read_a, read_b = [_Graph(m) for m in mols_a], [_Graph(m) for m in mols_b]
    # the file's stereo (3D defines centres the SMILES left open) as a CSV would give it
    expected = [featurize(parse_smiles(Chem.MolToSmiles(m))) for m in mols_a]
    flipped = 0
    for a, b, perm in zip(read_a, read_b, perms, strict=True):
        assert_permuted(a, b, perm, tag_as_flag=True)  # file order: all but CW/CCW agree
        flipped += not np.array_equal(b.x, a.x[perm])
    assert flipped >= 10, flipped  # file order does flip tags, so this test can fail

    stores = [_store(SDFSource(f, ["y"]), tmp_path / f"cache-{f.stem}") for f in files]
    for key in ("x", "edge_index", "edge_attr", "node_ptr", "edge_ptr", "y"):
        np.testing.assert_array_equal(getattr(stores[0], key), getattr(stores[1], key))
    for i, graph in enumerate(expected):
        prepared = stores[0].get(i)
        _assert_same_graph(prepared, stores[1].get(i))
        for key in ("x", "edge_index", "edge_attr"):
            np.testing.assert_array_equal(np.asarray(getattr(prepared, key)), getattr(graph, key))
