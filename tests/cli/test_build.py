"""Commands derived from config dataclasses: flags, ranges, --config and errors come from the
fields, so adding a field adds a flag."""

import re
from dataclasses import dataclass

import typer
import yaml
from typer.testing import CliRunner

from molfm.cli.build import RunContext, config_command
from molfm.cli.main import OneLineErrors
from molfm.engine.options import RunOptions, check_options, option

runner = CliRunner()


@dataclass(kw_only=True)
class ToyConfig(RunOptions):
    steps: int = option(10, min=1, help="Steps.")
    lr: float = option(1e-3, positive=True, help="Learning rate (> 0).")
    mode: str = option("fast", choices=("fast", "slow"), help="Mode.")
    tags: list[str] | None = option(None, help="Tags (repeat the flag).")
    fail: bool = option(False, help="Raise a user error after creating the run directory.")


def _app(seen: dict) -> typer.Typer:
    app = typer.Typer(cls=OneLineErrors, pretty_exceptions_enable=False)

    @config_command(app, "toy", ToyConfig)
    def toy(cfg: ToyConfig, run: RunContext) -> None:
        check_options(cfg)
        seen["cfg"] = cfg
        from pathlib import Path

        Path(cfg.output_dir).mkdir(parents=True)
        if cfg.fail:
            raise ValueError("bad data in row 3")
        run.save_config()

    @app.command("other")
    def other() -> None:  # a second command, so that "toy" stays a sub-command
        pass

    return app


def flat(text: str) -> str:
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def test_flags_come_from_the_fields(tmp_path):
    seen: dict = {}
    out = tmp_path / "run"
    args = ["toy", "--output-dir", str(out), "--steps", "3", "--mode", "slow", "-j", "2"]
    result = runner.invoke(_app(seen), [*args, "--tags", "a", "--tags", "b", "--no-progress"])
    assert result.exit_code == 0, result.output
    cfg = seen["cfg"]
    assert (cfg.steps, cfg.mode, cfg.num_workers, cfg.tags, cfg.progress) == (
        3, "slow", 2, ["a", "b"], False,
    )  # fmt: skip
    assert type(cfg.mode) is str and type(cfg.output_dir) is str and cfg.devices == 1
    saved = yaml.safe_load((out / "resolved_config.yaml").read_text())
    assert saved["steps"] == 3 and saved["mode"] == "slow" and saved["tags"] == ["a", "b"]


def test_ranges_and_choices_are_refused_by_the_parser(tmp_path):
    app = _app({})
    base = ["toy", "--output-dir", str(tmp_path / "run")]
    for args, needle in [
        (["--steps", "0"], "greater than or equal to 1"),
        (["--lr", "0"], "0.0 is not > 0"),
        (["--mode", "medium"], "'medium' is not one of 'fast', 'slow'"),
        (["--accelerator", "tpu"], "'tpu' is not one of"),
    ]:
        result = runner.invoke(app, [*base, *args])
        assert result.exit_code == 2, result.output
        assert needle in flat(result.output) and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_config_file_fills_defaults_and_flags_win(tmp_path):
    seen: dict = {}
    config = tmp_path / "toy.yaml"
    config.write_text("steps: 5\nlr: 1e-2\nmode: slow\n")
    out = tmp_path / "run"
    args = ["toy", "--output-dir", str(out), "--config", str(config), "--steps", "7"]
    result = runner.invoke(_app(seen), args)
    assert result.exit_code == 0, result.output
    assert (seen["cfg"].steps, seen["cfg"].lr, seen["cfg"].mode) == (7, 0.01, "slow")
    config.write_text("stepz: 5\n")
    typo = runner.invoke(
        _app({}), ["toy", "--output-dir", str(tmp_path / "b"), "--config", str(config)]
    )
    assert typo.exit_code == 2 and "unknown key 'stepz'" in flat(typo.output)
    config.write_text("steps: 0\n")
    bad = runner.invoke(
        _app({}), ["toy", "--output-dir", str(tmp_path / "c"), "--config", str(config)]
    )
    assert bad.exit_code == 2 and "steps" in flat(bad.output)
    assert "greater than or equal to 1" in flat(bad.output)


def test_user_error_is_one_line_and_removes_what_it_created(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(_app({}), ["toy", "--output-dir", str(out), "--fail"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["error: bad data in row 3"]
    assert not out.exists()


def test_adding_a_field_adds_a_flag():
    @dataclass(kw_only=True)
    class Grown(ToyConfig):
        beams: int = option(5, min=1, help="Beams.")

    app = typer.Typer()
    config_command(app, "grown", Grown)(lambda cfg, run: None)
    app.command("other")(lambda: None)
    result = runner.invoke(app, ["grown", "--help"])
    assert "--beams" in result.output and "Beams." in result.output


def test_required_options_may_come_from_the_config_file(tmp_path):
    seen: dict = {}
    missing = runner.invoke(_app(seen), ["toy", "--steps", "2"])
    assert missing.exit_code == 2 and "Missing option '--output-dir'" in flat(missing.output)
    config = tmp_path / "toy.yaml"
    config.write_text(f"output-dir: {tmp_path / 'run'}\n")
    result = runner.invoke(_app(seen), ["toy", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert seen["cfg"].output_dir == str(tmp_path / "run")


def test_the_saved_config_runs_again(tmp_path):
    first: dict = {}
    out = tmp_path / "run"
    args = ["toy", "--output-dir", str(out), "--steps", "4", "--mode", "slow", "--tags", "x"]
    assert runner.invoke(_app(first), args).exit_code == 0
    saved = out / "resolved_config.yaml"
    assert "hidden" not in yaml.safe_load(saved.read_text())  # Python-only fields stay out
    again: dict = {}
    replay = yaml.safe_load(saved.read_text()) | {"output_dir": str(tmp_path / "again")}
    config = tmp_path / "replay.yaml"
    config.write_text(yaml.safe_dump(replay))
    result = runner.invoke(_app(again), ["toy", "--config", str(config)])
    assert result.exit_code == 0, result.output
    keep = {"output_dir"}
    a = {k: v for k, v in vars(first["cfg"]).items() if k not in keep}
    b = {k: v for k, v in vars(again["cfg"]).items() if k not in keep}
    assert a == b
