"""The layer rule holds: the import-linter contracts in pyproject.toml ([tool.importlinter]) pass
on the package, and they do catch an upward import, a system importing another system and an
import cycle. Every module also stays under 500 lines."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "molfm"
MAX_LINES = 500
# click reads the arguments after -c; lint-imports puts the working directory first on sys.path,
# so the copy in test_the_contracts_catch_violations is linted, not the installed package
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache", "--no-logo", str(cwd / "pyproject.toml")],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_import_contracts_hold():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ", 0 broken." in result.stdout, result.stdout


def test_the_contracts_catch_violations(tmp_path):
    """A copy of the package with two bad imports breaks all three contracts."""
    shutil.copytree(PACKAGE, tmp_path / "molfm", ignore=shutil.ignore_patterns("assets", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    hub = tmp_path / "molfm" / "hub.py"  # upward (hub -> systems) and a cycle (systems -> hub)
    hub.write_text(hub.read_text() + "\nfrom molfm.systems.gp_molformer import model  # noqa\n")
    pgt3d = tmp_path / "molfm" / "systems" / "pgt3d" / "__init__.py"  # one system -> another
    pgt3d.write_text(pgt3d.read_text() + "\nimport molfm.systems.molca  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0 kept, 3 broken." in result.stdout, result.stdout
    assert "molfm.hub -> molfm.systems.gp_molformer" in result.stdout
    assert "molfm.systems.pgt3d -> molfm.systems.molca" in result.stdout


def _long_modules() -> list[str]:
    lengths = {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    return sorted(f"{name} ({n} lines)" for name, n in lengths.items() if n > MAX_LINES)


def test_no_module_exceeds_500_lines():
    assert _long_modules() == []
