"""Content digests of files and directory trees (sha256, streamed: memory does not grow with data size)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipe.statcache import StatCache

_CHUNK = 1 << 20


def file_sha256(path: Path | str) -> str:
    with open(path, "rb", buffering=0) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """The one serialization every digest of structured data is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def json_digest(value: Any) -> str:
    return "sha256:" + bytes_sha256(canonical_json(value))


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One file of a tree: a regular file (with its exec bit) or a symbolic link (sha256 of its target)."""

    path: str
    """'/'-separated, relative to the tree's top; '' when the tree is a single file."""
    kind: str  # "file" | "link"
    executable: bool
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "x": self.executable,
            "size": self.size,
            "sha256": self.sha256,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Entry:
        return Entry(
            path=data["path"],
            kind=data["kind"],
            executable=data["x"],
            size=data["size"],
            sha256=data["sha256"],
        )


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """A file or directory's content, independent of where it lies: the unit outputs and inputs are keyed by."""

    type: str  # "file" | "dir"
    entries: tuple[Entry, ...]

    @property
    def digest(self) -> str:
        return json_digest({"type": self.type, "entries": [e.to_json() for e in self.entries]})

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "entries": [e.to_json() for e in self.entries]}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Manifest:
        return Manifest(type=data["type"], entries=tuple(Entry.from_json(e) for e in data["entries"]))


def walk_files(top: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every file and link under `top` as ('/'-separated relative path, lstat), in sorted order."""

    def walk(directory: Path, prefix: str) -> Iterator[tuple[str, os.stat_result]]:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            rel = prefix + entry.name
            if stat.S_ISDIR(st.st_mode):
                yield from walk(Path(entry.path), rel + "/")
            elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                yield rel, st

    yield from walk(top, "")


class FileHasher:
    """Hashes files, several at once when there is much to read; a stat cache spares unchanged files."""

    PARALLEL_BYTES = 8 << 20
    """Below this much new data, threads cost more than they save."""

    def __init__(self, stat_cache: StatCache | None = None, *, workers: int | None = None) -> None:
        self.stat_cache = stat_cache
        self.workers = workers or min(8, os.cpu_count() or 1)

    def save(self) -> None:
        if self.stat_cache is not None:
            self.stat_cache.save()

    def hash_file(self, path: Path, st: os.stat_result) -> str:
        name = str(path)
        cached = self.stat_cache.get(name, st) if self.stat_cache else None
        if cached is not None:
            return cached
        digest = file_sha256(path)
        if self.stat_cache:
            self.stat_cache.put(name, st, digest)
        return digest

    def entry(self, path: Path, rel: str, st: os.stat_result) -> Entry:
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(path).encode()
            return Entry(
                path=rel, kind="link", executable=False, size=len(target), sha256=bytes_sha256(target)
            )
        return Entry(
            path=rel,
            kind="file",
            executable=bool(st.st_mode & stat.S_IXUSR),
            size=st.st_size,
            sha256=self.hash_file(path, st),
        )

    def manifest(self, path: Path) -> Manifest:
        """The manifest of a file or a directory (symlinks inside are recorded as links, not followed).

        `path` itself is followed, a file as a directory is: a data file linked in from elsewhere is
        hashed by its content, so editing it changes the digest.
        """
        st = path.stat()
        if not stat.S_ISDIR(st.st_mode):
            return Manifest(type="file", entries=(self.entry(path, "", st),))
        files = list(walk_files(path))
        new_bytes = sum(est.st_size for rel, est in files if not self._cached(path / rel, est))
        if self.workers > 1 and new_bytes >= self.PARALLEL_BYTES:
            from concurrent.futures import ThreadPoolExecutor  # hashlib releases the GIL while it hashes

            with ThreadPoolExecutor(self.workers) as pool:
                entries = tuple(pool.map(lambda item: self.entry(path / item[0], item[0], item[1]), files))
        else:
            entries = tuple(self.entry(path / rel, rel, est) for rel, est in files)
        return Manifest(type="dir", entries=entries)

    def _cached(self, path: Path, st: os.stat_result) -> bool:
        return stat.S_ISLNK(st.st_mode) or (
            self.stat_cache is not None and self.stat_cache.get(str(path), st) is not None
        )
