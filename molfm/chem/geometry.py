"""Molecular geometry in numpy: bond lengths, bond angles, dihedrals and graph distances.

Index sets (bonds, angle triplets, dihedral quadruplets) come from the molecular graph and are
built with vectorized numpy over a CSR neighbour list, so their cost is linear in the number of
bonds (times the largest degree). The measurements are plain vector algebra on ``pos``.

Conventions
-----------
- ``bonds`` arrays are int ``[M, 2]`` atom pairs, one row per bond (not ``edge_index``; pass
  ``edge_index.T`` if you hold directed edges, each bond then appears twice).
- Angles are radians. Bond angles are in ``[0, pi]``; dihedrals are signed, in ``(-pi, pi]``,
  with the IUPAC/RDKit sign: looking along j->k, positive when i-j turns clockwise onto k-l
  (same as ``rdMolTransforms.GetDihedralRad``).

:func:`geometry_targets` gives the 3D-PGT pretext targets (bond lengths, per-atom sums of bond
angle cosines, per-bond sums of weighted dihedral cosines) in time linear in the number of bonds:
the angle and dihedral sums come from per-atom sums of unit bond vectors, never from an
enumeration of angle triplets or dihedral quadruplets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rdkit import Chem

__all__ = [
    "bond_index",
    "bond_lengths",
    "angle_triplets",
    "bond_angles",
    "dihedral_quadruplets",
    "dihedral_angles",
    "shortest_path_matrix",
    "GeometryTargets",
    "geometry_targets_from_positions",
    "geometry_targets",
]


def bond_index(mol: Chem.Mol) -> np.ndarray:
    """Bonds of ``mol`` as int64 ``[M, 2]`` (begin, end) pairs in bond order."""
    m = mol.GetNumBonds()
    out = np.empty((m, 2), dtype=np.int64)
    for b, bond in enumerate(mol.GetBonds()):
        out[b] = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
    return out


def _index_array(values: np.ndarray, width: int, name: str) -> np.ndarray:
    """Check an int ``[K, width]`` index array (refusing e.g. a ``[2, E]`` edge index)."""
    arr = np.asarray(values, dtype=np.int64)
    if arr.size == 0:
        return arr.reshape(0, width)
    if arr.ndim != 2 or arr.shape[1] != width:
        hint = " (pass edge_index.T)" if width == 2 and arr.ndim == 2 and arr.shape[0] == 2 else ""
        raise ValueError(f"{name} must have shape [K, {width}], got {arr.shape}{hint}")
    return arr


def _as_bonds(mol_or_bonds: Chem.Mol | np.ndarray) -> tuple[np.ndarray, int]:
    """Bond pairs ``[M, 2]`` and node count from a molecule or a bond array."""
    if isinstance(mol_or_bonds, Chem.Mol):
        return bond_index(mol_or_bonds), mol_or_bonds.GetNumAtoms()
    bonds = _index_array(mol_or_bonds, 2, "bonds")
    return bonds, int(bonds.max()) + 1 if bonds.size else 0


def _csr(bonds: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour lists: ``indices[indptr[a]:indptr[a + 1]]`` are the neighbours of atom ``a``."""
    src = np.concatenate([bonds[:, 0], bonds[:, 1]])
    dst = np.concatenate([bonds[:, 1], bonds[:, 0]])
    order = np.lexsort((dst, src))
    indptr = np.zeros(num_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=num_nodes), out=indptr[1:])
    return indptr, dst[order]


def _pairs_per_group(sizes_a: np.ndarray, sizes_b: np.ndarray) -> tuple[np.ndarray, ...]:
    """For group ``g`` enumerate all ``(a, b)`` with ``a < sizes_a[g]``, ``b < sizes_b[g]``.

    Returns the group id, ``a`` and ``b`` of every pair, as flat arrays.
    """
    counts = sizes_a * sizes_b
    group = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    local = np.arange(int(counts.sum())) - starts[group]
    width = sizes_b[group]
    return group, local // np.maximum(width, 1), local % np.maximum(width, 1)


