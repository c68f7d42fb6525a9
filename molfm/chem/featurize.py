"""2D graph featurization with a versioned, serializable feature schema.

The default schema, :data:`OGB_SCHEMA`, reproduces ``ogb.utils.mol.smiles2graph`` exactly: 9 atom
and 3 bond features with OGB's value lists, out-of-vocabulary values in the last index (OGB's
``safe_index`` rule, its "misc" bucket; also for bond stereo, where OGB itself would crash on
e.g. atropisomer labels), a heavy-atom graph, and for bond ``b = (u, v)`` the edges
``2b = (u, v)`` and ``2b + 1 = (v, u)``.

Speed: the cost is the number of calls into RDKit's Boost.Python wrappers (about 0.15 us for a
plain getter, 0.5 us for one returning an enum or an Atom/Bond object), not arithmetic. So the
raw values are read from the molecule's binary form (one ``ToBinary`` call, each distinct atom
and bond record decoded once per process; :mod:`molfm.chem.rdkit_pickle`). Molecules that
reader declines go through the getters: atoms and bonds fetched once by index, each getter
mapped over them at C level, mostly-zero values read only on the atoms a one-atom query
molecule finds. The total degree is the bond count plus hydrogens either way, and one numpy
table lookup maps raw values to indices.

Deliberate differences from ``torch_geometric.utils.from_smiles`` (its ``x_map``/``e_map``);
OGB's encoding is what OGB's ``AtomEncoder``/``BondEncoder`` and published GNN/GPS/Transformer-M
checkpoints assume:

- atomic number: PyG index = Z (0..118); OGB index = Z - 1, with ``*`` (Z = 0) in misc (118).
- hybridization: PyG starts ``UNSPECIFIED, S``, so for SP..SP3D2 PyG = OGB + 2; OGB puts
  S/UNSPECIFIED/OTHER in misc.
- bond type: PyG indexes RDKit's whole ``BondType`` (SINGLE=1, DOUBLE=2, TRIPLE=3, AROMATIC=12);
  OGB uses 0, 1, 2, 3 and misc=4.
- bond stereo: PyG orders NONE, ANY, Z, E, CIS, TRANS; OGB orders NONE, Z, E, CIS, TRANS, ANY.
- edges: PyG sorts them by (source, target); OGB keeps bond order.
- other features (chirality's first four tags, degree, formal charge -5..5, hydrogens,
  radicals, aromatic, in ring) have equal indices.
- PyG raises ``ValueError`` on values outside its lists, switches RDKit logging off for the
  whole process, and returns an empty graph for invalid SMILES; molfm uses misc buckets, captures
  logs per molecule, and raises :class:`~molfm.chem.parse.InvalidMoleculeError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain, repeat
from typing import TYPE_CHECKING, Any

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdqueries

from molfm.chem.parse import InvalidMoleculeError, StandardizeOptions, parse_smiles
from molfm.chem.rdkit_pickle import read_raw_arrays
from molfm.chem.schema import (
    OGB_SCHEMA,
    FeatureSchema,
    FeatureSpec,
    compile_schema,
    get_schema,
    register_schema,
)

if TYPE_CHECKING:
    from torch_geometric.data import Data

__all__ = [
    "FeatureSpec",
    "FeatureSchema",
    "OGB_SCHEMA",
    "get_schema",
    "register_schema",
    "GraphArrays",
    "featurize",
    "to_pyg",
    "mol_to_data",
    "smiles_to_data",
    "FEATURIZE_BLOCK",
]

FEATURIZE_BLOCK = 256
"""Molecules parsed together, then featurized together, by the commands that featurize many.
Keeping RDKit's parser and the Python featurizer in separate loops keeps each one's code and
data in the CPU caches: about a fifth faster than alternating them molecule by molecule
(benchmarks/featurize.py)."""


@dataclass
class GraphArrays:
    """A molecule as integer arrays (numpy, no torch).

    Attributes
    ----------
    x
        int64 ``[N, F_atom]`` atom feature indices.
    edge_index
        int64 ``[2, E]`` directed edges, ``E = 2 * num_bonds``.
    edge_attr
        int64 ``[E, F_bond]`` bond feature indices, one row per directed edge.
    """

    x: np.ndarray
    edge_index: np.ndarray
    edge_attr: np.ndarray

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])


_Atom = Chem.rdchem.Atom
_Bond = Chem.rdchem.Bond


def _query_mol(query_atom: Chem.Atom) -> Chem.Mol:
    mol = Chem.RWMol()
    mol.AddAtom(query_atom)
    return mol.GetMol()


# One-atom query molecules for values that are almost always zero. GetSubstructMatches hands
# back the few matching indices as plain ints (about 2 us per molecule), far cheaper than a
# getter call on every atom or GetAtomsMatchingQuery, which wraps each atom in a Python object.
_HAS_CHIRAL_TAG = _query_mol(rdqueries.HasChiralTagQueryAtom())
_CHARGED = _query_mol(rdqueries.FormalChargeEqualsQueryAtom(0, True))
_RADICAL = _query_mol(rdqueries.NumRadicalElectronsEqualsQueryAtom(0, True))
# Matches any bond whose type is not SINGLE/DOUBLE/TRIPLE/AROMATIC (dative, zero, 1.5, ...).
_EXOTIC_BOND = Chem.MolFromSmarts("*!-!=!#!:*")
# GetBondTypeAsDouble -> BondType integer, exact once _EXOTIC_BOND has no match (a float
# getter plus a dict lookup is cheaper than GetBondType's enum object).
_TYPE_FROM_DOUBLE = {
    float(Chem.BondType.SINGLE): int(Chem.BondType.SINGLE),
    1.5: int(Chem.BondType.AROMATIC),
    float(Chem.BondType.DOUBLE): int(Chem.BondType.DOUBLE),
    float(Chem.BondType.TRIPLE): int(Chem.BondType.TRIPLE),
}


def _matching(mol: Chem.Mol, query: Chem.Mol, limit: int) -> list[int]:
    """Indices of the atoms matching a one-atom query molecule."""
    matches = mol.GetSubstructMatches(query, uniquify=False, maxMatches=limit)
    return [match[0] for match in matches]


def _raw_arrays(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw atom values ``[9, N]``, raw bond values ``[3, M]`` and bond ends ``[2, M]``.

    Read from the molecule's binary form where :mod:`molfm.chem.rdkit_pickle` can; otherwise
    (isotopes, atom maps, queries, > 255 atoms, other RDKit formats) from RDKit's getters.
    """
    raw = read_raw_arrays(mol)
    return raw if raw is not None else _raw_arrays_from_getters(mol)


