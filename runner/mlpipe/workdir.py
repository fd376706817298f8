"""Read-only materialized copies of code snapshots, one per tree hash, shared across steps and runs.

Files are copied once into a blob pool keyed by git blob id and hard-linked into each tree, so a step sees
exactly its snapshot: ignored and untracked-ignored files are invisible, as in Azure ML.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import uuid
from pathlib import Path

from mlpipe.snapshot import Snapshot

_GITLINK = 0o160000
_SYMLINK = 0o120000


def materialize_snapshot(snapshot: Snapshot, pool: Path) -> Path:
    """The read-only directory holding `snapshot`'s files (built on first use)."""
    top = pool / "trees" / snapshot.tree
    if top.is_dir():
        return top
    temp = pool / "tmp" / uuid.uuid4().hex
    temp.mkdir(parents=True)
    blobs = pool / "blobs"
    for f in snapshot.files:
        target = temp / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        source = snapshot.directory / f.path
        if f.mode == _GITLINK:
            target.mkdir(exist_ok=True)
        elif f.mode == _SYMLINK:
            os.symlink(os.readlink(source), target)
        else:
            os.link(_pooled_blob(blobs, source, f.blob, executable=f.mode == 0o100755), target)
    _make_read_only(temp, but_top=True)
    top.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(temp, top)
    except OSError:
        _remove(temp)
        if top.is_dir():  # built concurrently by another step or run
            return top
        raise
    # Only now: moving a directory to another parent rewrites its `..`, which needs write permission on it.
    os.chmod(top, 0o555)
    return top


def _pooled_blob(blobs: Path, source: Path, blob: str, *, executable: bool) -> Path:
    path = blobs / blob[:2] / (blob[2:] + (".x" if executable else ""))
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{uuid.uuid4().hex}")
        shutil.copyfile(source, temp)
        os.chmod(temp, 0o555 if executable else 0o444)
        os.replace(temp, path)
    return path


def _make_read_only(top: Path, *, but_top: bool) -> None:
    for dirpath, _dirnames, _files in os.walk(top, topdown=False):
        if not (but_top and dirpath == os.fspath(top)):
            os.chmod(dirpath, 0o555)


def _remove(top: Path) -> None:
    for dirpath, _dirnames, _files in os.walk(top):
        with contextlib.suppress(OSError):
            os.chmod(dirpath, stat.S_IRWXU)
    shutil.rmtree(top, ignore_errors=True)
