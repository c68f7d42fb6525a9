"""2D graph featurization with a versioned, serializable feature schema.

The default schema, :data:`OGB_SCHEMA`, reproduces ``ogb.utils.mol.smiles2graph`` exactly: 9 atom
and 3 bond features with OGB's value lists, out-of-vocabulary values in the last index (OGB's
``safe_index`` rule, its "misc" bucket; also for bond stereo, where OGB itself would crash on
e.g. atropisomer labels), a heavy-atom graph, and for bond ``b = (u, v)`` the edges
``2b = (u, v)`` and ``2b + 1 = (v, u)``.

Speed: RDKit's Python wrappers, not arithmetic, dominate. Atoms and bonds are fetched once by
index and each getter is mapped over them at C level. Slow enum getters and mostly-zero values
are avoided where an exact shortcut exists: chiral tags, charges and radicals are read only on
atoms matching a query; bond types come from ``GetBondTypeAsDouble`` unless a SMARTS check
finds a bond that is not single/double/triple/aromatic; the total degree is the bond count plus
hydrogens. One numpy table lookup maps raw values to indices.

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
from typing import TYPE_CHECKING, Any

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdqueries

from molfm.chem.parse import InvalidMoleculeError, StandardizeOptions, parse_smiles
from molfm.chem.schema import (
    ATOM_FEATURE_NAMES,
    BOND_FEATURE_NAMES,
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
]


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
# Queries for values that are almost always zero: reading them only on the few matching atoms
# beats calling the getter on every atom.
_HAS_CHIRAL_TAG = rdqueries.HasChiralTagQueryAtom()
_CHARGED = rdqueries.FormalChargeEqualsQueryAtom(0, True)
_RADICAL = rdqueries.NumRadicalElectronsEqualsQueryAtom(0, True)
# Matches any bond whose type is not SINGLE/DOUBLE/TRIPLE/AROMATIC (dative, zero, 1.5, ...).
_EXOTIC_BOND = Chem.MolFromSmarts("*!-!=!#!:*")
# GetBondTypeAsDouble * 2 -> BondType integer, valid once _EXOTIC_BOND has no match.
_TYPE_FROM_DOUBLE = np.array(
    [0, 0, int(Chem.BondType.SINGLE), int(Chem.BondType.AROMATIC), int(Chem.BondType.DOUBLE), 0]
    + [int(Chem.BondType.TRIPLE)],
    dtype=np.int64,
)


def _column(getter: Any, items: list, count: int) -> np.ndarray:
    return np.fromiter(map(getter, items), dtype=np.int64, count=count)


def _raw_arrays(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Raw atom values ``[N, 9]``, bond values ``[M, 3]`` and bond ends ``u, v`` ``[M]``."""
    n = mol.GetNumAtoms()
    atoms = list(map(mol.GetAtomWithIdx, range(n)))
    atom_raw = np.zeros((n, len(ATOM_FEATURE_NAMES)), dtype=np.int64)
    atom_raw[:, 0] = _column(_Atom.GetAtomicNum, atoms, n)
    for atom in mol.GetAtomsMatchingQuery(_HAS_CHIRAL_TAG):  # usually none or a few
        atom_raw[atom.GetIdx(), 1] = int(atom.GetChiralTag())
    for atom in mol.GetAtomsMatchingQuery(_CHARGED):
        atom_raw[atom.GetIdx(), 3] = atom.GetFormalCharge()
    atom_raw[:, 4] = _column(_Atom.GetTotalNumHs, atoms, n)
    for atom in mol.GetAtomsMatchingQuery(_RADICAL):
        atom_raw[atom.GetIdx(), 5] = atom.GetNumRadicalElectrons()
    atom_raw[:, 6] = _column(_Atom.GetHybridization, atoms, n)
    atom_raw[:, 7] = _column(_Atom.GetIsAromatic, atoms, n)
    atom_raw[:, 8] = _column(_Atom.IsInRing, atoms, n)

    m = mol.GetNumBonds()
    bonds = list(map(mol.GetBondWithIdx, range(m)))
    u = _column(_Bond.GetBeginAtomIdx, bonds, m)
    v = _column(_Bond.GetEndAtomIdx, bonds, m)
    # RDKit's total degree = explicit neighbours + hydrogens (GetTotalNumHs).
    atom_raw[:, 2] = np.bincount(u, minlength=n) + np.bincount(v, minlength=n) + atom_raw[:, 4]

    bond_raw = np.empty((m, len(BOND_FEATURE_NAMES)), dtype=np.int64)
    if m and not mol.HasSubstructMatch(_EXOTIC_BOND):
        doubled = np.fromiter(map(_Bond.GetBondTypeAsDouble, bonds), dtype=np.float64, count=m)
        bond_raw[:, 0] = _TYPE_FROM_DOUBLE[(doubled * 2).astype(np.int64)]
    else:
        bond_raw[:, 0] = _column(_Bond.GetBondType, bonds, m)
    bond_raw[:, 1] = _column(_Bond.GetStereo, bonds, m)
    bond_raw[:, 2] = _column(_Bond.GetIsConjugated, bonds, m)
    return atom_raw, bond_raw, u, v


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
    atom_raw, bond_raw, u, v = _raw_arrays(mol)
    x = atom_table.lookup(atom_raw)
    m = u.shape[0]
    edge_index = np.empty((2, 2 * m), dtype=np.int64)
    edge_index[0, 0::2] = u
    edge_index[1, 0::2] = v
    edge_index[0, 1::2] = v
    edge_index[1, 1::2] = u
    bond_x = bond_table.lookup(bond_raw)
    edge_attr = np.empty((2 * m, bond_x.shape[1]), dtype=np.int64)
    edge_attr[0::2] = bond_x
    edge_attr[1::2] = bond_x
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
