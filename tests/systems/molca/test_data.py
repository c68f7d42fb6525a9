"""MolCA's molecule-text data: pubchem-names splits, caption files, batches.

The caption fixtures are real molecules from ``tests/data/pubchem_names_150.tsv`` in the two
file formats: ``chebi20_sample.tsv`` (ChEBI-20: ``CID``, ``SMILES``, ``description``) and
``pubchem324k_sample.csv`` (``CID``, ``SMILES``, ``text``). No package ships curated captions,
so their text columns hold the molecules' real PubChem names, not curated descriptions: the
IUPAC name in the ChEBI-20 sample, and the common name plus synonyms (one per line, as
PubChem324k stores several descriptions) in the PubChem324k sample.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from rdkit import Chem
from torch.utils.data import DataLoader
from torch_geometric.data import Data

from molfm.chem.parse import InvalidMoleculeError
from molfm.data.sources.pubchem_names import PubChemNamesSource, parse_identifier_lines
from molfm.systems.molca.data import (
    MolTextBatch,
    MolTextExample,
    collate_mol_text,
    molecule_names,
    pubchem_names_splits,
    read_caption_file,
)

DATA = Path(__file__).resolve().parents[2] / "data"
PUBCHEM = DATA / "pubchem_names_150.tsv"


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _key(smiles: str) -> str:
    return Chem.MolToInchiKey(Chem.MolFromSmiles(smiles))


def _with_duplicate(tmp_path: Path) -> tuple[Path, str]:
    """The fixture plus a second entry of its first compound (sialic acid): another CID, the
    SMILES spelled differently, and one of the compound's own synonyms as its IUPAC name."""
    lines = PUBCHEM.read_text(encoding="utf-8").rstrip("\n").split("\n")
    first = lines[0].split("\t")
    other_name = "5-acetamido-2,4-dihydroxy-6-(1,2,3-trihydroxypropyl)oxane-2-carboxylic acid"
    assert other_name in first[9:]
    smiles = Chem.MolToSmiles(Chem.MolFromSmiles(first[4]), doRandom=True, canonical=False)
    dup = ["9999906", "", first[2], first[3], smiles, first[5], first[6], other_name, "", "x"]
    path = tmp_path / "with_duplicate.tsv"
    path.write_text("\n".join([*lines, "\t".join(dup)]) + "\n", encoding="utf-8")
    return path, first[7]


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pubchem")
    path, _ = _with_duplicate(tmp)
    source = PubChemNamesSource(files={"all": path})
    iupac = pubchem_names_splits("iupac", source=source, root=tmp / "cache")
    names = pubchem_names_splits("names", source=source, root=tmp / "cache")
    return iupac, names, path


def test_splits_partition_by_inchikey_and_scaffold(splits):
    iupac, names, _ = splits
    parts = (names.train, names.val, names.test)
    keys = [{_key(s) for s in part.smiles} for part in parts]
    assert sum(len(k) for k in keys) == sum(len(p) for p in parts)  # no key twice in a split
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert len(names.train) > len(names.val) > 0 and len(names.test) > 0
    info = names.info
    assert info["n_rows"] == 151 and info["n_duplicates_dropped"] == 1
    assert info["n_molecules"] == sum(len(p) for p in parts)
    # one partition for every task: an IUPAC molecule sits in the same split as in "names"
    for a, b in zip((iupac.train, iupac.val, iupac.test), parts):
        assert set(a.ids) <= set(b.ids)


def test_iupac_texts_are_the_source_names_and_items_are_graphs(splits):
    iupac, _, path = splits
    frame = parse_identifier_lines(path.read_text(encoding="utf-8"))
    for part in (iupac.train, iupac.val, iupac.test):
        for i in range(len(part)):
            row = part.ids[i]
            assert part.texts[i] == frame.loc[row, "iupac_name"]
            assert _key(part.smiles[i]) == _key(frame.loc[row, "smiles"])
    item = iupac.test[0]
    assert isinstance(item, MolTextExample) and isinstance(item.graph, Data)
    assert item.graph.x.shape[0] == Chem.MolFromSmiles(item.smiles).GetNumAtoms()


def test_duplicate_keeps_first_entry_and_merges_names(splits):
    iupac, names, _ = splits
    for part in (names.train, names.val, names.test):
        if 0 in part.ids:
            i = part.ids.index(0)
            assert 150 not in part.ids  # the duplicate row is gone
            assert part.names[i][0].startswith("5-acetamido-2,4-bis(oxidanyl)")
            assert (
                "5-acetamido-2,4-dihydroxy-6-(1,2,3-trihydroxypropyl)oxane-2-carboxylic acid"
                in (part.names[i])
            )
            assert "131-48-6" not in part.names[i]  # CAS numbers are not names
            break
    else:
        raise AssertionError("row 0 is in no split")


