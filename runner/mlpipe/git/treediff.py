"""The files that differ between two code snapshot trees, by repository path, and where each one first changed.

The I/O half of naming a code change (core/reasons.py, which gets these as `FileChange`s, is the pure half). A tree's file list comes from the
store's saved listing (every snapshot taken here saves one) or from git's objects (a fresh clone has the base
commit's trees); blob contents from git's objects or the snapshot blob pool. A tree neither has is unknown, and
the reason names the two trees instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mlpipe.git.snapshot import MODE_EXEC, MODE_FILE, SnapshotFile, diff_files

MAX_TEXT_BYTES = 1 << 20
"""Files above this are not compared line by line: the notice sits on their first line."""
LOCATED = 5
"""Changed files whose first changed line is looked for (the ones a reason names first)."""
_OBJECT_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_BINARY_PROBE = 8000
"""Bytes checked for a NUL, as git does to call a file binary."""

Listing = Callable[[str], Sequence[Sequence[Any]] | None]
Changed = tuple[str, str, int | None]
"""(change: added, removed or modified; repository path; first changed line, or None when not looked for)."""


class CodeDiff:
    """For one workspace: `(code dir, old tree, new tree)` -> the changed files, or None (a tree is unknown)."""

    def __init__(self, *, repo_root: Path | None, workspace: str, listing: Listing, pool: Path) -> None:
        """`workspace`: the pipeline's directory relative to the repository root ('' for the root); `listing`:
        the store's saved file list of a tree; `pool`: the snapshot blob pool (`.mlpipe/snapshots/blobs`)."""
        self.repo_root = repo_root
        self.workspace = workspace
        self.listing = listing
        self.pool = pool
        self._repo: Any = None
        self._opened = False

    def __call__(self, code: str, old: str, new: str) -> list[Changed] | None:
        if not (_OBJECT_ID.fullmatch(old) and _OBJECT_ID.fullmatch(new)):
            return None  # an earlier fingerprint may come from a registry: only an object id is looked up
        try:
            return self._changes(code, old, new)
        finally:
            self.close()  # git's pack files stay open no longer than one question (the library API is long-lived)

    def _changes(self, code: str, old: str, new: str) -> list[Changed] | None:
        before, after = self._files(old), self._files(new)
        if before is None or after is None:
            return None
        prefix = _join(self.workspace, code)
        old_files = {f.path: f for f in before}
        new_files = {f.path: f for f in after}
        found: list[Changed] = []
        located = 0
        for change, path in diff_files(before, after):
            line = None
            if change != "removed" and located < LOCATED:
                located += 1
                line = self._first_line(old_files.get(path), new_files[path], _join(prefix, path))
            found.append((change, _join(prefix, path), line))
        return found

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None
        self._opened = False

    # -- trees and blobs -------------------------------------------------------------------------------------
    def _files(self, tree: str) -> list[SnapshotFile] | None:
        saved = self.listing(tree)
        if saved is not None:
            return [SnapshotFile(path=str(p), mode=int(m), blob=str(b), size=0) for p, m, b in saved]
        repo = self._git()
        if repo is None:
            return None
        from dulwich.objects import ObjectID, Tree

        try:
            if not isinstance(repo.object_store[ObjectID(tree.encode())], Tree):
                return None
            entries = repo.object_store.iter_tree_contents(ObjectID(tree.encode()))
            return [
                SnapshotFile(path=os.fsdecode(e.path), mode=e.mode, blob=e.sha.decode(), size=0)
                for e in entries
            ]
        except (KeyError, ValueError, OSError):  # a shallow clone lacks the base's trees
            return None

    def _first_line(self, old: SnapshotFile | None, new: SnapshotFile, path: str) -> int:
        """The first changed line of `new` (at repository path `path`): 1 for an added, binary, too large or
        unreadable file."""
        if old is None or new.mode not in (MODE_FILE, MODE_EXEC) or old.mode not in (MODE_FILE, MODE_EXEC):
            return 1
        after = self._working_file(path, new.blob) or self._blob(new.blob)
        before = self._blob(old.blob) if after is not None else None
        if before is None or after is None:
            return 1
        return first_changed_line(before, after)

    def _working_file(self, path: str, blob: str) -> bytes | None:
        """The file in the working tree, if it still holds `blob` (a dirty tree's blobs are not in git)."""
        if self.repo_root is None or path.startswith("/") or ".." in path.split("/"):
            return None  # a saved listing is a file on disk: only a path inside the repository is opened
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK  # a FIFO put there must not block
        try:
            fd = os.open(self.repo_root / path, flags)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    return None
                data = f.read(MAX_TEXT_BYTES + 1)
        except OSError:
            return None
        if len(data) > MAX_TEXT_BYTES or blob_id(data) != blob:
            return None
        return data

    def _blob(self, blob: str) -> bytes | None:
        """A blob's content at most MAX_TEXT_BYTES long, from the blob pool or git's objects; else None."""
        if not _OBJECT_ID.fullmatch(blob):
            return None
        for name in (blob[2:], blob[2:] + ".x"):
            path = self.pool / blob[:2] / name
            with contextlib.suppress(OSError):
                if path.stat().st_size > MAX_TEXT_BYTES:
                    return None
                return path.read_bytes()
        repo = self._git()
        if repo is None:
            return None
        from dulwich.objects import Blob, ObjectID

        try:
            found = repo.object_store[ObjectID(blob.encode())]
        except (KeyError, ValueError, OSError):
            return None
        if not isinstance(found, Blob) or found.raw_length() > MAX_TEXT_BYTES:
            return None
        data: bytes = found.as_raw_string()
        return data

    def _git(self) -> Any:
        if not self._opened:
            self._opened = True
            if self.repo_root is not None:
                from dulwich.errors import NotGitRepository
                from dulwich.repo import Repo

                with contextlib.suppress(NotGitRepository, OSError):
                    self._repo = Repo(str(self.repo_root))
        return self._repo


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0%s" % (len(data), data), usedforsecurity=False).hexdigest()


def first_changed_line(old: bytes, new: bytes) -> int:
    """The 1-based line of `new` where it first differs from `old` (1 for binary content): the first hunk of a
    line diff starts there. Lines removed at the end point at the last line left."""
    if b"\0" in old[:_BINARY_PROBE] or b"\0" in new[:_BINARY_PROBE]:
        return 1
    before, after = old.split(b"\n"), new.split(b"\n")
    line = next((i + 1 for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b), None)
    if line is None:
        line = min(len(before), len(after)) + (1 if len(after) > len(before) else 0)
    lines = new.count(b"\n") + (0 if new.endswith(b"\n") or not new else 1)
    return max(1, min(line, lines))


def _join(prefix: str, path: str) -> str:
    if path in {"", "."}:
        return prefix
    return posixpath.join(prefix, path) if prefix else path
