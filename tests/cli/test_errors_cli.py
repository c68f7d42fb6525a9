"""Every user-facing error of generate / decorate / optimize / evaluate is one line, a nonzero
exit, and leaves no output behind; bad option values are refused by the parser before any
model loads."""

import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import molfm.systems.gp_molformer.model as model_module
from molfm.cli.main import app

DATA = Path(__file__).parents[1] / "data"
TINY = str(DATA / "tiny-gp-molformer")
runner = CliRunner()


def flat(output: str) -> str:
    return " ".join(re.sub(r"[│╭╮╰╯─┃━┏┓┗┛]", " ", output).split())


def one_line_error(result, exit_code: int, *messages: str) -> None:
    assert result.exit_code == exit_code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for message in messages:
        assert message in lines[0], (message, lines[0])


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if a model is loaded: range errors must come before."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(model_module, "load_smiles_model", refuse)


RANGE_CASES = [
    (["generate", "--temperature", "-0.5"], "'--temperature'"),
    (["generate", "--top-p", "0"], "0 < p <= 1"),
    (["generate", "--top-p", "1.5"], "0 < p <= 1"),
    (["generate", "--top-k", "0"], "'--top-k'"),
    (["generate", "-n", "0"], "'-n'"),
    (["generate", "--batch-size", "0"], "'--batch-size'"),
    (["generate", "--max-length", "1"], "'--max-length'"),
    (["generate", "-j", "-1"], "'--num-workers'"),
    (["generate", "--accelerator", "tpu"], "'--accelerator'"),
    (["decorate", "--scaffold", "c1ccc(*)cc1", "-n", "0"], "'-n'"),
    (["decorate", "--scaffold", "c1ccc(*)cc1", "--temperature", "-1"], "'--temperature'"),
    (["optimize", "--top-p", "2"], "0 < p <= 1"),
    (["optimize", "--n-candidates", "0"], "'--n-candidates'"),
    (["optimize", "--n-sources", "0"], "'--n-sources'"),
    (["optimize", "--max-steps", "0"], "'--max-steps'"),
    (["optimize", "--batch-size", "0"], "'--batch-size'"),
    (["optimize", "--lr", "0"], "'--lr'"),
    (["optimize", "--min-similarity", "1.5"], "'--min-similarity'"),
    (["optimize", "--on-invalid", "ignore"], "'--on-invalid'"),
    (["evaluate", "generation", "x.csv", "-j", "-2"], "'--num-workers'"),
]


@pytest.mark.parametrize(("args", "message"), RANGE_CASES, ids=lambda a: " ".join(a))
def test_bad_values_are_refused_by_the_parser(args, message, no_model_load, tmp_path):
    out = tmp_path / "out"
    flag = "--output-dir" if args[0] in ("optimize",) else "-o"
    result = runner.invoke(app, [*args, flag, str(out)])
    one_line_error(result, 2, message, f"molfm {args[0]}")
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize(
    "args",
    [
        ["generate", "--model", TINY, "-o"],
        ["decorate", "--model", TINY, "--scaffold", "c1ccc(*)cc1", "-o"],
        ["optimize", "--model", TINY, "--output-dir"],
        ["evaluate", "generation", str(DATA / "moses_test_200.csv"), "-o"],
    ],
    ids=lambda a: a[0] if a[0] != "evaluate" else "evaluate generation",
)
def test_gpu_without_cuda_is_one_line(args, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, [*args, str(out), "--accelerator", "gpu"])
    one_line_error(result, 1, "--accelerator gpu: no CUDA device is visible")
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--devices", "2"], "inference runs on one device"),
        (["--devices", "two"], "--devices 'two'"),
        (["--precision", "8-bit"], "--precision '8-bit'"),
        (["--accelerator", "cpu", "--precision", "16-mixed"], "needs a GPU"),
    ],
)
def test_bad_hardware_is_one_line(extra, message, tmp_path):
    out = tmp_path / "gen.csv"
    result = runner.invoke(app, ["generate", "--model", TINY, "-o", str(out), *extra])
    one_line_error(result, 1, message)
    assert not out.exists()


def test_missing_files_are_one_line(tmp_path):
    nope = str(tmp_path / "nope")
    out = tmp_path / "out"
    cases = [
        (["generate", "--model", nope, "-o", str(out)], "neither a shipped model"),
        (["generate", "--model", TINY, "--train-data", nope, "-o", str(out)], "neither a data set"),
        (["decorate", "--model", TINY, "--scaffolds-file", nope, "-o", str(out)], "--scaffolds-file"),
        (["optimize", "--data-path", nope, "--output-dir", str(out)], "--data-path"),
        (["optimize", "--input", nope, "--output-dir", str(out)], "--input"),
        (["evaluate", "generation", nope, "-o", str(out)], "does not exist"),
        (["evaluate", "memorization", nope, "--output-dir", str(out)], "does not exist"),
    ]  # fmt: skip
    for args, message in cases:
        one_line_error(runner.invoke(app, args), 1, message)
        assert not out.exists(), args


def test_missing_config_file(tmp_path):
    result = runner.invoke(app, ["generate", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "does not exist" in flat(result.output)


def test_bad_config_values_are_refused(tmp_path):
    config = tmp_path / "c.yaml"
    out = tmp_path / "gen.csv"
    for text, message in [
        ("temperature: -1\n", "temperature"),
        ("top-p: 0\n", "0 < p <= 1"),
        ("n-samples: 5\n", "unknown key 'n-samples'"),
    ]:
        config.write_text(text)
        args = ["generate", "--model", TINY, "--config", str(config), "-o", str(out)]
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and message in flat(result.output), result.output
        assert len(result.output.strip().splitlines()) == 1
        assert not out.exists()


def test_data_flags_are_not_overloaded(tmp_path):
    out = tmp_path / "run"
    csv = str(DATA / "moses_train_500.csv")
    a_file = runner.invoke(app, ["optimize", "--data", csv, "--output-dir", str(out)])
    one_line_error(a_file, 1, "not a registered data set", f"--data-path {csv}")
    both = ["optimize", "--data", "moses", "--data-path", csv, "--output-dir", str(out)]
    one_line_error(runner.invoke(app, both), 1, "not both")
    fmt = runner.invoke(app, ["optimize", "--data", "csv", "--output-dir", str(out)])
    one_line_error(fmt, 1, "file format")
    assert not out.exists()


def test_bad_scaffolds_leave_no_output(tmp_path, no_model_load):
    out = tmp_path / "dec.csv"
    args = ["decorate", "--model", TINY, "-o", str(out), "--scaffold", "c1ccc(*)cc1"]
    result = runner.invoke(app, [*args, "--scaffold", "C1CC(*)"])  # checked before the model
    one_line_error(result, 1, "scaffold 1", "unclosed ring")
    assert not out.exists()


def test_unknown_scaffold_token_leaves_no_output(tmp_path):
    out = tmp_path / "dec.csv"
    args = ["decorate", "--model", TINY, "-o", str(out), "--scaffold", "c1ccc(*)cc1"]
    result = runner.invoke(app, [*args, "--scaffold", "[Se]1C=CC(*)=C1"])
    one_line_error(result, 1, "scaffold 1", "not in the vocabulary")
    assert not out.exists()
