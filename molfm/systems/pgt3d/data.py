"""Pretraining data for 3D-PGT: the geometry targets of every molecule, computed once and cached
next to the prepared dataset, and batches that carry them.

:func:`geometry_target_cache` runs :func:`molfm.chem.geometry.geometry_targets_from_positions` over
every molecule of a prepared dataset with coordinates (QM9's DFT geometries, an SDF, or RDKit
conformers from ``molfm data prepare --conformers``) and stores flat arrays aligned with the
:class:`~molfm.data.dataset.GraphStore` (bond targets in bond order, atom targets in atom order).
An epoch never recomputes them.

A batch is a :class:`PretrainBatch`: its ``graph`` is a PyG ``Batch`` (what GPS/GINE read) with::

    bond_length    float [M]   Angstrom, one per bond (bond b = directed edges 2b, 2b+1)
    angle_cos_sum  float [N]   sum of cos(angle) over the bond angles centred on each atom
    dihedral_sum   float [M]   sum of sin*sin*cos(dihedral) over the torsions around each bond
    energy         float [B]   the total-energy surrogate (QM9: U0), NaN where missing
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch_geometric.data import Batch, Data

from molfm.atomic import atomic_write_text, atomic_writer
from molfm.chem.geometry import geometry_targets_from_positions
from molfm.data.dataset import GraphStore, MolDataModule
from molfm.data.samplers import seeded_loader

__all__ = [
    "TARGETS",
    "GeometryTargetArrays",
    "geometry_target_cache",
    "PretrainBatch",
    "PretrainDataset",
    "collate_pretrain",
    "PretrainDataModule",
    "NUM_HS",
    "energy_reference",
    "target_stats",
]

TARGETS = ("bond_length", "angle_cos_sum", "dihedral_sum")
"""The three pretext targets, in the order task weights are given."""
NUM_HS = 4
"""Column of the hydrogen count in OGB atom features (its id is the count)."""
CACHE_VERSION = 1


@dataclass
class GeometryTargetArrays:
    """Flat per-bond / per-atom targets of a whole dataset, aligned with its GraphStore."""

    bond_length: np.ndarray  # [total_bonds]
    angle_cos_sum: np.ndarray  # [total_atoms]
    dihedral_sum: np.ndarray  # [total_bonds]
    seconds_per_molecule: float


def geometry_target_cache(store: GraphStore, cache_dir: Path) -> GeometryTargetArrays:
    """The geometry targets of every molecule in ``store``, computed once into
    ``cache_dir/geometry_targets.npz`` (with the time it took per molecule)."""
    if store.pos is None:
        raise ValueError(
            "3D-PGT pretraining needs coordinates: use a data set with 3D (qm9, an SDF) or "
            "prepare SMILES data with --conformers"
        )
    path = cache_dir / "geometry_targets.npz"
    meta_path = cache_dir / "geometry_targets.json"
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("version") == CACHE_VERSION and meta.get("n") == len(store):
            with np.load(path) as arrays:
                return GeometryTargetArrays(
                    **{k: arrays[k] for k in TARGETS},
                    seconds_per_molecule=meta["seconds_per_molecule"],
                )
    total_bonds = (store.edge_ptr[-1]) // 2
    bond_length = np.empty(total_bonds, np.float32)
    dihedral = np.empty(total_bonds, np.float32)
    angle = np.empty(store.node_ptr[-1], np.float32)
    start = time.perf_counter()
    for i in range(len(store)):
        a, b = store.node_ptr[i], store.node_ptr[i + 1]
        c, d = store.edge_ptr[i], store.edge_ptr[i + 1]
        bonds = store.edge_index[:, c:d:2].T
        try:
            targets = geometry_targets_from_positions(store.pos[a:b], bonds, num_atoms=int(b - a))
        except ValueError as err:  # e.g. two bonded atoms at the same position
            raise ValueError(f"row {store.rows[i]}: {store.smiles[i]!r}: {err}") from None
        bond_length[c // 2 : d // 2] = targets.bond_length
        dihedral[c // 2 : d // 2] = targets.dihedral_sum
        angle[a:b] = targets.angle_cos_sum
    per_molecule = (time.perf_counter() - start) / max(1, len(store))
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as tmp:
        np.savez(tmp, bond_length=bond_length, angle_cos_sum=angle, dihedral_sum=dihedral)
    meta = {"version": CACHE_VERSION, "n": len(store), "seconds_per_molecule": per_molecule}
    atomic_write_text(meta_path, json.dumps(meta))
    return GeometryTargetArrays(bond_length, angle, dihedral, per_molecule)


@dataclass
class PretrainBatch:
    """A batch of molecules with their geometry targets (see the module docstring)."""

    graph: Batch

    def to(self, device: torch.device | str) -> PretrainBatch:
        return PretrainBatch(self.graph.to(device))

    def __len__(self) -> int:
        return int(self.graph.num_graphs)

    @property
    def bonds(self) -> torch.Tensor:
        """``[2, M]`` atom pairs of every bond of the batch (global node indices)."""
        return self.graph.edge_index[:, 0::2]


class PretrainDataset(Dataset):
    """Molecules of a :class:`GraphStore` (by index) with their geometry targets."""

    def __init__(
        self,
        store: GraphStore,
        targets: GeometryTargetArrays,
        indices: Sequence[int] | np.ndarray,
        energy_column: str | None,
    ) -> None:
        self.store, self.targets = store, targets
        self.indices = np.asarray(indices)
        self.energy = None
        if energy_column is not None:
            self.energy = store.y[:, store.target_columns.index(energy_column)]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Data:
        index = int(self.indices[i])
        store = self.store
        a, b = store.node_ptr[index], store.node_ptr[index + 1]
        c, d = store.edge_ptr[index] // 2, store.edge_ptr[index + 1] // 2
        energy = np.nan if self.energy is None else float(self.energy[index])
        data = Data(
            x=torch.from_numpy(store.x[a:b]),
            edge_index=torch.from_numpy(store.edge_index[:, 2 * c : 2 * d]),
            edge_attr=torch.from_numpy(store.edge_attr[2 * c : 2 * d]),
            angle_cos_sum=torch.from_numpy(self.targets.angle_cos_sum[a:b]),
            energy=torch.tensor([energy], dtype=torch.float64),
        )
        # bond-level attributes: named with "bond_" / "dihedral_" and concatenated like any
        # tensor; their order follows edge_index[:, 0::2] in the batch
        data.bond_length = torch.from_numpy(self.targets.bond_length[c:d])
        data.dihedral_sum = torch.from_numpy(self.targets.dihedral_sum[c:d])
        data.num_nodes = int(b - a)
        return data


def collate_pretrain(items: list[Data]) -> PretrainBatch:
    return PretrainBatch(Batch.from_data_list(items))


class PretrainDataModule(MolDataModule):
    """Seeded, resumable loaders of :class:`PretrainBatch` es over a prepared 3D dataset.

    The split's ``train`` part is pretrained on; ``val`` is the held-out set whose total
    energy guides the task-weight search and scores the representation.
    """

    def __init__(self, *args, energy_column: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.energy_column = energy_column
        self.targets: GeometryTargetArrays | None = None

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if self.targets is None:
            self.targets = geometry_target_cache(self.store, self.dataset.path)

    def part_dataset(self, part: str) -> PretrainDataset:
        return PretrainDataset(
            self.store, self.targets, getattr(self.split, part), self.energy_column
        )

    def _pretrain_loader(self, part: str, shuffle: bool) -> DataLoader:
        return seeded_loader(
            self.part_dataset(part),
            batch_size=self.batch_size,
            shuffle=shuffle,
            collate_fn=collate_pretrain,
            seed=self.data_seed,
            num_workers=self.num_workers,
            trainer=getattr(self, "trainer", None),
        )

    def train_dataloader(self) -> DataLoader:
        return self._pretrain_loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._pretrain_loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._pretrain_loader("test", shuffle=False)


def target_stats(data: PretrainDataModule, train: np.ndarray) -> dict[str, tuple[float, float]]:
    """Mean/std of each geometry target over the training molecules' atoms or bonds, and of the
    squared bond length (``"bond_length_squared"``, the official bond head's target)."""
    store, targets = data.store, data.targets
    node_counts, bond_counts = np.diff(store.node_ptr), np.diff(store.edge_ptr) // 2
    in_train = np.zeros(len(store), dtype=bool)
    in_train[train] = True
    node_mask, bond_mask = np.repeat(in_train, node_counts), np.repeat(in_train, bond_counts)
    out = {}
    for name in TARGETS:
        values = getattr(targets, name)
        values = values[node_mask if name == "angle_cos_sum" else bond_mask]
        out[name] = (float(values.mean()), float(values.std() or 1.0))
    squared = targets.bond_length[bond_mask] ** 2  # what the official bond head predicts
    out["bond_length_squared"] = (float(squared.mean()), float(squared.std() or 1.0))
    return out


def energy_reference(
    x: np.ndarray, node_ptr: np.ndarray, energy: np.ndarray, indices: np.ndarray
) -> tuple[np.ndarray, float, float]:
    """Least-squares reference energies per heavy-atom type and per hydrogen.

    Parameters
    ----------
    x
        ``[total_atoms, F]`` OGB atom feature ids (column 0: element, column ``NUM_HS``: the
        atom's hydrogen count, which the heavy-atom graph does not hold as atoms).
    node_ptr, energy, indices
        Per-molecule atom offsets, energies, and the molecules to fit on.

    Returns
    -------
    The reference (one value per element id, then one per hydrogen) and the mean and std of the
    residual ``E - reference`` over ``indices`` (what the structure, not the atom count, explains).
    """
    n_types = int(x[:, 0].max()) + 1
    n_molecules = len(node_ptr) - 1
    molecule = np.repeat(np.arange(n_molecules), np.diff(node_ptr))
    counts = np.zeros((n_molecules, n_types + 1))
    np.add.at(counts, (molecule, x[:, 0]), 1.0)
    np.add.at(counts[:, -1], molecule, x[:, NUM_HS].astype(float))
    known = indices[np.isfinite(energy[indices])]
    coef, *_ = np.linalg.lstsq(counts[known], energy[known], rcond=None)
    residual = energy[known] - counts[known] @ coef
    std = float(residual.std())
    return coef, float(residual.mean()), std if std > 1e-8 else 1.0  # nothing left: no scaling