def bond_lengths(pos: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    """Distances between bonded atoms.

    Parameters
    ----------
    pos
        float ``[N, 3]`` coordinates.
    bonds
        int ``[M, 2]`` atom pairs (see :func:`bond_index`).

    Returns
    -------
    np.ndarray
        ``[M]`` lengths, in the units of ``pos``.
    """
    pos = np.asarray(pos, dtype=np.float64)
    bonds = _index_array(bonds, 2, "bonds")
    return np.linalg.norm(pos[bonds[:, 0]] - pos[bonds[:, 1]], axis=-1)


def angle_triplets(mol_or_bonds: Chem.Mol | np.ndarray) -> np.ndarray:
    """Every bond angle once, as ``(i, j, k)`` with ``j`` the central atom and ``i < k``.

    Parameters
    ----------
    mol_or_bonds
        A molecule, or int ``[M, 2]`` bond pairs.

    Returns
    -------
    np.ndarray
        int64 ``[T, 3]``, grouped by central atom; ``T = sum_j deg(j) * (deg(j) - 1) / 2``.
    """
    bonds, n = _as_bonds(mol_or_bonds)
    if len(bonds) == 0:
        return np.zeros((0, 3), dtype=np.int64)
    indptr, nbrs = _csr(bonds, n)
    degree = np.diff(indptr)
    center, a, b = _pairs_per_group(degree, degree)
    keep = a < b
    center, a, b = center[keep], a[keep], b[keep]
    i = nbrs[indptr[center] + a]
    k = nbrs[indptr[center] + b]
    return np.stack([i, center, k], axis=1)


def bond_angles(pos: np.ndarray, triplets: np.ndarray) -> np.ndarray:
    """Angles i-j-k in radians, in ``[0, pi]``.

    Parameters
    ----------
    pos
        float ``[N, 3]`` coordinates.
    triplets
        int ``[T, 3]`` from :func:`angle_triplets`.

    Returns
    -------
    np.ndarray
        ``[T]`` angles (``atan2(|u x v|, u . v)``: stable near 0 and pi, unlike ``arccos``).
    """
    pos = np.asarray(pos, dtype=np.float64)
    triplets = _index_array(triplets, 3, "triplets")
    u = pos[triplets[:, 0]] - pos[triplets[:, 1]]
    v = pos[triplets[:, 2]] - pos[triplets[:, 1]]
    cross = np.linalg.norm(np.cross(u, v), axis=-1)
    return np.arctan2(cross, (u * v).sum(-1))


def dihedral_quadruplets(mol_or_bonds: Chem.Mol | np.ndarray) -> np.ndarray:
    """Every torsion i-j-k-l around every bond j-k (rotatable or not).

    For bond ``(j, k)`` (in bond order, ``j`` its first atom) all neighbours ``i`` of ``j`` and
    ``l`` of ``k`` with ``i != k``, ``l != j`` and ``i != l`` (the last drops 3-rings).

    Parameters
    ----------
    mol_or_bonds
        A molecule, or int ``[M, 2]`` bond pairs.

    Returns
    -------
    np.ndarray
        int64 ``[Q, 4]`` grouped by bond.
    """
    bonds, n = _as_bonds(mol_or_bonds)
    if len(bonds) == 0:
        return np.zeros((0, 4), dtype=np.int64)
    indptr, nbrs = _csr(bonds, n)
    degree = np.diff(indptr)
    j_all, k_all = bonds[:, 0], bonds[:, 1]
    bond, a, b = _pairs_per_group(degree[j_all], degree[k_all])
    j, k = j_all[bond], k_all[bond]
    i = nbrs[indptr[j] + a]
    l_ = nbrs[indptr[k] + b]
    keep = (i != k) & (l_ != j) & (i != l_)
    return np.stack([i[keep], j[keep], k[keep], l_[keep]], axis=1)


def dihedral_angles(pos: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """Signed dihedral angles in radians, in ``(-pi, pi]`` (IUPAC sign, as RDKit).

    Parameters
    ----------
    pos
        float ``[N, 3]`` coordinates.
    quads
        int ``[Q, 4]`` from :func:`dihedral_quadruplets`.

    Returns
    -------
    np.ndarray
        ``[Q]`` angles; ``atan2(|b2| b1 . (b2 x b3), (b1 x b2) . (b2 x b3))`` with
        ``b1 = j - i``, ``b2 = k - j``, ``b3 = l - k``.
    """
    pos = np.asarray(pos, dtype=np.float64)
    quads = _index_array(quads, 4, "quads")
    p0, p1, p2, p3 = (pos[quads[:, c]] for c in range(4))
    b1, b2, b3 = p1 - p0, p2 - p1, p3 - p2
    n2 = np.cross(b2, b3)
    y = np.linalg.norm(b2, axis=-1) * (b1 * n2).sum(-1)
    x = (np.cross(b1, b2) * n2).sum(-1)
    angle = np.arctan2(y, x)
    return np.where(angle <= -np.pi, np.pi, angle)  # -pi and pi are the same torsion


def shortest_path_matrix(
    mol_or_edge_index: Chem.Mol | np.ndarray,
    num_nodes: int | None = None,
    *,
    max_distance: int | None = None,
) -> np.ndarray:
    """Topological (bond-count) distances between all atom pairs.

    Parameters
    ----------
    mol_or_edge_index
        A molecule (RDKit's ``GetDistanceMatrix``), or an int ``[2, E]`` edge index (scipy
        ``csgraph`` breadth-first search; edges are treated as undirected).
    num_nodes
        Number of nodes for an edge index (default: largest index + 1; pass it when trailing
        atoms may be isolated). Ignored for molecules.
    max_distance
        If given, distances above it are clipped to ``max_distance``.

    Returns
    -------
    np.ndarray
        int64 ``[N, N]`` with 0 on the diagonal. Pairs in different fragments (unreachable)
        hold the sentinel ``-1`` when ``max_distance`` is None, else ``max_distance + 1`` (so
        the values index an embedding table of size ``max_distance + 2``).
    """
    if isinstance(mol_or_edge_index, Chem.Mol):
        dist = Chem.GetDistanceMatrix(mol_or_edge_index)
        unreachable = dist >= 1e7  # RDKit marks disconnected pairs with 1e8
    else:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import shortest_path

        edge_index = np.asarray(mol_or_edge_index, dtype=np.int64).reshape(2, -1)
        if num_nodes is None:
            num_nodes = int(edge_index.max()) + 1 if edge_index.size else 0
        weights = np.ones(edge_index.shape[1], dtype=np.float64)
        graph = coo_matrix((weights, (edge_index[0], edge_index[1])), (num_nodes, num_nodes))
        dist = shortest_path(graph.tocsr(), directed=False, unweighted=True)
        unreachable = ~np.isfinite(dist)
    out = np.where(unreachable, 0, dist).astype(np.int64)
    if max_distance is None:
        out[unreachable] = -1
    else:
        np.minimum(out, max_distance, out=out)
        out[unreachable] = max_distance + 1
    return out


@dataclass(frozen=True)
class GeometryTargets:
    """3D-PGT geometry pretext targets, raw (not normalized), float32.

    Attributes
    ----------
    bond_length
        ``[M]`` distance between the two atoms of each bond, in the units of ``pos``.
    angle_cos_sum
        ``[N]`` for atom ``i``: ``sum_{j < k in N(i)} cos(theta_jik)`` over the bond angles
        centred on ``i`` (0 for atoms with fewer than two neighbours).
    dihedral_sum
        ``[M]`` for bond ``(j, k)``: ``sum sin(theta_ijk) sin(theta_jkl) cos(phi_ijkl)`` over
        ``i in N(j) - {k}``, ``l in N(k) - {j}``, pairs with ``i == l`` (3-rings) included.
        Each term is the dot product of the components of unit vectors ``j->i`` and ``k->l``
        perpendicular to the bond, so terms with a linear angle (``sin = 0``) are exactly 0.
    """

    bond_length: np.ndarray
    angle_cos_sum: np.ndarray
    dihedral_sum: np.ndarray


def geometry_targets_from_positions(
    pos: np.ndarray, bonds: np.ndarray, num_atoms: int | None = None
) -> GeometryTargets:
    """Bond lengths, per-atom angle cosine sums and per-bond dihedral sums from coordinates.

    With ``u_ij`` the unit vector from atom ``i`` to neighbour ``j`` and ``S_i = sum_j u_ij``:
    ``|S_i|^2 = deg(i) + 2 sum_{j<k} cos(theta_jik)`` gives the angle sums, and for bond
    ``(j, k)`` with unit direction ``b``, ``P = perp_b(S_j - u_jk)``, ``Q = perp_b(S_k - u_kj)``
    (``perp_b(v) = v - (v . b) b``) gives ``dihedral_sum = P . Q``. One scatter-add over the
    bonds builds every ``S_i``, so the cost is ``O(N + M)`` whatever the degrees.

    Parameters
    ----------
    pos
        float ``[N, 3]`` coordinates.
    bonds
        int ``[M, 2]`` atom pairs in bond order (see :func:`bond_index`; from a featurized graph,
        ``edge_index[:, 0::2].T``). Bonds must not repeat or join an atom to itself.
    num_atoms
        Optional node count to check ``pos`` against (e.g. ``len(graph.x)``).

    Returns
    -------
    GeometryTargets
        float32 ``bond_length`` ``[M]``, ``angle_cos_sum`` ``[N]``, ``dihedral_sum`` ``[M]``.

    Raises
    ------
    ValueError
        If shapes disagree, a bond index is out of range, or a bond has zero length.
    """
    pos = np.asarray(pos, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"pos must have shape [N, 3], got {pos.shape}")
    n = pos.shape[0]
    if num_atoms is not None and num_atoms != n:
        raise ValueError(f"pos has {n} rows but num_atoms={num_atoms}")
    bonds = _index_array(bonds, 2, "bonds")
    if bonds.size and (bonds.min() < 0 or bonds.max() >= n):
        raise ValueError(f"bond atom indices must lie in [0, {n})")
    j, k = bonds[:, 0], bonds[:, 1]
    vec = pos[k] - pos[j]
    length = np.linalg.norm(vec, axis=-1)
    if np.any(length == 0) or not np.all(np.isfinite(length)):
        raise ValueError("every bond needs two distinct, finite atom positions")
    b = vec / length[:, None]  # u_jk; u_kj = -b
    summed = np.zeros((n, 3))  # S_i = sum of unit vectors from i to its neighbours
    np.add.at(summed, np.concatenate([j, k]), np.concatenate([b, -b]))
    degree = np.bincount(bonds.ravel(), minlength=n)
    cos_sum = 0.5 * ((summed * summed).sum(-1) - degree)
    cos_sum[degree < 2] = 0.0  # exactly 0 (rounding would leave ~1e-16 at degree 1)
    p = summed[j] - b  # S_j - u_jk: unit vectors j -> i, i != k
    q = summed[k] + b  # S_k - u_kj: unit vectors k -> l, l != j
    # The projection would remove the bond's own direction anyway; subtracting it first keeps
    # the vectors equal to the neighbour sums of the docstring.
    p -= (p * b).sum(-1, keepdims=True) * b
    q -= (q * b).sum(-1, keepdims=True) * b
    return GeometryTargets(
        bond_length=length.astype(np.float32),
        angle_cos_sum=cos_sum.astype(np.float32),
        dihedral_sum=(p * q).sum(-1).astype(np.float32),
    )


def geometry_targets(mol: Chem.Mol, conf_id: int = -1) -> GeometryTargets:
    """:func:`geometry_targets_from_positions` for a molecule's conformer.

    Aligned with :func:`molfm.chem.featurize.featurize` of the same molecule: every atom of
    ``mol`` is a node (hydrogens count only if ``mol`` holds them as atoms, as featurize does;
    molfm's parsed and xyz-built molecules are heavy-atom only) and bonds are in RDKit order.

    Parameters
    ----------
    mol
        A molecule with a 3D conformer (e.g. from :func:`~molfm.chem.io.mol_from_xyz`).
    conf_id
        Which conformer (default: the first).

    Raises
    ------
    ValueError
        If the molecule has no conformer, or the conformer is 2D.
    """
    if mol.GetNumConformers() == 0:
        raise ValueError("geometry_targets needs a molecule with a conformer; it has none")
    conf = mol.GetConformer(conf_id)
    if not conf.Is3D():
        raise ValueError("geometry_targets needs a 3D conformer; this one is 2D")
    return geometry_targets_from_positions(conf.GetPositions(), bond_index(mol), mol.GetNumAtoms())
