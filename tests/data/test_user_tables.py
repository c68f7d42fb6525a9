"""Every reader of a user's CSV/TSV reports an unreadable file in one line that names it."""

from pathlib import Path

import pytest

from molfm.data.sources import CSVSource, SourceError
from molfm.data.sources.user import read_user_table, table_delimiter
from molfm.eval.generated import read_samples
from molfm.systems.molca.data import read_caption_file
from molfm.systems.molca.run import read_molecules as read_smiles
from molfm.tasks.predict import read_molecules


def _bad_files(root: Path) -> list[tuple[Path, str]]:
    """``(file, what the message must say)`` for each way a table can be unreadable."""
    files = {
        "empty.csv": (b"", "is empty"),
        "binary.csv": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "is not a UTF-8 text file"),
        "ragged.csv": (b"smiles,text\nCCO,a\nCCN,b,c\n", "could not be read as a table"),
        "header.csv": (b"smiles,text\n", "has a header but no data rows"),
        "not-gzip.csv.gz": (b"smiles,text\nCCO,a\n", "could not be decompressed"),
    }
    out = []
    for name, (content, needle) in files.items():
        (root / name).write_bytes(content)
        out.append((root / name, needle))
    return out


READERS = {
    "read_user_table": read_user_table,
    "CSVSource": lambda path: CSVSource(path).load(),
    "predict": read_molecules,
    "molca captions": read_caption_file,
    "molca names": lambda path: read_smiles(path, "smiles", "error"),
    "generated samples": lambda path: read_samples(path, "smiles"),
}


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
def test_unreadable_tables_are_one_line_errors_naming_the_file(reader, tmp_path):
    for path, needle in _bad_files(tmp_path):
        with pytest.raises(SourceError) as err:
            reader(path)
        message = str(err.value)
        assert message.startswith(str(path)) and needle in message, message
        assert "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv does not exist"):
        read_user_table(tmp_path / "nope.csv")


def test_delimiter_from_the_header_and_cells_as_text(tmp_path):
    tsv = tmp_path / "names.txt"
    tsv.write_text("smiles\tname\nCCO\t007\nCCN\t\n")
    assert table_delimiter(tsv) == "\t"
    frame = read_user_table(tsv)
    assert list(frame.columns) == ["smiles", "name"]
    assert frame["name"].tolist() == ["007", ""]  # strings kept as written, blanks not NaN
    csv = tmp_path / "names.csv"
    csv.write_text("smiles,name\nCCO,a\n")
    assert table_delimiter(csv) == "," and read_user_table(csv).shape == (1, 2)
