"""Feature schemas: which categorical atom/bond features a graph has, and their vocabularies.

A :class:`FeatureSchema` is named, versioned and JSON-serializable; its :meth:`fingerprint`
is stored with prepared data sets and checkpoints so features and models stay matched.
:data:`OGB_SCHEMA` is ``ogb.utils.features``' encoding (see :mod:`molfm.chem.featurize`).
:func:`compile_schema` turns a schema into the lookup tables the featurizer applies to raw RDKit
values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from rdkit import Chem

__all__ = [
    "MISC",
    "ATOM_FEATURE_NAMES",
    "BOND_FEATURE_NAMES",
    "FeatureSpec",
    "FeatureSchema",
    "OGB_SCHEMA",
    "get_schema",
    "register_schema",
    "LookupTable",
    "compile_schema",
]

MISC = "misc"

# Raw per-atom / per-bond values the extractor produces, in this row order. Enum-valued
# features are listed in schemas by their RDKit names and extracted as the enum's integer.
ATOM_FEATURE_NAMES = (
    "atomic_num",
    "chirality",
    "degree",
    "formal_charge",
    "num_hs",
    "num_radical_electrons",
    "hybridization",
    "is_aromatic",
    "is_in_ring",
)
BOND_FEATURE_NAMES = ("bond_type", "bond_stereo", "is_conjugated")
_ENUMS: dict[str, Any] = {
    "chirality": Chem.rdchem.ChiralType,
    "hybridization": Chem.rdchem.HybridizationType,
    "bond_type": Chem.rdchem.BondType,
    "bond_stereo": Chem.rdchem.BondStereo,
}


@dataclass(frozen=True)
class FeatureSpec:
    """One categorical feature: its name and its vocabulary (index = position in ``values``).

    ``values`` holds JSON-serializable entries: ints, bools, RDKit enum names as strings, and
    optionally the string ``"misc"``. Values outside the vocabulary map to the last index.
    """

    name: str
    values: tuple

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "values": list(self.values)}


@dataclass(frozen=True)
class FeatureSchema:
    """A named, versioned set of atom and bond features; stored in checkpoints and caches."""

    name: str
    version: int
    atom_features: tuple[FeatureSpec, ...]
    bond_features: tuple[FeatureSpec, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "atom_features": [spec.to_dict() for spec in self.atom_features],
            "bond_features": [spec.to_dict() for spec in self.bond_features],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureSchema:
        def specs(items: Any) -> tuple[FeatureSpec, ...]:
            return tuple(FeatureSpec(str(i["name"]), tuple(i["values"])) for i in items)

        return cls(
            name=str(d["name"]),
            version=int(d["version"]),
            atom_features=specs(d["atom_features"]),
            bond_features=specs(d["bond_features"]),
        )

    @property
    def atom_dims(self) -> list[int]:
        """Vocabulary size per atom feature (misc bucket included), e.g. for ``AtomEncoder``."""
        return [len(spec.values) for spec in self.atom_features]

    @property
    def bond_dims(self) -> list[int]:
        """Vocabulary size per bond feature (misc bucket included)."""
        return [len(spec.values) for spec in self.bond_features]

    def fingerprint(self) -> str:
        """First 16 hex digits of the sha256 of the canonical JSON of :meth:`to_dict`."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


