"""molfm embed and the streaming flags from the command line: outputs, the parts directory's
lifecycle, one-line errors with nothing left behind."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from molfm.cli.main import app

runner = CliRunner()


@pytest.fixture
def smiles_csv(tmp_path):
    path = tmp_path / "in.csv"
    pd.DataFrame({"smiles": ["CCO", "bad(", "c1ccncc1", "CC(=O)N"], "id": list("abcd")}).to_csv(
        path, index=False
    )
    return path


def _one_line_error(result, *needles: str) -> str:
    assert result.exit_code in (1, 2), result.output  # 2: the parser refused a flag
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_embed_writes_parquet_with_the_id_column_and_lists_rejected_rows(smiles_csv, tmp_path):
    out = tmp_path / "vectors.parquet"
    args = [
        "embed",
        "--data-path",
        str(smiles_csv),
        "-o",
        str(out),
        "--id-column",
        "id",
        "--on-invalid",
        "skip",
        "--chunk-size",
        "2",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "wrote 3 embeddings" in result.output and "rejected 1 rows" in result.output
    frame = pd.read_parquet(out)
    assert frame["row"].tolist() == [0, 2, 3] and frame["id"].tolist() == ["a", "c", "d"]
    assert len(frame["embedding"][0]) == 128
    assert (tmp_path / "vectors.config.yaml").is_file()
    assert pd.read_csv(tmp_path / "invalid.csv")["row"].tolist() == [1]
    assert not (tmp_path / "vectors.parquet.parts").exists()


def test_predict_writes_parquet_when_asked(smiles_csv, tmp_path):
    out = tmp_path / "p.parquet"
    result = runner.invoke(
        app, ["predict", "--data-path", str(smiles_csv), "-o", str(out), "--on-invalid", "skip"]
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert frame["row"].tolist() == [0, 2, 3] and {"homo", "lumo", "gap"} <= set(frame.columns)


def test_a_bad_row_stops_with_its_number_and_the_skip_hint(smiles_csv, tmp_path):
    before = set(tmp_path.iterdir())
    out = tmp_path / "v.parquet"
    result = runner.invoke(app, ["embed", "--data-path", str(smiles_csv), "-o", str(out)])
    assert result.exit_code == 1
    first, hint = [line for line in result.output.splitlines() if line.strip()]
    assert first.startswith("error: invalid input: row 1: 'bad('") and "--on-invalid skip" in hint
    assert not out.exists()
    # the finished parts stay for --on-invalid skip to continue from
    leftover = set(tmp_path.iterdir()) - before
    assert leftover <= {tmp_path / "v.parquet.parts"}


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["-o", "{tmp}/v.csv"], ["--output", ".parquet"]),
        (["--smiles-column", "nope", "-o", "{tmp}/v.parquet"], ["no column 'nope'"]),
        (["--id-column", "nope", "-o", "{tmp}/v.parquet"], ["no column 'nope'"]),
        (["--chunk-size", "0", "-o", "{tmp}/v.parquet"], ["--chunk-size"]),
        (["--engine", "spark", "-o", "{tmp}/v.parquet"], ["--engine"]),
        (["--mode", "3d", "-o", "{tmp}/v.parquet"], ["--conformers"]),
    ],
)
def test_bad_options_are_one_line_and_leave_nothing(smiles_csv, tmp_path, args, needles):
    before = set(tmp_path.iterdir())
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = runner.invoke(app, ["embed", "--data-path", str(smiles_csv), *args])
    _one_line_error(result, *needles)
    assert set(tmp_path.iterdir()) == before


def test_missing_input_is_one_line(tmp_path):
    result = runner.invoke(app, ["embed", "--data-path", str(tmp_path / "none.csv")])
    _one_line_error(result, "none.csv")