def _raw_arrays_from_getters(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_raw_arrays` through RDKit's Python getters (the reference for the fast path).

    Feature-major: one row per entry of ``ATOM_FEATURE_NAMES`` / ``BOND_FEATURE_NAMES``.
    Each getter is mapped over all atoms (or bonds) at C level and all atom (bond) values are
    read in one ``np.fromiter`` call, since per-call overhead, not arithmetic, is the cost.
    """
    n = mol.GetNumAtoms()
    atoms = list(map(mol.GetAtomWithIdx, range(n)))
    atom_raw = np.fromiter(
        chain(  # in ATOM_FEATURE_NAMES order; the zero rows are filled in below
            map(_Atom.GetAtomicNum, atoms),
            repeat(0, 3 * n),  # chirality, degree, formal charge
            map(_Atom.GetTotalNumHs, atoms),
            repeat(0, n),  # radical electrons
            map(_Atom.GetHybridization, atoms),
            map(_Atom.GetIsAromatic, atoms),
            map(_Atom.IsInRing, atoms),
        ),
        dtype=np.int64,
        count=9 * n,
    ).reshape(9, n)
    for i in _matching(mol, _HAS_CHIRAL_TAG, n):
        atom_raw[1, i] = atoms[i].GetChiralTag()
    for i in _matching(mol, _CHARGED, n):
        atom_raw[3, i] = atoms[i].GetFormalCharge()
    for i in _matching(mol, _RADICAL, n):
        atom_raw[5, i] = atoms[i].GetNumRadicalElectrons()

    m = mol.GetNumBonds()
    bonds = list(map(mol.GetBondWithIdx, range(m)))
    if m and not mol.HasSubstructMatch(_EXOTIC_BOND):
        types = map(_TYPE_FROM_DOUBLE.__getitem__, map(_Bond.GetBondTypeAsDouble, bonds))
    else:
        types = map(_Bond.GetBondType, bonds)
    bond_ints = np.fromiter(
        chain(
            map(_Bond.GetBeginAtomIdx, bonds),
            map(_Bond.GetEndAtomIdx, bonds),
            types,  # then BOND_FEATURE_NAMES order
            map(_Bond.GetStereo, bonds),
            map(_Bond.GetIsConjugated, bonds),
        ),
        dtype=np.int64,
        count=5 * m,
    ).reshape(5, m)
    ends = bond_ints[:2]
    # RDKit's total degree = explicit neighbours + hydrogens (GetTotalNumHs).
    atom_raw[2] = np.bincount(ends.ravel(), minlength=n) + atom_raw[4]
    return atom_raw, bond_ints[2:], ends


def featurize(mol: Chem.Mol, schema: FeatureSchema = OGB_SCHEMA) -> GraphArrays:
    """Featurize a sanitized molecule as a 2D graph (OGB-compatible by default).

    Parameters
    ----------
    mol
        A sanitized RDKit molecule; every atom in it becomes a node (hydrogens stay implicit
        unless the molecule holds them as atoms).
    schema
        Which features and vocabularies to use.

    Returns
    -------
    GraphArrays
        ``x`` int64 ``[N, len(schema.atom_features)]``, ``edge_index`` int64 ``[2, 2M]`` and
        ``edge_attr`` int64 ``[2M, len(schema.bond_features)]`` for ``M`` bonds.

    Raises
    ------
    InvalidMoleculeError
        If the molecule has no atoms (molfm never produces empty graphs).
    """
    if mol.GetNumAtoms() == 0:
        raise InvalidMoleculeError(Chem.MolToSmiles(mol), "molecule has no atoms")
    atom_table, bond_table = compile_schema(schema)
    atom_raw, bond_raw, ends = _raw_arrays(mol)
    m = ends.shape[1]
    edge_index = np.empty((2, 2 * m), dtype=np.int64)
    edge_index[:, 0::2] = ends
    edge_index[:, 1::2] = ends[::-1]
    x = atom_table.lookup(atom_raw)
    edge_attr = np.repeat(bond_table.lookup(bond_raw), 2, axis=0)
    return GraphArrays(x=x, edge_index=edge_index, edge_attr=edge_attr)


def to_pyg(
    graph: GraphArrays,
    *,
    pos: np.ndarray | None = None,
    smiles: str | None = None,
    **attrs: Any,
) -> Data:
    """Wrap :class:`GraphArrays` as a ``torch_geometric.data.Data`` (tensors share memory).

    Parameters
    ----------
    graph
        Output of :func:`featurize`.
    pos
        Optional ``[N, 3]`` coordinates, stored as float32 ``pos``.
    smiles
        Optional SMILES stored as ``data.smiles``.
    **attrs
        Extra attributes passed to ``Data`` (targets, ids, ...).

    Returns
    -------
    Data
        ``x``, ``edge_index``, ``edge_attr`` as ``torch.long``; ``pos`` float32 when given.
    """
    import torch
    from torch_geometric.data import Data

    if pos is not None:
        pos = np.asarray(pos, dtype=np.float32)
        if pos.shape != (graph.num_nodes, 3):
            raise ValueError(f"pos has shape {pos.shape}, expected ({graph.num_nodes}, 3)")
        attrs["pos"] = torch.from_numpy(np.ascontiguousarray(pos))
    if smiles is not None:
        attrs["smiles"] = smiles
    return Data(
        x=torch.from_numpy(graph.x),
        edge_index=torch.from_numpy(graph.edge_index),
        edge_attr=torch.from_numpy(graph.edge_attr),
        **attrs,
    )


def mol_to_data(
    mol: Chem.Mol,
    schema: FeatureSchema = OGB_SCHEMA,
    *,
    pos: np.ndarray | None = None,
    smiles: str | None = None,
) -> Data:
    """:func:`featurize` then :func:`to_pyg`."""
    return to_pyg(featurize(mol, schema), pos=pos, smiles=smiles)


def smiles_to_data(
    smiles: str,
    schema: FeatureSchema = OGB_SCHEMA,
    *,
    row: int | None = None,
    standardize: StandardizeOptions | None = None,
) -> Data:
    """Parse (raising :class:`InvalidMoleculeError` with RDKit's reason) and featurize.

    ``data.smiles`` is the input string, or the canonical SMILES of the standardized molecule
    when ``standardize`` is given (so it always describes the graph).
    """
    mol = parse_smiles(smiles, row=row, standardize=standardize)
    text = smiles.strip() if standardize is None else Chem.MolToSmiles(mol)
    return to_pyg(featurize(mol, schema), smiles=text)
