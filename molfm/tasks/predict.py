"""Predict properties for a user file with a trained property model (``molfm predict``).

Inputs: a CSV of SMILES (2D; ``conformers=True`` adds RDKit ETKDG coordinates so 3D-capable
models use their 3D channel) or an SDF (3D from its coordinates, in canonical atom order;
flat records, not marked 3D or with every z = 0, count as 2D, or get RDKit coordinates with
``conformers=True``). Rows come back in input order. A row that cannot be read follows
``on_invalid`` (``error`` raises naming the row, ``skip`` lists it in the returned rejected
rows). A molecule with an element or a size never seen in training is predicted but flagged in
``out_of_domain`` with the reason, so no extrapolation passes silently.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Data

from molfm.chem.conformers import ConformerOptions, generate_conformer, generate_conformers
from molfm.chem.featurize import FEATURIZE_BLOCK, mol_to_data
from molfm.chem.io import flat_records_message, read_sdf, sdf_molecule
from molfm.chem.parse import InvalidMoleculeError, canonical_smiles, parse_smiles
from molfm.data.dense import DenseGraphDataset, collate_dense
from molfm.data.sources.base import coordinates_error
from molfm.data.sources.user import read_user_table
from molfm.hub import from_pretrained, resolve_checkpoint
from molfm.tasks.property import PropertyModel

__all__ = [
    "PredictResult",
    "load_property_model",
    "read_molecules",
    "featurize_smiles",
    "featurize_sdf_records",
    "predict_graphs",
    "prediction_frame",
    "domain_reason",
    "predict_file",
]


@dataclass
class PredictResult:
    predictions: pd.DataFrame  # one row per readable input row, in input order
    rejected: pd.DataFrame  # row, smiles, reason
    invalid_path: Path | None = None  # where :func:`predict` listed the rejected rows


def load_property_model(
    name_or_dir: str | Path, device: str | torch.device = "cpu"
) -> PropertyModel:
    """A property model from a shipped name or a checkpoint directory (one-line errors)."""
    path = resolve_checkpoint(name_or_dir)
    model = from_pretrained(path, map_location=device)
    if not isinstance(model, PropertyModel):
        raise ValueError(
            f"{name_or_dir} holds a {type(model).model_type} model, not a property model"
        )
    return model


def _is_sdf(path: Path) -> bool:
    return path.suffix.lower() in (".sdf", ".sd") or path.name.lower().endswith(".sdf.gz")


def has_3d_channel(encoder: type) -> bool:
    """Whether an encoder type reads coordinates (it picks 2D/3D channels per molecule)."""
    return hasattr(encoder, "select_modes")


def read_molecules(
    path: str | Path,
    *,
    smiles_column: str = "smiles",
    on_invalid: str = "error",
    conformers: bool = False,
    num_workers: int = 1,
) -> tuple[list[tuple[int, str, Data]], list[dict]]:
    """Featurized molecules ``(row, smiles, Data)`` of a CSV or SDF and the rejected rows."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    good: list[tuple[int, str, Data]] = []
    rejected: list[dict] = []

    def reject(row: int, smiles: str, reason: str) -> None:
        if on_invalid == "error":
            raise InvalidMoleculeError(smiles, reason, row=row)
        rejected.append({"row": row, "smiles": smiles, "reason": reason})

    if _is_sdf(path):
        for row, mol, reason in read_sdf(path):
            _sdf_molecule(row, mol, reason, conformers, good, reject)
        if not good and not rejected:
            raise ValueError(f"{path} holds no SDF records")
        return good, rejected

    frame = read_user_table(path)
    if smiles_column not in frame.columns:
        raise ValueError(f"{path} has no column {smiles_column!r}; columns: {list(frame.columns)}")
    return featurize_smiles(
        frame[smiles_column].tolist(),
        on_invalid=on_invalid,
        conformers=conformers,
        num_workers=num_workers,
    )


