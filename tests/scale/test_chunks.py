"""Parts of an input file: every row in exactly one part, numbered as the whole-file readers
number them, whatever the part size."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rdkit import Chem

from molfm.chem.io import read_sdf
from molfm.data.sources.base import SourceError
from molfm.data.sources.user import read_user_table
from molfm.scale import chunks as chunks_module
from molfm.scale.chunks import iter_chunk_frames, plan_chunks, read_chunk

TRICKY_CSV = (
    "smiles,text\n"
    'CCO,"a caption, with a comma"\n'
    "\n"  # a blank line: pandas skips it, so it is no row
    'c1ccccc1,"two\nlines"\n'
    'CC(=O)O,"a ""quoted"" word"\r\n'
    "\r\n"
    "N,plain\n"
    "O,last line without a newline"
)


def _joined(path, size: int, columns=None) -> pd.DataFrame:
    return pd.concat([read_chunk(c, columns) for c in plan_chunks(path, size)])


@pytest.mark.parametrize("size", [1, 2, 3, 100])
def test_csv_parts_hold_every_row_once_as_the_whole_file_reader_numbers_them(tmp_path, size):
    path = tmp_path / "tricky.csv"
    path.write_bytes(TRICKY_CSV.encode())
    whole = read_user_table(path)
    parts = plan_chunks(path, size)
    assert [c.n_rows for c in parts][:-1] == [size] * (len(parts) - 1)
    joined = _joined(path, size)
    assert list(joined.index) == list(range(len(whole)))
    pd.testing.assert_frame_equal(joined.reset_index(drop=True), whole)


def test_block_boundaries_do_not_move_rows(tmp_path, monkeypatch):
    """A quoted newline or a blank line split across scan blocks is still found."""
    path = tmp_path / "tricky.csv"
    path.write_bytes(TRICKY_CSV.encode())
    whole = read_user_table(path)
    for block in (1, 2, 3, 5, 7):
        monkeypatch.setattr(chunks_module, "_BLOCK", block)
        pd.testing.assert_frame_equal(_joined(path, 2).reset_index(drop=True), whole)


def test_tsv_and_parquet(tmp_path):
    frame = pd.read_csv("tests/data/moses_test_200.csv", dtype=str)
    tsv = tmp_path / "m.tsv"
    frame.to_csv(tsv, sep="\t", index=False)
    pd.testing.assert_frame_equal(_joined(tsv, 64).reset_index(drop=True), frame)
    parquet = tmp_path / "m.parquet"
    pq.write_table(pa.Table.from_pandas(frame), parquet, row_group_size=50)  # parts cross groups
    joined = _joined(parquet, 64, ["SMILES"])
    assert list(joined.index) == list(range(200))
    assert joined["SMILES"].tolist() == frame["SMILES"].tolist()


def test_sdf_parts_hold_the_records(tmp_path):
    path = tmp_path / "m.sdf"
    writer = Chem.SDWriter(str(path))
    for smiles in ["CCO", "c1ccccc1", "CC(=O)O", "N", "O=C=O"]:
        writer.write(Chem.MolFromSmiles(smiles))
    writer.close()
    parts = plan_chunks(path, 2)
    assert [c.n_rows for c in parts] == [2, 2, 1]
    records = _joined(path, 2)["molblock"].tolist()
    expected = [Chem.MolToSmiles(m) for _, m, _ in read_sdf(path)]
    from io import BytesIO

    got = [Chem.MolToSmiles(next(read_sdf(BytesIO(r.encode())))[1]) for r in records]
    assert got == expected


def test_gzip_is_read_front_to_back(tmp_path):
    import gzip

    path = tmp_path / "m.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("smiles\nCCO\nN\nO\n")
    with pytest.raises(SourceError, match="compressed"):
        plan_chunks(path, 2)
    frames = list(iter_chunk_frames(path, 2))
    assert [list(f.index) for f in frames] == [[0, 1], [2]]


def test_empty_and_header_only_files_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(SourceError, match="empty"):
        plan_chunks(empty, 10)
    header = tmp_path / "header.csv"
    header.write_text("smiles\n")
    with pytest.raises(SourceError, match="no data rows"):
        plan_chunks(header, 10)
    with pytest.raises(FileNotFoundError):
        plan_chunks(tmp_path / "missing.csv", 10)
