"""Precomputed reference statistics for the MOSES metrics (test and scaffold-test sets).

A :class:`MosesReference` holds what the metrics need from a reference set: ChemNet mean and
covariance (FCD), Morgan fingerprints (SNN), BRICS fragment counts (Frag), Murcko scaffold
counts (Scaf) and property values (logP, SA, QED, weight). It is built from SMILES
(:func:`compute_reference`), saved to / loaded from a pickle-free ``.npz``, or loaded for the
two MOSES reference sets with :meth:`MosesReference.load`:

``source="molsets"`` (default)
    The statistics MOSES published in the molsets 0.3.1 wheel
    (``moses/dataset/data/{subset}_stats.npz``), i.e. the numbers behind the MOSES paper. That
    file is a pickled dict; it is read by :func:`molfm.data.sources.moses.raw_reference_stats`
    with an unpickler that accepts only numpy arrays and dtypes, ``codecs.encode`` and
    ``collections.Counter`` (nothing else can be constructed), converted once, and cached as a
    plain ``.npz`` under ``molfm.data.fetch.cache_dir() / "moses"``.
``source="smiles"``
    Recomputed from the set's SMILES in the same wheel with the installed RDKit and ChemNet,
    then cached. Slow: ChemNet alone needs ~9 ms per molecule on one CPU core (about half an
    hour for 176k molecules), a minute or so on a GPU.

The published statistics are compatible with this implementation: the ChemNet weights in the
``fcd`` package are tensor-identical to fcd_torch's and the encodings agree (mean activations
of 5,000 freshly encoded test molecules sit within sampling noise of the published mean), and
with RDKit 2026.09 fingerprints, fragments, scaffolds and properties match MOSES's rows except
for a handful (<= 8 of 176k) of fused heteroaromatics whose aromaticity perception changed.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import rdkit

from molfm.atomic import atomic_writer
from molfm.chem.parse import mol_or_none
from molfm.data.fetch import cache_dir
from molfm.data.sources.moses import MosesSource, raw_reference_stats
from molfm.eval.chemnet import fcd_statistics
from molfm.eval.fingerprints import MOSES_MORGAN_BITS, PackedFingerprints
from molfm.eval.moses_features import PROPERTIES, set_features

__all__ = ["MosesReference", "compute_reference", "read_molsets_stats", "SUBSETS"]

SUBSETS = ("test", "test_scaffolds")
FORMAT_VERSION = 1


@dataclass
class MosesReference:
    """Reference-set statistics for the MOSES distribution metrics.

    Attributes
    ----------
    fcd_mu, fcd_sigma
        Mean ``(512,)`` and covariance ``(512, 512)`` of ChemNet activations.
    fingerprints
        Morgan r=2 1024-bit fingerprints of every reference molecule (bit-packed).
    fragments, scaffolds
        BRICS fragment and (>= 2-ring) Murcko scaffold SMILES -> count.
    properties
        ``"logP"``, ``"SA"``, ``"QED"``, ``"weight"`` -> one value per molecule.
    provenance
        Free text: where the statistics came from.
    """

    fcd_mu: np.ndarray
    fcd_sigma: np.ndarray
    fingerprints: PackedFingerprints
    fragments: Counter[str]
    scaffolds: Counter[str]
    properties: dict[str, np.ndarray]
    provenance: str = field(default="")

    def __len__(self) -> int:
        return len(self.fingerprints)

    @classmethod
    def from_smiles(
        cls,
        smiles: Sequence[str],
        *,
        n_jobs: int = 1,
        device: str = "cpu",
        batch_size: int = 512,
    ) -> MosesReference:
        """Compute the statistics of a reference set (see :func:`compute_reference`)."""
        return compute_reference(smiles, n_jobs=n_jobs, device=device, batch_size=batch_size)

    @classmethod
    def load(
        cls,
        subset: Literal["test", "test_scaffolds"] = "test",
        *,
        source: Literal["molsets", "smiles"] = "molsets",
        n_jobs: int = 1,
        device: str = "cpu",
        batch_size: int = 512,
        cache: Path | None = None,
    ) -> MosesReference:
        """Statistics of a MOSES reference set, cached after the first call.

        Parameters
        ----------
        subset
            ``"test"`` (176,074 molecules) or ``"test_scaffolds"`` (176,225).
        source
            ``"molsets"``: MOSES's published statistics; ``"smiles"``: recomputed here.
        n_jobs, device, batch_size
            Used only when recomputing.
        cache
            Cache folder; defaults to ``cache_dir() / "moses"``.
        """
        if subset not in SUBSETS:
            raise ValueError(f"unknown MOSES subset {subset!r}; choose from {SUBSETS}")
        folder = Path(cache) if cache is not None else cache_dir() / "moses"
        if source == "molsets":
            tag = "molsets-0.3.1"
        elif source == "smiles":
            tag = f"rdkit-{rdkit.__version__}"
        else:
            raise ValueError(f"source must be 'molsets' or 'smiles', got {source!r}")
        path = folder / f"{subset}_reference_{tag}_v{FORMAT_VERSION}.npz"
        if path.exists():
            return cls.load_file(path)
        if source == "molsets":
            ref = read_molsets_stats(subset)
        else:
            ref = compute_reference(
                _molsets_smiles(subset), n_jobs=n_jobs, device=device, batch_size=batch_size
            )
            ref.provenance = (
                f"recomputed from molsets 0.3.1 {subset}.csv.gz with RDKit {rdkit.__version__}"
            )
        ref.save(path)
        return ref

    def save(self, path: str | Path) -> None:
        """Write a compressed, pickle-free ``.npz`` (atomically: temp file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "format_version": np.array(FORMAT_VERSION),
            "provenance": np.array(self.provenance),
            "fcd_mu": np.asarray(self.fcd_mu),
            "fcd_sigma": np.asarray(self.fcd_sigma),
            "fingerprints_packed": self.fingerprints.packed,
            "fingerprint_bits": np.array(self.fingerprints.n_bits),
        }
        for name, counts in (("fragments", self.fragments), ("scaffolds", self.scaffolds)):
            keys = sorted(counts)
            arrays[f"{name}_smiles"] = np.array(keys, dtype=np.str_)
            arrays[f"{name}_counts"] = np.array([counts[k] for k in keys], dtype=np.int64)
        for name, values in self.properties.items():
            arrays[f"property_{name}"] = np.asarray(values, dtype=np.float64)
        with atomic_writer(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    @classmethod
    def load_file(cls, path: str | Path) -> MosesReference:
        """Read a file written by :meth:`save` (no pickle is ever loaded)."""
        with np.load(Path(path), allow_pickle=False) as data:
            version = int(data["format_version"])
            if version != FORMAT_VERSION:
                raise ValueError(f"{path}: format version {version}, expected {FORMAT_VERSION}")
            counts = {
                name: Counter(
                    dict(
                        zip(
                            data[f"{name}_smiles"].tolist(),
                            data[f"{name}_counts"].tolist(),
                            strict=True,
                        )
                    )
                )
                for name in ("fragments", "scaffolds")
            }
            return cls(
                fcd_mu=data["fcd_mu"],
                fcd_sigma=data["fcd_sigma"],
                fingerprints=PackedFingerprints(
                    data["fingerprints_packed"], int(data["fingerprint_bits"])
                ),
                fragments=counts["fragments"],
                scaffolds=counts["scaffolds"],
                properties={name: data[f"property_{name}"] for name in PROPERTIES},
                provenance=str(data["provenance"]),
            )


def compute_reference(
    smiles: Sequence[str],
    *,
    n_jobs: int = 1,
    device: str = "cpu",
    batch_size: int = 512,
) -> MosesReference:
    """Compute :class:`MosesReference` statistics from reference SMILES.

    As MOSES's ``compute_intermediate_statistics``: descriptors are computed on the molecules
    as given (no deduplication); FCD statistics on their canonical SMILES. Invalid SMILES are
    dropped with a warning (MOSES would fail on them).

    Raises
    ------
    ValueError
        If fewer than two SMILES are valid.
    """
    valid = [s for s in smiles if mol_or_none(s) is not None]
    if len(valid) < len(smiles):
        warnings.warn(
            f"compute_reference: dropped {len(smiles) - len(valid)} invalid SMILES", stacklevel=2
        )
    if len(valid) < 2:
        raise ValueError("a MOSES reference needs at least 2 valid molecules")
    feats = set_features(valid, with_filters=False, n_jobs=n_jobs)
    stats = fcd_statistics(valid, canonize=True, batch_size=batch_size, device=device)
    assert stats is not None
    return MosesReference(
        fcd_mu=stats[0],
        fcd_sigma=stats[1],
        fingerprints=feats.fingerprints,
        fragments=feats.fragments,
        scaffolds=feats.scaffolds,
        properties=feats.properties,
        provenance=f"computed from {len(valid)} SMILES with RDKit {rdkit.__version__}",
    )


def _molsets_smiles(subset: str) -> list[str]:
    return MosesSource().load(subset)["smiles"].tolist()


def read_molsets_stats(subset: str) -> MosesReference:
    """Convert MOSES's published ``{subset}_stats.npz`` (a pickled dict) without trusting it."""
    stats = raw_reference_stats(subset)
    fps = np.asarray(stats["SNN"]["fps"], dtype=np.uint8)
    if fps.shape[1] != MOSES_MORGAN_BITS:
        raise ValueError(f"unexpected fingerprint width {fps.shape[1]}")
    return MosesReference(
        fcd_mu=np.asarray(stats["FCD"]["mu"]),
        fcd_sigma=np.asarray(stats["FCD"]["sigma"]),
        fingerprints=PackedFingerprints.from_bits(fps),
        fragments=Counter(stats["Frag"]["frag"]),
        scaffolds=Counter(stats["Scaf"]["scaf"]),
        properties={
            name: np.asarray(stats[name]["values"], dtype=np.float64) for name in PROPERTIES
        },
        provenance=f"molsets 0.3.1 moses/dataset/data/{subset}_stats.npz (published MOSES statistics)",
    )
