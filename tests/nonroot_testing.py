"""Running mlpipe as an unprivileged user (`nobody`) from tests that run as root, where permission and
ownership mistakes would pass unnoticed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import mlpipe
from ci_testing import IN_CI

NOBODY = 65534

needs_root = pytest.mark.skipif(
    not IN_CI and (os.getuid() != 0 or shutil.which("setpriv") is None),
    reason="needs root and setpriv to run as nobody (under CI=true it runs, and fails without them)",
)


def as_nobody(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    setpriv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return subprocess.run(
        [*setpriv, *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def python_for_nobody(env: dict[str, str], cwd: Path) -> list[str]:
    """This interpreter if `nobody` can run it; else the system's of the same version on this venv's packages."""
    if as_nobody([sys.executable, "-c", "import mlpipe"], env, cwd).returncode == 0:
        return [sys.executable]
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if system.exists():
        paths = [str(Path(mlpipe.__file__).parents[1]), sysconfig.get_paths()["purelib"]]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        if as_nobody([str(system), "-c", "import mlpipe, yaml, docker"], env, cwd).returncode == 0:
            return [str(system)]
    pytest.fail(f"no Python interpreter that uid {NOBODY} can run mlpipe with", pytrace=False)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory `nobody` can reach (pytest's tmp_path is private to root)."""
    top = Path(tempfile.mkdtemp(prefix="mlpipe-nobody-", dir="/tmp"))
    top.chmod(0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)
