"""The check every fault scenario ends with: `mlpipe fsck` finds the store whole."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def fsck(store_dir: Path, *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlpipe", "fsck", "--cache", str(store_dir)],
        cwd=cwd or store_dir.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_store_whole(store_dir: Path) -> None:
    """`mlpipe fsck --cache STORE` exits 0; on failure the assertion shows everything it said."""
    done = fsck(store_dir)
    assert done.returncode == 0, (
        f"mlpipe fsck --cache {store_dir} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    )
    assert "Traceback" not in done.stderr, done.stderr