def _sdf_molecule(row, mol, reason, conformers: bool, good: list, reject) -> None:
    """Featurize one SDF record (``mol`` None: unreadable, with RDKit's ``reason``) into
    ``good``, or ``reject`` it."""
    if mol is None:
        reject(row, "", reason or "unreadable record")
        return
    smiles = canonical_smiles(mol) or ""
    try:
        mol, pos = sdf_molecule(mol, value=smiles, row=row)
        if pos is None and conformers:  # a flat record: RDKit coordinates instead
            pos = generate_conformer(mol, ConformerOptions())
    except InvalidMoleculeError as err:
        reject(row, smiles, err.reason)
        return
    good.append((row, smiles, mol_to_data(mol, pos=pos)))


def featurize_sdf_records(
    records: Sequence[str], rows: Sequence[int], *, conformers: bool = False
) -> tuple[list[tuple[int, str, Data]], list[dict]]:
    """Featurized molecules ``(row, smiles, Data)`` of SDF records (text, ``$$$$`` included)
    and the rejected ones, each record read as :func:`read_molecules` reads an SDF file."""
    good: list[tuple[int, str, Data]] = []
    rejected: list[dict] = []

    def reject(row: int, smiles: str, reason: str) -> None:
        rejected.append({"row": row, "smiles": smiles, "reason": reason})

    for record, row in zip(records, rows, strict=True):
        for _, mol, reason in read_sdf(io.BytesIO(record.encode())):
            _sdf_molecule(int(row), mol, reason, conformers, good, reject)
    return good, rejected


def featurize_smiles(
    smiles_list: list[str],
    *,
    on_invalid: str = "skip",
    conformers: bool = False,
    num_workers: int = 1,
) -> tuple[list[tuple[int, str, Data]], list[dict]]:
    """Featurized molecules ``(row, smiles, Data)`` of a list of SMILES (rows are positions in
    the list) and the rejected ones ``{row, smiles, reason}``: what :func:`read_molecules` does
    for a CSV, in memory (a server's requests)."""
    good: list[tuple[int, str, Data]] = []
    rejected: list[dict] = []

    def reject(row: int, smiles: str, reason: str) -> None:
        if on_invalid == "error":
            raise InvalidMoleculeError(smiles, reason, row=row)
        rejected.append({"row": row, "smiles": smiles, "reason": reason})

    positions: list[np.ndarray | None] = [None] * len(smiles_list)
    if conformers:
        results = generate_conformers(
            smiles_list, ConformerOptions(), processes=max(1, num_workers)
        )
        positions = [r.positions for r in results]
        failed = {r.index: r.reason for r in results if r.positions is None}
    else:
        failed = {}
    for start in range(0, len(smiles_list), FEATURIZE_BLOCK):
        parsed = []  # a block is parsed, then featurized (see FEATURIZE_BLOCK)
        for row in range(start, min(start + FEATURIZE_BLOCK, len(smiles_list))):
            smiles = smiles_list[row]
            try:
                mol = parse_smiles(smiles, row=row)
            except InvalidMoleculeError as err:
                reject(row, smiles, err.reason)
                continue
            if row in failed:
                reject(row, smiles, f"no 3D conformer: {failed[row]}")
                continue
            parsed.append((row, smiles, mol))
        good.extend((row, s, mol_to_data(mol, pos=positions[row])) for row, s, mol in parsed)
    return good, rejected


def domain_reason(model: PropertyModel, data: Data) -> str:
    """Why a molecule lies outside the model's training domain ("" when it does not)."""
    domain = model.config.domain
    reasons = []
    if "atomic_number_ids" in domain:
        unseen = sorted(set(data.x[:, 0].tolist()) - set(domain["atomic_number_ids"]))
        if unseen:
            reasons.append(f"element feature ids {unseen} never seen in training")
    if "max_atoms" in domain and data.num_nodes > domain["max_atoms"]:
        reasons.append(f"{data.num_nodes} heavy atoms > {domain['max_atoms']} in training")
    return "; ".join(reasons)


