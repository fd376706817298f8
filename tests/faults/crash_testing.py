"""Helpers for the crash, concurrency and pipe faults: processes found by a marker, tracebacks, outside files."""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

MARKER = "MLPIPE_FAULT_MARKER"
"""An environment variable the tests give mlpipe; its steps inherit it, so their processes can be found."""


def marked_processes(token: str) -> list[int]:
    """Pids of live (not zombie) processes whose environment holds MARKER=token (mlpipe's and its steps')."""
    needle = f"{MARKER}={token}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if needle not in Path(entry.path, "environ").read_bytes().split(b"\0"):
                continue
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] not in "ZX":
            found.append(int(entry.name))
    return found


def wait_gone(token: str, timeout: float = 20) -> list[int]:
    """Wait (bounded) until no marked process runs; those still running at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        left = marked_processes(token)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


TRACEBACK = re.compile(r"Traceback \(most recent call last\)|Exception in thread|Exception ignored")


def assert_no_traceback(text: str) -> None:
    assert not TRACEBACK.search(text), text


def tree_digest(top: Path) -> str:
    """Paths, modes and contents of everything under `top` (links as their targets)."""
    h = hashlib.sha256()
    for path in sorted(top.rglob("*")):
        st = path.lstat()
        h.update(f"{path.relative_to(top)}\0{st.st_mode:o}\0".encode())
        if path.is_symlink():
            h.update(os.readlink(path).encode())
        elif path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def leftovers(workspace: Path, run_id: str = "") -> list[str]:
    """Temp dirs and half-renamed checkouts a run left in its workspace (all but `run_id`'s own)."""
    found = [
        str(p) for p in workspace.rglob(".*.mlpipe-*") if ".mlpipe/" not in str(p.relative_to(workspace))
    ]
    tmp = workspace / ".mlpipe/tmp"
    found += [str(p) for p in tmp.iterdir() if p.name != run_id] if tmp.is_dir() else []
    return found
