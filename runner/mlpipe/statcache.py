"""Digests of workspace files remembered by their stat data, so unchanged files are not read again.

An entry is trusted only while the file's (size, mtime_ns, ctime_ns, inode) are unchanged and, as git's
racy-clean rule has it, its mtime is older than the moment the cache was written: a file modified within the
same clock tick as that write could change again without its stat data changing, so it is hashed again.

Whole directories are remembered too (a digest of every file's path and stat data -> the directory's digest),
in a table of their own, so that a run in which nothing changed reads one small file, not one entry per file.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

FORMAT = "mlpipe.statcache/1"

Signature = tuple[int, int, int, int]


def signature(st: os.stat_result) -> Signature:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class _Table:
    """A JSON mapping on disk, loaded on first use, written atomically when changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, Any] | None = None
        self.written_ns = 0
        self._dirty = False

    @property
    def entries(self) -> dict[str, Any]:
        if self._entries is None:
            self._entries = {}
            try:
                with open(self.path, "rb") as f:
                    self.written_ns = os.fstat(f.fileno()).st_mtime_ns
                    data = json.loads(f.read())
                if data.get("format") == FORMAT and isinstance(data.get("entries"), dict):
                    self._entries = data["entries"]
            except (OSError, ValueError, AttributeError):
                pass  # no cache, or an unreadable one: everything is hashed again
        return self._entries

    def put(self, key: str, value: list[Any]) -> None:
        if self.entries.get(key) != value:
            self.entries[key] = value
            self._dirty = True

    def save(self) -> None:
        if not self._dirty or self._entries is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}")
        temp.write_text(json.dumps({"format": FORMAT, "entries": self._entries}, separators=(",", ":")))
        os.replace(temp, self.path)
        self.written_ns = self.path.stat().st_mtime_ns
        self._dirty = False


class StatCache:
    def __init__(self, path: Path, root: Path, *, exclude: Path | None = None) -> None:
        self.path = path
        self.root = str(root) + os.sep
        self.exclude = str(exclude) + os.sep if exclude else None
        """Not cached: mlpipe's own state (staged outputs come and go)."""
        self._files = _Table(path)
        self._trees = _Table(path.with_name(f"{path.stem}-trees{path.suffix}"))
        self._lock = threading.Lock()
        """Guards both tables: the hasher's pool threads and the runner's step threads read and add entries while
        another thread may save them."""

    def _key(self, path: str) -> str | None:
        """Workspace-relative key; files outside the workspace are not cached."""
        if not path.startswith(self.root) or (self.exclude and path.startswith(self.exclude)):
            return None
        return path[len(self.root) :]

    def get(self, path: str, st: os.stat_result) -> str | None:
        key = self._key(path)
        if key is None:
            return None
        with self._lock:
            entry = self._files.entries.get(key)
            written_ns = self._files.written_ns
        if entry is None or tuple(entry[:4]) != signature(st) or st.st_mtime_ns >= written_ns:
            return None
        digest = entry[4]
        return digest if isinstance(digest, str) else None

    def put(self, path: str, st: os.stat_result, digest: str) -> None:
        key = self._key(path)
        if key is not None:
            with self._lock:
                self._files.put(key, [*signature(st), digest])

    def get_tree(self, path: str, tree_signature: str, newest_mtime_ns: int) -> str | None:
        """A directory's digest, if every file's stat data is as when it was cached and none is racy."""
        key = self._key(path)
        if key is None:
            return None
        with self._lock:
            entry = self._trees.entries.get(key)
            written_ns = self._trees.written_ns
        if not isinstance(entry, list) or entry[0] != tree_signature or newest_mtime_ns >= written_ns:
            return None
        digest = entry[1]
        return digest if isinstance(digest, str) else None

    def put_tree(self, path: str, tree_signature: str, digest: str) -> None:
        key = self._key(path)
        if key is not None:
            with self._lock:
                self._trees.put(key, [tree_signature, digest])

    def save(self) -> None:
        """Write what changed; entries that were racy now are trusted after a later save."""
        with self._lock:
            self._files.save()
            self._trees.save()