@torch.no_grad()
def predict_graphs(
    model: PropertyModel,
    graphs: list[Data],
    *,
    mode: str | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    pairs: Sequence[Any] | None = None,
) -> np.ndarray:
    """``[N, T]`` float64 predictions of featurized molecules, ``batch_size`` at a time (the
    model on ``device``, in eval mode): the forward passes of :func:`predict_file`.

    ``pairs``: the encoder's pair structures, one per graph, when the caller computed them
    already (:func:`pair_structures`; a server does it before its model's queue); else computed
    here."""
    values = np.zeros((len(graphs), len(model.config.targets)), dtype=np.float64)
    if pairs is None:
        structure = getattr(type(model.encoder), "pair_structure", None)
        dataset = DenseGraphDataset(list(graphs), pair_structure=structure)
    else:
        dataset = list(zip(graphs, pairs))
    for start in range(0, len(graphs), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(graphs)))]
        batch = collate_dense(items).to(device)
        # float(): under a 16-bit autocast (--precision) the outputs are not float32
        values[start : start + len(items)] = model.predict(batch, mode=mode).float().cpu().numpy()
    return values


def pair_structures(model: PropertyModel, graphs: Sequence[Data]) -> list[Any]:
    """The encoder's pair structure of each graph (``None`` each for message-passing encoders),
    as :func:`predict_graphs` would compute them."""
    structure = getattr(type(model.encoder), "pair_structure", None)
    return [None if structure is None else structure.of(data) for data in graphs]


@torch.no_grad()
def predict_file(
    model: PropertyModel,
    path: str | Path,
    *,
    smiles_column: str = "smiles",
    on_invalid: str = "error",
    conformers: bool = False,
    mode: str | None = None,
    batch_size: int = 64,
    num_workers: int = 1,
    device: str | torch.device = "cpu",
) -> PredictResult:
    """Predict every readable molecule of ``path``; see the module docstring.

    Raises
    ------
    ValueError
        ``mode`` needs coordinates (3D) and the file has molecules without them (a CSV without
        ``conformers``, flat SDF records), before any prediction: naming the file and the fix.
    """
    path = Path(path)
    needs_3d = mode is not None and "3d" in mode and has_3d_channel(type(model.encoder))
    hint = "add --conformers to generate them, or use --mode 2d"
    if needs_3d and not conformers and not _is_sdf(path) and path.is_file():
        raise coordinates_error(f"{path} holds SMILES without coordinates", f"--mode {mode}", hint)
    molecules, rejected = read_molecules(
        path,
        smiles_column=smiles_column,
        on_invalid=on_invalid,
        conformers=conformers,
        num_workers=num_workers,
    )
    flat = [row for row, _, data in molecules if getattr(data, "pos", None) is None]
    if needs_3d and flat:
        total = len(molecules) + len(rejected)
        raise coordinates_error(flat_records_message(path, flat, total), f"--mode {mode}", hint)
    model = model.to(device).eval()
    frame = prediction_frame(model, molecules, mode=mode, batch_size=batch_size, device=device)
    return PredictResult(frame, pd.DataFrame(rejected, columns=["row", "smiles", "reason"]))


def prediction_frame(
    model: PropertyModel,
    molecules: Sequence[tuple[int, str, Data]],
    *,
    mode: str | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> pd.DataFrame:
    """The rows ``molfm predict`` writes for featurized molecules ``(row, smiles, Data)``:
    row, smiles, one column per target (``_probability`` for classifiers), used_3d,
    out_of_domain, domain_reason. The model is in eval mode on ``device``."""
    values = predict_graphs(
        model, [data for _, _, data in molecules], mode=mode, batch_size=batch_size, device=device
    )
    frame = pd.DataFrame(
        {
            "row": np.array([r for r, _, _ in molecules], dtype=np.int64),
            "smiles": [s for _, s, _ in molecules],
        }
    )
    suffix = "_probability" if model.config.task == "classification" else ""
    for t, name in enumerate(model.config.targets):
        frame[f"{name}{suffix}"] = values[:, t]
    frame["used_3d"] = [
        getattr(d, "pos", None) is not None and mode != "2d" for _, _, d in molecules
    ]
    reasons = [domain_reason(model, d) for _, _, d in molecules]
    frame["out_of_domain"] = [bool(r) for r in reasons]
    frame["domain_reason"] = reasons
    return frame
