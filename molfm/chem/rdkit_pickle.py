"""The atom and bond values of OGB features, read from RDKit's binary molecule format.

Why: exact OGB features need about five values per atom and five per bond. Through RDKit's
Python API each is a Boost.Python call (0.15-0.5 us), so a featurizer built on getters is bound
by call overhead. ``Mol.ToBinary()`` writes every one of those values in a single C++ call
(about 17 us for a 22-atom MOSES molecule), and a molecule's atoms come from few distinct records
(an aromatic CH is always the same 9 bytes), so each distinct atom or bond record is decoded
once per process and afterwards found by its bytes in a dict.

RDKit's format (``MolPickler``, versions 16.1-16.4, unchanged in these parts since RDKit
2024.03), little-endian, for a molecule of at most 255 atoms:

=========  ======================================================================================
header     int32 0xDEADBEEF, int32 0, int32 major, minor, patch version (bytes 0-19)
counts     int32 atoms, int32 bonds, uint8 0x80, uint8 ``BEGINATOM`` (bytes 20-29)
atom       uint8 atomic number; uint8 flags (aromatic 0x40, no implicit Hs 0x20, query 0x10, map
           number 0x08, dummy label 0x04, monomer info 0x02); int32 property flags; one byte
           for each property flag bit 1-7 that is set (formal charge, chiral tag,
           hybridization when not SP3, explicit Hs, explicit valence, implicit valence,
           radical electrons); four bytes if bit 8 (isotope)
tag        uint8 ``BEGINBOND``
bond       uint8 begin, uint8 end; uint8 flags (aromatic 0x40, conjugated 0x20, query 0x10, not
           single 0x08, direction 0x04, stereo 0x02, attachment points 0x01); then the bond
           type if 0x08, the direction if 0x04, and if 0x02 the stereo, the number of stereo
           atoms and their indices
rings      uint8 ring tag, uint32 number of rings; per ring uint8 size and its atom indices
=========  ======================================================================================

:func:`read_raw_arrays` returns ``None`` for anything outside that: another format version, more
than 255 atoms (indices become int32), query atoms or bonds, atom map numbers, dummy labels,
monomer info, isotopes, attachment points or no ring information. The featurizer then uses
RDKit's getters, which stay the reference: tests compare both on every fixture molecule.
"""

from __future__ import annotations

import struct

import numpy as np
from rdkit import Chem

__all__ = ["read_raw_arrays", "pickle_version", "SUPPORTED_VERSIONS"]

SUPPORTED_VERSIONS = {(16, 1), (16, 2), (16, 3), (16, 4)}

_BEGINATOM, _BEGINBOND = 1, 11
_RING_TAGS = {20, 66, 67, 68}  # BEGINSSSR, BEGINSYMMSSSR, BEGINFASTFIND, BEGINFINDOTHERORUNKNOWN
_SP3 = int(Chem.HybridizationType.SP3)
_SINGLE = int(Chem.BondType.SINGLE)
_HEAD = struct.Struct("<iiiii")  # endian id, 0, major, minor, patch
_COUNTS = struct.Struct("<iiBB")
_RING_COUNT = struct.Struct("<BI")

# Length of an atom record from its property-flag byte (bits 1-7; bit 8 is refused on decode).
_ATOM_LENGTH = [6 + bin(flags & 0xFE).count("1") for flags in range(256)]
# Length of a bond record from its flag byte, up to and including the stereo-atom count.
_BOND_LENGTH = [3 + (f >> 3 & 1) + (f >> 2 & 1) + 2 * (f >> 1 & 1) for f in range(256)]
_CACHE_LIMIT = 1 << 16
# Coordinates come after the rings and are not needed; properties are off by default.
_NO_CONFORMERS = int(Chem.PropertyPickleOptions.NoConformers)


class _Unsupported(Exception):
    """A record this reader does not decode; the caller falls back to RDKit's getters."""


def pickle_version(mol: Chem.Mol) -> tuple[int, int]:
    """``(major, minor)`` of the binary format this RDKit writes."""
    _, _, major, minor, _ = _HEAD.unpack_from(mol.ToBinary(), 0)
    return major, minor


class _Decoded(dict):
    """Record bytes -> the record's raw values as int64 bytes, decoded on first sight.

    Values are kept as bytes so that a molecule's rows are one ``b"".join`` and one
    ``np.frombuffer`` away; ``map(cache.__getitem__, records)`` runs at C level and calls
    ``__missing__`` only for records not seen before.
    """

    def __init__(self, decode) -> None:
        super().__init__()
        self.decode = decode

    def __missing__(self, record: bytes) -> bytes:
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        value = self[record] = np.array(self.decode(record), dtype=np.int64).tobytes()
        return value


