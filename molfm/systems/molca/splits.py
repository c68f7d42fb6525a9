"""A MolCA run's data: the train/val/test pairs of ``pubchem-names`` or a user's file, limited as
asked, and the Lightning data module over them.

``pubchem-names`` comes split by scaffold (:func:`~.data.pubchem_names_splits`); a user's SMILES
+ text file (:func:`~.data.read_caption_file`) is split by scaffold with ``data_seed``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from molfm.data.samplers import seeded_loader
from molfm.systems.molca.data import MolTextDataset, MolTextSplits, collate_mol_text

if TYPE_CHECKING:
    from molfm.systems.molca.config import MolCATrainConfig

__all__ = [
    "DATA_SETS",
    "MolTextDataModule",
    "subset",
    "head",
    "data_file",
    "default_task",
    "load_splits",
]

DATA_SETS = ("pubchem-names",)


class MolTextDataModule(L.LightningDataModule):
    """Train (seeded order, resumable mid-epoch, full batches) and validation loaders.

    ``collate_fn`` defaults to :func:`~.data.collate_mol_text`; with tokenized pairs
    (:class:`~.batching.TokenizedPairs`) pass a :class:`~.batching.PromptCollate`, and
    ``bucket_by_length`` groups training batches by token length
    (:class:`~.batching.LengthGroupedSampler`).
    """

    def __init__(
        self,
        train,
        val,
        *,
        batch_size: int,
        seed: int = 0,
        num_workers: int = 0,
        collate_fn: Callable | None = None,
        bucket_by_length: bool = False,
    ) -> None:
        super().__init__()
        self.train, self.val = train, val
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers
        self.collate_fn = collate_fn or collate_mol_text
        if bucket_by_length and not hasattr(train, "lengths"):
            raise ValueError("bucket_by_length needs tokenized pairs (with lengths)")
        self.bucket_by_length = bucket_by_length

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        sampler = None
        if shuffle and self.bucket_by_length:
            from molfm.systems.molca.batching import LengthGroupedSampler

            sampler = LengthGroupedSampler(dataset.lengths, self.batch_size, self.seed)
        return seeded_loader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            collate_fn=self.collate_fn,
            seed=self.seed,
            num_workers=self.num_workers,
            trainer=getattr(self, "trainer", None),
            sampler=sampler,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val, shuffle=False)


def subset(dataset: MolTextDataset, index: Iterable[int]) -> MolTextDataset:
    """The pairs at ``index`` (in that order) as a new :class:`MolTextDataset`."""
    index = [int(i) for i in index]
    return MolTextDataset(
        [dataset.graphs[i] for i in index],
        [dataset.smiles[i] for i in index],
        [dataset.texts[i] for i in index],
        names=[dataset.names[i] for i in index],
        ids=[dataset.ids[i] for i in index],
    )


def head(dataset: MolTextDataset, n: int) -> MolTextDataset:
    """The first ``n`` pairs (all of them when there are fewer)."""
    return subset(dataset, range(min(n, len(dataset))))


def _scaffolds(smiles: list[str]) -> list[str]:
    from rdkit import Chem, rdBase

    from molfm.chem.scaffolds import murcko_scaffold

    out = []
    with rdBase.BlockLogs():
        for s in smiles:
            mol = Chem.MolFromSmiles(s)
            out.append(murcko_scaffold(mol) if mol is not None else s)
    return out


def data_file(cfg: MolCATrainConfig) -> str | None:
    """The user's file ``cfg.data`` names, or None for a registered data set.

    Raises
    ------
    ValueError
        Neither a data set nor a file given.
    """
    if cfg.data is None:
        raise ValueError("give exactly one of --data pubchem-names or --data-path FILE")
    return cfg.data_path  # folded: cfg.data is the same path then, else a data set's name


def default_task(cfg: MolCATrainConfig) -> str:
    """``cfg.task``, else ``iupac`` on ``pubchem-names`` and ``caption`` on a file."""
    if cfg.task is not None:
        return cfg.task
    return "caption" if data_file(cfg) is not None else "iupac"


def load_splits(cfg: MolCATrainConfig) -> MolTextSplits:
    """Train/val/test pairs of ``cfg.data`` (a data set or a file; train limited to
    ``cfg.limit_train`` molecules, a seeded subset; validation to its first ``cfg.limit_val``)."""
    from molfm.data.splits import scaffold_split
    from molfm.systems.molca.data import pubchem_names_splits, read_caption_file

    task, path = default_task(cfg), data_file(cfg)
    if path is None:
        if cfg.data not in DATA_SETS:
            raise ValueError(f"--data {cfg.data!r}: MolCA trains on {', '.join(DATA_SETS)}")
        if task not in ("iupac", "names") or (task == "names" and cfg.stage != "1"):
            raise ValueError(
                f"--task {task!r} on pubchem-names: use iupac (every stage) or names (stage 1)"
            )
        splits = pubchem_names_splits(
            "names" if task == "names" else "iupac",
            seed=cfg.data_seed,
            sizes=cfg.split_sizes,
            progress=cfg.progress,
        )
    else:
        read = read_caption_file(
            path, cfg.smiles_column, cfg.text_column, on_invalid=cfg.on_invalid
        )
        dataset = read.dataset
        if len(dataset) < 3:
            raise ValueError(f"{path} has {len(dataset)} usable pairs; a run needs >= 3")
        split = scaffold_split(_scaffolds(dataset.smiles), cfg.split_sizes, cfg.data_seed)
        splits = MolTextSplits(
            subset(dataset, split.train),
            subset(dataset, split.val),
            subset(dataset, split.test),
            {"source": path, "rejected": len(read.rejected)},
        )
    if cfg.limit_train is not None and cfg.limit_train < len(splits.train):
        order = np.random.default_rng(cfg.data_seed).permutation(len(splits.train))
        splits.train = subset(splits.train, np.sort(order[: cfg.limit_train]))
    if cfg.limit_val is not None and cfg.limit_val < len(splits.val):
        splits.val = head(splits.val, cfg.limit_val)
    if path is None and task == "iupac":
        extra = cfg.opsin_filter or cfg.add_small_table or cfg.synonyms_per_molecule
        if extra:  # after limit_train: OPSIN checks only the pairs a run trains on
            from molfm.systems.molca.naming_data import naming_training_set

            splits.train, splits.info["training_set"] = naming_training_set(
                splits,
                opsin_filter=cfg.opsin_filter,
                add_small_table=cfg.add_small_table,
                synonyms_per_molecule=cfg.synonyms_per_molecule,
            )
    return splits
