"""The project's own gates: ruff (lint and format) over runner/ and tests/, mypy strict over runner/, and the
import contracts in pyproject.toml (import-linter: the parts' layers, no import circles, a pure core)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300)


def test_ruff_lint() -> None:
    result = run(str(BIN / "ruff"), "check", "runner", "tests", "bench", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = run(str(BIN / "ruff"), "format", "--check", "runner", "tests", "bench", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout + result.stderr


def lint_imports(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # pyproject.toml in the working directory (ROOT): a path argument is new in import-linter 2.17
    return run(str(BIN / "lint-imports"), "--no-cache", env=env)


def test_import_contracts() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_import_contracts_see_a_lazy_import_from_core_into_run(tmp_path: Path) -> None:
    # Guards the test above against checking nothing: a copy of the package whose plan imports the runner
    # inside a function (as lazy imports are written) breaks the layers, the circles and the pure core.
    shutil.copytree(ROOT / "runner" / "mlpipe", tmp_path / "mlpipe")
    plan = tmp_path / "mlpipe" / "core" / "plan.py"
    plan.write_text(
        plan.read_text() + "\n\ndef _late() -> None:\n    from mlpipe.run import runner  # noqa: F401\n"
    )
    result = lint_imports({**os.environ, "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 1, result.stdout + result.stderr
    for broken in (
        "Each part imports only the parts below it BROKEN",
        "No import circles",
        "core imports no I/O",
    ):
        assert broken in result.stdout
    assert "mlpipe.core.plan -> mlpipe.run.runner" in result.stdout