def _decode_atom(record: bytes) -> tuple[int, ...]:
    """Raw values of one atom record, in ``ATOM_FEATURE_NAMES`` order; the degree holds the
    hydrogens (bonds are added later) and the ring flag 0 (set from the ring section)."""
    atomic_num, flags, prop_flags = struct.unpack_from("<BBi", record, 0)
    if flags & 0x1E or prop_flags & ~0xFE:
        raise _Unsupported
    values, at = {}, 6
    for bit in range(1, 8):
        if prop_flags >> bit & 1:
            values[bit] = record[at]
            at += 1
    charge = values.get(1, 0)
    charge = charge - 256 if charge > 127 else charge
    implicit = 0 if flags & 0x20 else values.get(6, 0)
    hydrogens = values.get(4, 0) + implicit
    return (
        atomic_num,
        values.get(2, 0),  # chiral tag
        hydrogens,  # degree: explicit neighbours are added from the bonds
        charge,
        hydrogens,  # GetTotalNumHs(): explicit + implicit, not counting H atoms in the graph
        values.get(7, 0),  # radical electrons
        values.get(3, _SP3),  # hybridization (SP3 is not written)
        flags >> 6 & 1,  # aromatic
        0,  # in ring
    )


def _decode_bond(key: bytes) -> tuple[int, int, int]:
    """Raw (type, stereo, conjugated) of a bond record without its two atom indices."""
    flags, at = key[0], 1
    if flags & 0x11:
        raise _Unsupported
    bond_type, stereo = _SINGLE, 0
    if flags & 0x08:
        bond_type, at = key[at], at + 1
    if flags & 0x04:
        at += 1  # bond direction: not an OGB feature
    if flags & 0x02:
        stereo = key[at]
    return bond_type, stereo, flags >> 5 & 1


_atoms = _Decoded(_decode_atom)
_bonds = _Decoded(_decode_bond)


def read_raw_arrays(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Raw atom values ``[9, N]``, raw bond values ``[3, M]`` and bond ends ``[2, M]`` (int64),
    as ``featurize``'s getter path returns them, or ``None`` if the molecule's binary form holds
    something this reader does not decode."""
    data = mol.ToBinary(_NO_CONFORMERS)
    if _HEAD.unpack_from(data, 0)[2:4] not in SUPPORTED_VERSIONS:
        return None
    n, m, mol_flags, tag = _COUNTS.unpack_from(data, 20)
    if n > 255 or mol_flags != 0x80 or tag != _BEGINATOM:
        return None
    try:
        return _read(data, n, m)
    except (_Unsupported, IndexError, struct.error):
        return None


def _read(data: bytes, n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    at, atoms = 30, [b""] * n
    for i in range(n):
        end = at + _ATOM_LENGTH[data[at + 2]]
        atoms[i] = data[at:end]
        at = end
    if data[at] != _BEGINBOND:
        raise _Unsupported
    at += 1
    bonds, ends = [b""] * m, [b""] * m
    for j in range(m):
        flags = data[at + 2]
        end = at + _BOND_LENGTH[flags]
        ends[j], bonds[j] = data[at : at + 2], data[at + 2 : end]
        at = end + (data[end - 1] if flags & 0x02 else 0)  # skip the stereo atoms
    ring_tag, n_rings = _RING_COUNT.unpack_from(data, at)
    if ring_tag not in _RING_TAGS:
        raise _Unsupported  # no ring information to read IsInRing from
    at += 5
    ring_atoms = []
    for _ in range(n_rings):
        size = data[at]
        ring_atoms.append(data[at + 1 : at + 1 + size])
        at += 1 + size

    # [N, 9] atom-major rows; returned transposed (a view), as the lookup wants features first
    atom_raw = np.frombuffer(bytearray(b"".join(map(_atoms.__getitem__, atoms))), np.int64)
    atom_raw = atom_raw.reshape(n, 9)
    atom_raw[np.frombuffer(b"".join(ring_atoms), np.uint8), 8] = 1
    bond_ends = np.frombuffer(b"".join(ends), np.uint8).reshape(m, 2).T.astype(np.int64)
    atom_raw[:, 2] += np.bincount(bond_ends.ravel(), minlength=n)
    bond_raw = np.frombuffer(b"".join(map(_bonds.__getitem__, bonds)), np.int64)
    return atom_raw.T, bond_raw.reshape(m, 3).T, bond_ends
