"""Where steps see their code snapshot: a private copy per running step, and shared read-only trees where
nothing runs (docker build contexts).

Files are copied once into a blob pool keyed by git blob id, each checked against its id as it enters (a file
edited while the run takes its snapshot must not enter under the id of what was hashed), so a step sees
exactly its snapshot: ignored and untracked-ignored files are invisible, as in Azure ML. A step that runs gets
its own copy of those blobs (a reflink where the file system shares extents), removed after it: whatever it
does there, even after `chmod -R u+w`, no later step or run sees, and the record's tree is the code that ran.
Steps never see the pool itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from mlpipe.copies import copy_fd
from mlpipe.git.commands import find_repo, run_git
from mlpipe.git.snapshot import Snapshot, SnapshotChanged, hash_file

_GITLINK = 0o160000
_SYMLINK = 0o120000


def materialize_snapshot(snapshot: Snapshot, pool: Path) -> Path:
    """The read-only directory holding `snapshot`'s files (built on first use), shared: for nothing to run in."""
    top = pool / "trees" / snapshot.tree
    if top.is_dir():
        return top
    temp = pool / "tmp" / os.urandom(16).hex()
    _place(snapshot, pool, temp, lambda blob, target, _executable: os.link(blob, target))
    _make_read_only(temp, but_top=True)
    top.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(temp, top)
    except OSError:
        remove_tree(temp)
        if top.is_dir():  # built concurrently by another step or run
            return top
        raise
    # Only now: moving a directory to another parent rewrites its `..`, which needs write permission on it.
    os.chmod(top, 0o555)
    return top


def private_copy(snapshot: Snapshot, pool: Path, dest: Path) -> Path:
    """A read-only copy of `snapshot`'s files at `dest` (a new directory), for one step to run in; the caller
    removes it with `remove_tree` after the step."""
    _place(snapshot, pool, dest, _copy_file)
    _make_read_only(dest, but_top=False)
    return dest


def _place(snapshot: Snapshot, pool: Path, dest: Path, put: Callable[[Path, Path, bool], None]) -> None:
    """`snapshot`'s tree at `dest` (a new directory): `put(blob, target, executable)` places each file."""
    blobs = pool / "blobs"
    dest.mkdir(parents=True)
    made = {dest}
    for f in snapshot.files:
        target = dest / f.path
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        if f.mode == _GITLINK:
            target.mkdir(exist_ok=True)
        elif f.mode == _SYMLINK:
            os.symlink(_link_target(snapshot, f.path, f.blob), target)
        else:
            executable = f.mode == 0o100755
            put(_pooled_blob(blobs, snapshot, f.path, f.blob, executable=executable), target, executable)


def _copy_file(source: Path, target: Path, executable: bool) -> None:
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            copy_fd(src, dst)
            os.fchmod(dst, 0o555 if executable else 0o444)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _link_target(snapshot: Snapshot, rel: str, blob: str) -> str:
    """A symlink's target as the snapshot hashed it (a link changed since is refused, as a file is)."""
    target = os.readlink(snapshot.directory / rel)
    data = os.fsencode(target)
    if hashlib.sha1(b"blob %d\0%s" % (len(data), data), usedforsecurity=False).hexdigest() != blob:
        raise SnapshotChanged(str(snapshot.directory / rel))
    return target


def _pooled_blob(blobs: Path, snapshot: Snapshot, rel: str, blob: str, *, executable: bool) -> Path:
    path = blobs / blob[:2] / (blob[2:] + (".x" if executable else ""))
    if not path.exists():
        source = snapshot.directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{os.urandom(16).hex()}")
        try:
            shutil.copyfile(source, temp)
            if not _holds_blob(temp, snapshot, rel, blob):
                raise SnapshotChanged(str(source))
            os.chmod(temp, 0o555 if executable else 0o444)
            os.replace(temp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
    return path


def _holds_blob(copy: Path, snapshot: Snapshot, rel: str, blob: str) -> bool:
    """Whether the copied bytes are the blob the snapshot hashed: as they are, or after the clean filters and
    eol conversion git applies to that path (what the snapshot hashed in a repository that sets some)."""
    if hash_file(os.fspath(copy))[0] == blob:
        return True
    repo = find_repo(snapshot.directory)
    if repo is None:
        return False
    where = os.path.relpath(snapshot.directory / rel, repo.root)
    out = run_git(["hash-object", f"--path={where}", "--", os.fspath(copy)], repo.root)
    return out.decode().strip() == blob


def _make_read_only(top: Path, *, but_top: bool) -> None:
    for dirpath, _dirnames, _files in os.walk(top, topdown=False):
        if not (but_top and dirpath == os.fspath(top)):
            os.chmod(dirpath, 0o555)


def remove_tree(top: Path) -> None:
    """Remove a tree whose directories were made read-only (by us, or by a step that chmodded them, even to
    000): each directory is made ours again before it is entered; links are never followed."""
    if not top.is_symlink():
        with contextlib.suppress(OSError):
            os.chmod(top, stat.S_IRWXU)
    for dirpath, dirnames, _files in os.walk(top):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                with contextlib.suppress(OSError):
                    os.chmod(path, stat.S_IRWXU)
    shutil.rmtree(top, ignore_errors=True)