OGB_SCHEMA = FeatureSchema(
    name="ogb",
    version=1,
    atom_features=(
        FeatureSpec("atomic_num", (*range(1, 119), MISC)),
        FeatureSpec(
            "chirality",
            ("CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW", "CHI_OTHER", MISC),
        ),
        FeatureSpec("degree", (*range(0, 11), MISC)),
        FeatureSpec("formal_charge", (*range(-5, 6), MISC)),
        FeatureSpec("num_hs", (*range(0, 9), MISC)),
        FeatureSpec("num_radical_electrons", (*range(0, 5), MISC)),
        FeatureSpec("hybridization", ("SP", "SP2", "SP3", "SP3D", "SP3D2", MISC)),
        FeatureSpec("is_aromatic", (False, True)),
        FeatureSpec("is_in_ring", (False, True)),
    ),
    bond_features=(
        FeatureSpec("bond_type", ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC", MISC)),
        FeatureSpec(
            "bond_stereo",
            ("STEREONONE", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS", "STEREOANY"),
        ),
        FeatureSpec("is_conjugated", (False, True)),
    ),
)

_REGISTRY: dict[str, FeatureSchema] = {"ogb": OGB_SCHEMA, "ogb@1": OGB_SCHEMA}


def register_schema(schema: FeatureSchema, *aliases: str) -> None:
    """Make ``schema`` available to :func:`get_schema` as ``name``, ``name@version`` and aliases."""
    compile_schema(schema)  # fail now, not at the first featurization, on unknown features
    for key in (schema.name, f"{schema.name}@{schema.version}", *aliases):
        _REGISTRY[key] = schema


def get_schema(name: str) -> FeatureSchema:
    """Look up a registered schema by name (``"ogb"``) or ``name@version`` (``"ogb@1"``)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown feature schema {name!r}; known: {known}") from None


@dataclass(frozen=True)
class LookupTable:
    """Raw values of several features -> vocabulary indices in one lookup.

    Row ``f`` of a feature-major raw ``[R, K]`` matrix is looked up at
    ``flat[clip(raw + shift[f])]``, clipped to the feature's block ``[lower[f], upper[f]]``.
    The first and last slot of every block hold the feature's misc index, so values outside
    the vocabulary's range land there.
    """

    rows: np.ndarray | None  # extractor rows the schema uses; None = all, in order
    shift: np.ndarray  # [F, 1]
    lower: np.ndarray  # [F, 1]
    upper: np.ndarray  # [F, 1]
    flat: np.ndarray

    def lookup(self, raw: np.ndarray) -> np.ndarray:
        """Map raw ``[R, K]`` values (one row per extractor feature) to ``[K, F]`` indices."""
        if self.rows is not None:
            raw = raw[self.rows]
        local = raw + self.shift
        np.maximum(local, self.lower, out=local)  # two ufuncs: np.clip's wrapper costs more
        np.minimum(local, self.upper, out=local)
        return self.flat.take(local.T)


def _raw_key(feature: str, value: Any) -> int | None:
    """Integer the extractor produces for a vocabulary entry; ``None`` for misc entries."""
    if isinstance(value, str):
        enum = _ENUMS.get(feature)
        if enum is None or value not in enum.names:
            return None
        return int(enum.names[value])
    return int(value)


def _build_table(specs: tuple[FeatureSpec, ...], known: tuple[str, ...]) -> LookupTable:
    unknown = [spec.name for spec in specs if spec.name not in known]
    if unknown:
        raise ValueError(f"no extractor for features {unknown}; known: {list(known)}")
    blocks, shifts, lowers = [], [], []
    start = 0
    for spec in specs:
        keys = {i: _raw_key(spec.name, v) for i, v in enumerate(spec.values)}
        valid = {i: k for i, k in keys.items() if k is not None}
        low = min(valid.values(), default=0)
        high = max(valid.values(), default=0)
        block = np.full(high - low + 3, len(spec.values) - 1, dtype=np.int64)  # all misc
        for index, key in sorted(valid.items(), reverse=True):  # first occurrence wins
            block[key - low + 1] = index
        blocks.append(block)
        shifts.append(start - low + 1)
        lowers.append(start)
        start += len(block)
    rows = np.array([known.index(spec.name) for spec in specs], dtype=np.int64)
    lower = np.array(lowers, dtype=np.int64)[:, None]
    return LookupTable(
        rows=None if rows.tolist() == list(range(len(known))) else rows,
        shift=np.array(shifts, dtype=np.int64)[:, None],
        lower=lower,
        upper=lower + np.array([len(b) - 1 for b in blocks], dtype=np.int64)[:, None],
        flat=np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int64),
    )


# Keyed by id() with the schema kept alive in the value: hashing a schema (a 119-entry
# vocabulary) on every call would cost more than the lookup it saves.
_COMPILED: dict[int, tuple[FeatureSchema, LookupTable, LookupTable]] = {}


def compile_schema(schema: FeatureSchema) -> tuple[LookupTable, LookupTable]:
    """Atom and bond lookup tables for ``schema`` (cached per schema object).

    Raises
    ------
    ValueError
        If the schema names a feature that has no extractor.
    """
    entry = _COMPILED.get(id(schema))
    if entry is None or entry[0] is not schema:
        atom_table = _build_table(schema.atom_features, ATOM_FEATURE_NAMES)
        bond_table = _build_table(schema.bond_features, BOND_FEATURE_NAMES)
        if len(_COMPILED) >= 64:
            _COMPILED.clear()
        entry = _COMPILED[id(schema)] = (schema, atom_table, bond_table)
    return entry[1], entry[2]
