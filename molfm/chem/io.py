"""Molecule file I/O: SDF and XYZ, and molecules from xyz coordinates plus a SMILES.

:func:`mol_from_xyz` is how DFT geometries (QM9) become molecules: connectivity comes from the
coordinates, bond orders and charges from the SMILES, and the two graphs must be identical
(same elements, same bonds) or the molecule is rejected. Guessing bond orders for a geometry
that relaxed into another molecule would silently mislabel it. In qm9pack (QM9 without the
3,054 molecules that failed the authors' consistency check) 2 of 130,831 molecules are
rejected this way, both with a rearranged ring skeleton (gdb 133857 and 133859).
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdqueries

from molfm.chem.parse import InvalidMoleculeError, parse_smiles, rdkit_messages

__all__ = [
    "read_sdf",
    "write_sdf",
    "read_xyz",
    "write_xyz",
    "mol_from_xyz",
    "positions_3d",
    "canonical_atom_order",
    "sdf_molecule",
    "flat_records_message",
]

PathLike = str | os.PathLike


def _open(path: PathLike | IO[bytes], mode: str) -> IO[Any]:
    if hasattr(path, "read"):  # an open binary file (e.g. one record in memory)
        return contextlib.nullcontext(path)
    if str(path).endswith(".gz"):
        return gzip.open(path, mode)
    return open(path, mode)


def read_sdf(
    path: PathLike | IO[bytes], *, remove_hs: bool = True
) -> Iterator[tuple[int, Chem.Mol | None, str | None]]:
    """Stream the records of an SDF file (``.sdf`` or ``.sdf.gz``).

    Parameters
    ----------
    path
        File to read, or an open binary file.
    remove_hs
        Remove explicit hydrogens (coordinates of the remaining atoms are kept).

    Yields
    ------
    tuple[int, Chem.Mol | None, str | None]
        ``(record_index, mol, None)`` for a good record, ``(record_index, None, reason)`` with
        RDKit's message for a bad one; reading continues after bad records.
    """
    with _open(path, "rb") as handle:
        supplier = Chem.ForwardSDMolSupplier(handle, sanitize=True, removeHs=remove_hs)
        index = 0
        while True:
            with rdBase.CaptureErrorLog() as log:
                try:
                    mol = next(supplier)
                except StopIteration:
                    return
            if mol is None:
                reason = rdkit_messages(log.messages) or "RDKit could not read the record"
                yield index, None, reason
            else:
                yield index, mol, None
            index += 1


FLAT = "2D coordinates (not marked 3D, or every z = 0)"


def positions_3d(mol: Chem.Mol) -> np.ndarray | None:
    """float32 ``[N, 3]`` coordinates of the first conformer, or ``None`` when there is none
    or it is flat: a 2D drawing (an SD record not marked 3D, or one whose z are all 0) would
    otherwise pass for a planar 3D geometry."""
    if not mol.GetNumConformers():
        return None
    conf = mol.GetConformer()
    positions = conf.GetPositions()
    if not conf.Is3D() or not np.any(np.abs(positions[:, 2]) > 1e-8):
        return None
    return positions.astype(np.float32)


def canonical_atom_order(
    mol: Chem.Mol,
    positions: np.ndarray | None = None,
    *,
    value: object = None,
    row: int | None = None,
) -> tuple[Chem.Mol, np.ndarray | None]:
    """The molecule renumbered into canonical SMILES order, with its positions permuted alike.

    OGB's chirality feature is RDKit's CW/CCW tag, which is relative to the order of the
    centre's bonds; ``RenumberAtoms`` keeps each atom's bonds in order, so it keeps the tag.
    Writing the canonical SMILES and parsing it back rebuilds atoms *and* bonds in canonical
    order: the graph then depends neither on how a file listed them nor on the conformer, and
    equals that of the canonical SMILES (what SMILES sources featurize; a molecule parsed from
    its canonical SMILES comes back unchanged). Hydrogens held as atoms stay atoms.

    Returns
    -------
    tuple
        The new molecule (with ``positions`` as its 3D conformer) and ``positions[order]``.

    Raises
    ------
    InvalidMoleculeError
        If the canonical SMILES does not parse back to as many atoms.
    """
    smiles = Chem.MolToSmiles(mol)
    # atom j of the SMILES is atom order[j] of mol
    order = [int(i) for i in mol.GetProp("_smilesAtomOutputOrder").strip("[]").split(",") if i]
    params = Chem.SmilesParserParams()
    params.removeHs = False  # one atom out per atom in, so positions map one to one
    with rdBase.CaptureErrorLog() as log:
        canonical = Chem.MolFromSmiles(smiles, params)
    if canonical is None or canonical.GetNumAtoms() != len(order):
        reason = rdkit_messages(log.messages) or f"{smiles} has other atoms"
        shown = value if value is not None else smiles
        raise InvalidMoleculeError(shown, f"canonical SMILES did not re-parse: {reason}", row=row)
    if positions is None:
        return canonical, None
    positions = np.asarray(positions, dtype=np.float32)[order]
    conf = Chem.Conformer(len(order))
    conf.SetPositions(positions.astype(np.float64))
    conf.Set3D(True)
    canonical.AddConformer(conf, assignId=True)
    return canonical, positions


def sdf_molecule(
    mol: Chem.Mol, *, value: object = None, row: int | None = None
) -> tuple[Chem.Mol, np.ndarray | None]:
    """An SD record's sanitized molecule as molfm featurizes it: in canonical atom order (see
    :func:`canonical_atom_order`), with its coordinates when they are 3D (else ``None``, see
    :func:`positions_3d`). Every reader of SD files goes through here."""
    return canonical_atom_order(mol, positions_3d(mol), value=value, row=row)


def flat_records_message(path: PathLike, flat: Sequence[int], total: int) -> str:
    """How a file with flat records is named in errors: which file, how many, the first."""
    return f"{path}: {len(flat)} of {total} SD records have {FLAT}, the first is record {flat[0]}"


def _set_prop(mol: Chem.Mol, key: str, value: object) -> None:
    if isinstance(value, bool):
        mol.SetBoolProp(key, value)
    elif isinstance(value, int | np.integer):
        mol.SetIntProp(key, int(value))
    elif isinstance(value, float | np.floating):
        mol.SetDoubleProp(key, float(value))
    else:
        mol.SetProp(key, str(value))


def write_sdf(
    path: PathLike,
    mols: Iterable[Chem.Mol],
    props: Iterable[Mapping[str, object]] | None = None,
) -> int:
    """Write molecules (with their conformers) to an SDF file.

    Parameters
    ----------
    path
        Output file (``.gz`` is compressed).
    mols
        Molecules to write; the first conformer is written when present.
    props
        Optional per-molecule properties written as SDF data fields, zipped with ``mols``.

    Returns
    -------
    int
        Number of records written.
    """
    count = 0
    prop_iter = iter(props) if props is not None else None
    with _open(path, "wt") as handle:
        writer = Chem.SDWriter(handle)
        try:
            for mol in mols:
                if prop_iter is not None:
                    values = next(prop_iter, None)
                    if values is None:
                        raise ValueError(f"props has fewer entries than mols ({count})")
                    mol = Chem.Mol(mol)  # don't leave properties on the caller's molecule
                    for key, value in values.items():
                        _set_prop(mol, key, value)
                writer.write(mol)
                count += 1
        finally:
            writer.close()
    return count


def read_xyz(path: PathLike) -> tuple[list[str], np.ndarray]:
    """Read the first structure of an XYZ file.

    Accepts QM9's variant: extra columns after x, y, z (Mulliken charges), Mathematica-style
    exponents (``1.5*^-6``) and trailing lines after the atom block.

    Returns
    -------
    tuple[list[str], np.ndarray]
        Element symbols ``[N]`` and float64 positions ``[N, 3]``.
    """
    with _open(path, "rt") as handle:
        lines = handle.read().splitlines()
    try:
        n = int(lines[0].split()[0])
    except (IndexError, ValueError) as err:
        raise ValueError(f"{path}: first line must be the atom count") from err
    atom_lines = lines[2 : 2 + n]
    if len(atom_lines) < n:
        raise ValueError(f"{path}: expected {n} atom lines, found {len(atom_lines)}")
    elements: list[str] = []
    positions = np.empty((n, 3), dtype=np.float64)
    for i, line in enumerate(atom_lines):
        fields = line.split()
        if len(fields) < 4:
            raise ValueError(f"{path}: atom line {i + 1} has fewer than 4 fields: {line!r}")
        elements.append(fields[0])
        positions[i] = [float(f.replace("*^", "e")) for f in fields[1:4]]
    return elements, positions


def write_xyz(
    path: PathLike, elements: Sequence[str], positions: np.ndarray, comment: str = ""
) -> None:
    """Write one structure as a standard XYZ file (Angstrom, 8 decimals)."""
    positions = np.asarray(positions, dtype=np.float64)
    if positions.shape != (len(elements), 3):
        raise ValueError(f"positions {positions.shape} do not match {len(elements)} elements")
    if "\n" in comment:
        raise ValueError("the XYZ comment must be a single line")
    rows = [
        f"{el:<2s} {x: .8f} {y: .8f} {z: .8f}"
        for el, (x, y, z) in zip(elements, positions, strict=True)
    ]
    Path(path).write_text("\n".join([str(len(elements)), comment, *rows]) + "\n")


# Connectivity from coordinates, as a multiple of the summed covalent radii (RDKit's table,
# Cordero et al. 2008). A pair closer than BOND_CERTAIN_RATIO is a bond whatever the SMILES says;
# a pair farther than BOND_MAX_RATIO (RDKit's default ``covFactor``) is never one. In the 130,831
# qm9pack molecules, SMILES bonds reach 1.29 (long N-O bonds in 1,2,3-oxadiazinones) and
# non-bonded contacts (bridgeheads of bicyclo[1.1.1]pentanes and similar cages) come down to
# 1.15; the narrowest gap between the two is 1.07 to 1.15.
BOND_CERTAIN_RATIO = 1.1
BOND_MAX_RATIO = 1.3

_COVALENT_RADII = np.array([Chem.GetPeriodicTable().GetRcovalent(z) for z in range(119)])
_Atom = Chem.rdchem.Atom
_CHARGED = rdqueries.FormalChargeEqualsQueryAtom(0, True)
_RADICAL = rdqueries.NumRadicalElectronsEqualsQueryAtom(0, True)
_AROMATIC = rdqueries.IsAromaticQueryAtom()


@functools.cache
def _atomic_number(symbol: str) -> int | None:
    with rdBase.CaptureErrorLog():  # RDKit logs a stack trace for unknown symbols
        try:
            return Chem.GetPeriodicTable().GetAtomicNumber(symbol)
        except RuntimeError:
            return None


def _atomic_numbers(elements: Sequence[str], smiles: str, row: int | None) -> list[int]:
    numbers = [_atomic_number(str(symbol)) for symbol in elements]
    if None in numbers:
        symbol = elements[numbers.index(None)]
        raise InvalidMoleculeError(smiles, f"bad xyz element {symbol!r}", row=row)
    return numbers  # type: ignore[return-value]


def _radius_ratios(atomic_nums: Sequence[int], positions: np.ndarray) -> np.ndarray:
    """``[N, N]`` interatomic distances divided by the sums of covalent radii."""
    radii = _COVALENT_RADII[np.asarray(atomic_nums, dtype=np.int64)]
    diff = positions[:, None, :] - positions[None, :, :]
    return np.sqrt((diff * diff).sum(-1)) / (radii[:, None] + radii[None, :])


def _xyz_bonds(
    ratios: np.ndarray, num_bonds: int, smiles: str, row: int | None
) -> list[tuple[int, int]]:
    """The ``num_bonds`` closest atom pairs, if they are unambiguously the bonded ones.

    This is distance-based connectivity at whichever covalent-radius factor yields exactly the
    SMILES's bond count: it exists when the longest of these contacts is shorter than the
    shortest remaining one (no tie), within ``BOND_MAX_RATIO``, and no remaining contact is
    shorter than ``BOND_CERTAIN_RATIO``. A single fixed factor cannot serve every molecule:
    strained cages put non-bonded atoms closer (1.15x) than some long bonds (1.29x).
    """

    def fail(detail: str) -> InvalidMoleculeError:
        return InvalidMoleculeError(
            smiles, f"xyz connectivity does not match the SMILES: {detail}", row=row
        )

    first, second = np.triu_indices(ratios.shape[0], k=1)
    pair_ratios = ratios[first, second]
    order = np.argsort(pair_ratios, kind="stable")
    chosen, rest = order[:num_bonds], order[num_bonds:]
    longest = float(pair_ratios[chosen[-1]]) if num_bonds else 0.0
    nearest = float(pair_ratios[rest[0]]) if rest.size else np.inf
    certain = int(np.count_nonzero(pair_ratios < BOND_CERTAIN_RATIO))
    if certain > num_bonds:
        raise fail(
            f"{certain} atom pairs are within {BOND_CERTAIN_RATIO}x their covalent radii "
            f"(bond length), the SMILES has {num_bonds} bonds with hydrogens"
        )
    if longest > BOND_MAX_RATIO:
        possible = int(np.count_nonzero(pair_ratios <= BOND_MAX_RATIO))
        raise fail(
            f"only {possible} atom pairs are within {BOND_MAX_RATIO}x their covalent radii, "
            f"the SMILES has {num_bonds} bonds with hydrogens"
        )
    if longest >= nearest:
        raise fail(
            f"bonded and non-bonded contacts tie at {longest:.3f}x the covalent radii, "
            "so the connectivity is ambiguous"
        )
    return [(int(first[k]), int(second[k])) for k in chosen]


def mol_from_xyz(
    elements: Sequence[str],
    positions: np.ndarray,
    smiles: str,
    *,
    row: int | None = None,
) -> Chem.Mol:
    """Build a molecule from xyz atoms, taking bond orders and charges from a SMILES.

    The xyz connectivity is the set of atom pairs closest relative to their covalent radii,
    as many as the SMILES has bonds (hydrogens included), provided it is unambiguous (see
    ``BOND_CERTAIN_RATIO`` / ``BOND_MAX_RATIO``): a clean gap between the longest bond and the
    closest non-bonded pair. The SMILES graph must then map onto it atom for atom, elements
    included; since the bonded pairs are fixed by the distances, every such mapping yields the
    same connectivity (mappings differ only by the molecule's own symmetry).

    Parameters
    ----------
    elements
        ``[N]`` element symbols, hydrogens included (xyz order).
    positions
        ``[N, 3]`` coordinates in Angstrom.
    smiles
        SMILES of the same molecule (the bond-order template).
    row
        Row index for error messages.

    Returns
    -------
    Chem.Mol
        Sanitized, hydrogens removed, heavy atoms in xyz order with their xyz coordinates as
        conformer 0; stereo tags assigned from the 3D geometry.

    Raises
    ------
    InvalidMoleculeError
        If the SMILES does not parse, the elements differ, or the coordinates do not show the
        SMILES's graph unambiguously (the reason says which test failed): nothing is guessed.
    """
    positions = np.asarray(positions, dtype=np.float64)
    if positions.shape != (len(elements), 3):
        raise ValueError(f"positions {positions.shape} do not match {len(elements)} elements")
    template = Chem.AddHs(parse_smiles(smiles, row=row))
    tpl_atoms = list(map(template.GetAtomWithIdx, range(template.GetNumAtoms())))
    tpl_bonds = list(map(template.GetBondWithIdx, range(template.GetNumBonds())))
    xyz_z = _atomic_numbers(elements, smiles, row)
    if sorted(xyz_z) != sorted(map(_Atom.GetAtomicNum, tpl_atoms)):
        raise InvalidMoleculeError(
            smiles, "xyz elements do not match the SMILES formula (with hydrogens)", row=row
        )
    xyz_bonds = _xyz_bonds(_radius_ratios(xyz_z, positions), len(tpl_bonds), smiles, row)
    # Bonds in xyz atom order, independent of the SMILES: (i, j) with j < i, i ascending, j
    # descending. This is the order RDKit's proximity bonding (DetermineConnectivity, used here
    # before) gave all but 483 of the 124,019 QM9 molecules it could handle, so their graphs
    # keep their edge order and, in symmetric resonance forms such as carboxylates, the same
    # choice of which oxygen carries the charge; the 483 differ in bond order only.
    xyz_bonds = sorted(((b, a) for a, b in xyz_bonds), key=lambda pair: (pair[0], -pair[1]))
    xyz = Chem.RWMol()
    for z in xyz_z:
        atom = Chem.Atom(z)
        atom.SetNoImplicit(True)  # every hydrogen is an explicit xyz atom
        xyz.AddAtom(atom)
    for a, b in xyz_bonds:
        # UNSPECIFIED bonds match any bond type in the substructure search below.
        xyz.AddBond(a, b, Chem.BondType.UNSPECIFIED)

    # Same atom and bond counts + a full substructure match = the two graphs are isomorphic.
    # Atoms match on element (a charged query atom would also demand that charge).
    charged = [atom.GetIdx() for atom in template.GetAtomsMatchingQuery(_CHARGED)]
    query = template
    if charged:
        query = Chem.RWMol(template)
        for index in charged:
            query.GetAtomWithIdx(index).SetFormalCharge(0)
    match = xyz.GetSubstructMatch(query)
    if not match:
        raise InvalidMoleculeError(
            smiles,
            "xyz connectivity does not match the SMILES: the closest atom pairs form a "
            "different graph",
            row=row,
        )

    for index in charged:
        xyz.GetAtomWithIdx(match[index]).SetFormalCharge(tpl_atoms[index].GetFormalCharge())
    for t_atom in template.GetAtomsMatchingQuery(_RADICAL):
        atom = xyz.GetAtomWithIdx(match[t_atom.GetIdx()])
        atom.SetNumRadicalElectrons(t_atom.GetNumRadicalElectrons())
    for t_atom in template.GetAtomsMatchingQuery(_AROMATIC):
        xyz.GetAtomWithIdx(match[t_atom.GetIdx()]).SetIsAromatic(True)
    for t_bond in tpl_bonds:
        bond = xyz.GetBondBetweenAtoms(
            match[t_bond.GetBeginAtomIdx()], match[t_bond.GetEndAtomIdx()]
        )
        bond.SetBondType(t_bond.GetBondType())
        bond.SetIsAromatic(t_bond.GetIsAromatic())
    conf = Chem.Conformer(len(elements))
    conf.SetPositions(positions)
    conf.Set3D(True)
    xyz.AddConformer(conf, assignId=True)
    with rdBase.CaptureErrorLog() as log:
        try:
            Chem.SanitizeMol(xyz)
        except (RuntimeError, ValueError) as err:
            reason = rdkit_messages(log.messages) or str(err)
            raise InvalidMoleculeError(smiles, f"sanitization failed: {reason}", row=row) from err
        # Hydrogens go first: assigned stereo would make RemoveHs keep e.g. an imine N-H.
        mol = Chem.RemoveHs(xyz)
        Chem.AssignStereochemistryFrom3D(mol)
    return mol