def test_split_is_cached_and_seeded(splits, tmp_path):
    iupac, _, path = splits
    again = pubchem_names_splits(
        "iupac",
        source=PubChemNamesSource(files={"all": path}),
        root=Path(iupac.info["dataset"]).parent,
    )
    assert again.test.ids == iupac.test.ids and again.info["split_file"] == iupac.info["split_file"]
    other = pubchem_names_splits(
        "iupac", seed=1, source=PubChemNamesSource(files={"all": path}), root=tmp_path
    )
    assert other.test.ids != iupac.test.ids
    with pytest.raises(ValueError, match="task"):
        pubchem_names_splits(
            "smiles", source=PubChemNamesSource(files={"all": path}), root=tmp_path
        )


def test_collate_and_loader(splits):
    iupac, _, _ = splits
    loader = DataLoader(iupac.train, batch_size=4, collate_fn=collate_mol_text)
    batch = next(iter(loader))
    assert isinstance(batch, MolTextBatch) and len(batch) == 4
    assert batch.graphs.graph.num_graphs == 4 and batch.graphs.x.shape[0] == 4
    assert batch.graphs.pairs is None  # no pair structure
    assert batch.smiles == iupac.train.smiles[:4] and batch.texts == iupac.train.texts[:4]
    moved = batch.to("cpu")
    assert (
        moved.texts == batch.texts and moved.graphs.graph.num_nodes == batch.graphs.graph.num_nodes
    )
    with pytest.raises(ValueError):
        collate_mol_text([])


def test_molecule_names_filters_identifiers():
    got = molecule_names(
        "ethanol", "Ethanol", ["64-17-5", "ethyl alcohol", "C2H6O", "9724bdbf-717d-4312-8e53-2ec71ecf2de6"],
        "C2H6O",
    )  # fmt: skip
    assert got == ["ethanol", "ethyl alcohol"]


# ----------------------------------------------------------------------------- caption files
def test_chebi20_tsv_loads_as_is(tmp_path):
    expected = list(
        csv.reader((DATA / "chebi20_sample.tsv").open(encoding="utf-8"), delimiter="\t")
    )
    assert expected[0] == ["CID", "SMILES", "description"] and len(expected) == 21
    for path in (DATA / "chebi20_sample.tsv", tmp_path / "test.txt"):  # ChEBI-20 ships .txt
        if path.suffix == ".txt":
            path.write_bytes((DATA / "chebi20_sample.tsv").read_bytes())
        read = read_caption_file(path)
        assert (read.smiles_column, read.text_column) == ("SMILES", "description")
        assert len(read.dataset) == 20 and read.rejected.empty
        assert read.dataset.texts == [row[2] for row in expected[1:]]
        assert [_key(s) for s in read.dataset.smiles] == [_key(r[1]) for r in expected[1:]]
        assert read.dataset.ids == list(range(20))


def test_pubchem324k_csv_joins_multiline_texts():
    with (DATA / "pubchem324k_sample.csv").open(encoding="utf-8") as fh:
        expected = list(csv.DictReader(fh))
    assert list(expected[0]) == ["CID", "SMILES", "text"] and len(expected) == 20
    read = read_caption_file(DATA / "pubchem324k_sample.csv")
    assert read.text_column == "text" and len(read.dataset) == 20
    assert read.dataset.texts == [" ".join(r["text"].split("\n")) for r in expected]
    assert any("\n" in r["text"] for r in expected)


def _bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.tsv"
    path.write_text(
        "CID\tSMILES\tdescription\n"
        "702\tCCO\tethanol\n"
        "1\tC1CC\tan unclosed ring\n"
        "887\tCO\n"  # a short row: no description at all
        '962\tO\t"water" is quoted here\n',
        encoding="utf-8",
    )
    return path


def test_bad_rows_error_names_row_value_reason(tmp_path):
    with pytest.raises(InvalidMoleculeError) as err:
        read_caption_file(_bad_file(tmp_path))
    assert err.value.row == 1 and err.value.value == "C1CC"
    assert "row 1" in str(err.value) and "C1CC" in str(err.value) and "ring" in str(err.value)


def test_bad_rows_skip_reports_every_rejected_row(tmp_path):
    read = read_caption_file(_bad_file(tmp_path), on_invalid="skip")
    assert read.rejected["row"].tolist() == [1, 2]
    assert "empty text" in read.rejected.loc[1, "reason"]
    assert read.dataset.ids == [0, 3]
    assert read.dataset.texts == ["ethanol", '"water" is quoted here']  # TSV quotes are text


def test_columns_and_files(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("mol,caption_en\nCCO,ethanol\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no SMILES column found"):
        read_caption_file(path)
    read = read_caption_file(path, smiles_column="mol", text_column="caption_en")
    assert read.dataset.texts == ["ethanol"]
    with pytest.raises(ValueError, match="did you mean 'mol'"):
        read_caption_file(path, smiles_column="MOL", text_column="caption_en")
    with pytest.raises(FileNotFoundError):
        read_caption_file(tmp_path / "missing.tsv")
    with pytest.raises(ValueError, match="on_invalid"):
        read_caption_file(path, on_invalid="ignore")
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        read_caption_file(tmp_path / "empty.csv")
