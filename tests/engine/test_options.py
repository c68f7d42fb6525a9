"""Options declared once: the field carries default, help, range and choices, and the library
applies the same rules as the CLI's parser."""

from dataclasses import dataclass

import pytest

from molfm.engine.options import (
    HardwareOptions,
    RunOptions,
    check_options,
    fold_data_path,
    option,
    options_of,
)


@dataclass(kw_only=True)
class Toy(RunOptions):
    lr: float = option(1e-3, positive=True, help="Learning rate.")
    steps: int = option(10, min=1, max=100, help="Steps.")
    mode: str = option("a", choices=("a", "b"), help="Mode.")
    hidden: dict = option(default_factory=dict, cli=False, help="Set from Python only.")


def test_fields_carry_their_flag_and_shared_block_comes_first():
    names = [f.name for f, _, _ in options_of(Toy)]
    shared = [f.name for f, _, _ in options_of(RunOptions)]
    assert names[: len(shared)] == shared and names[len(shared) :] == [
        "lr",
        "steps",
        "mode",
        "hidden",
    ]
    opts = {f.name: opt for f, opt, _ in options_of(Toy)}
    assert opts["num_workers"].names("num_workers") == ("--num-workers", "-j")
    assert opts["data_seed"].names("data_seed") == ("--data-seed",)
    assert opts["cache_dir"].envvar == "MOLFM_CACHE" and not opts["hidden"].cli


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(lr=0.0), "lr must be > 0, got 0.0"),
        (dict(steps=0), "steps must be >= 1, got 0"),
        (dict(steps=101), "steps must be <= 100, got 101"),
        (dict(mode="c"), "mode 'c': expected one of a, b"),
        (dict(on_invalid="bogus"), "on_invalid 'bogus': expected one of error, skip"),
        (dict(num_workers=-1), "num_workers must be >= 0, got -1"),
    ],
)
def test_library_checks_the_declared_rules(kw, message):
    cfg = Toy(output_dir="run", **kw)
    with pytest.raises(ValueError, match=message):
        check_options(cfg)


def test_valid_config_passes_and_device_counts_become_ints():
    check_options(Toy(output_dir="run"))
    assert Toy(output_dir="run", devices="2").devices == 2
    assert HardwareOptions(devices="0,1").devices == "0,1"
    assert HardwareOptions(devices="auto").devices == "auto"


@dataclass
class DataPair:
    data: str | None = None
    data_path: str | None = None


def test_fold_data_path(tmp_path):
    csv = tmp_path / "mols.csv"
    csv.write_text("smiles\nCCO\n")
    cfg = DataPair(data_path=str(csv))
    fold_data_path(cfg, default="moses")
    assert cfg.data == str(csv)
    fold_data_path(cfg)  # folding again (a replace() or a resumed run) changes nothing
    assert cfg.data == str(csv)
    named = DataPair(data="MOSES")
    fold_data_path(named)
    assert named.data == "moses"  # aliases resolved to the registered name
    default = DataPair()
    fold_data_path(default, default="moses")
    assert default.data == "moses"
    with pytest.raises(ValueError, match="give --data NAME or --data-path FILE, not both"):
        fold_data_path(DataPair(data="moses", data_path=str(csv)))
    with pytest.raises(ValueError, match="'nope.csv' is not a registered data set"):
        fold_data_path(DataPair(data="nope.csv"))
    with pytest.raises(FileNotFoundError, match="--data-path .*missing.csv does not exist"):
        fold_data_path(DataPair(data_path=str(tmp_path / "missing.csv")))
