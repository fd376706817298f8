"""Content digests of files and directory trees (sha256, streamed: memory does not grow with data size)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import stat
import threading
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar, overload

from mlpipe import records
from mlpipe.errors import present
from mlpipe.frozen import frozen
from mlpipe.jsonstream import Scanner
from mlpipe.statcache import StatCache, StatData, trusted

if TYPE_CHECKING:
    from concurrent.futures import Future

T = TypeVar("T")

_CHUNK = 1 << 20
_CHUNK_ENTRIES = 1024
"""Entries turned into JSON at once when a whole manifest is hashed or written."""
_HEX64 = re.compile(r"[0-9a-f]{64}")


def is_sha256_hex(value: object) -> bool:
    """Exactly 64 lowercase hex characters: the only sha256 that may name an object or build a path."""
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


def is_digest(value: object) -> bool:
    """An OCI content digest as mlpipe accepts it: 'sha256:' and 64 lowercase hex characters."""
    return isinstance(value, str) and value.startswith("sha256:") and is_sha256_hex(value[7:])


def file_sha256(path: Path | str) -> str:
    """The sha256 of a file's bytes, read into a buffer this thread keeps: `hashlib.file_digest` allocates and
    zeroes a new 256 KiB buffer per file, which for 20,000 files of 50 kB costs about 50 ms of 1 s (issue 18)."""
    buffer = getattr(_BUFFERS, "buffer", None)
    if buffer is None:
        buffer = _BUFFERS.buffer = memoryview(bytearray(_CHUNK))
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while size := f.readinto(buffer):
            digest.update(buffer[:size])
    return digest.hexdigest()


_BUFFERS = threading.local()
"""One read buffer of _CHUNK bytes per thread that hashes files (`file_sha256`)."""


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """The one serialization every digest of structured data is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def json_digest(value: Any) -> str:
    return "sha256:" + bytes_sha256(canonical_json(value))


class Entry(NamedTuple):
    """One file of a tree: a regular file (with its exec bit) or a symbolic link (sha256 of its target).

    A named tuple, not a dataclass: a manifest's packed entries (`Entries`) make one per file each time they are
    read, and a tuple is made in a third of the time a frozen dataclass takes."""

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
    def from_json(data: Any, where: str = "entry") -> Entry:
        """An entry as stored; raises records.BadRecord for any field that fails its check."""
        path, kind, executable, size, sha256 = records.entry(data, where)
        return Entry(path=path, kind=kind, executable=executable, size=size, sha256=sha256)


_LINK, _EXECUTABLE = 2, 1
"""An entry's flags in `Entries`."""


class Entries(Sequence[Entry]):
    """A manifest's entries packed into a few buffers, an `Entry` made only when one is read: about 50 bytes a file
    besides its path (paths joined in one string, sha256s as 32 raw bytes, sizes and flags in arrays), where a
    tuple of `Entry` held about 300 (issue 18: a 100,000-file output's manifest, 30 MB -> 7 MB)."""

    __slots__ = ("_flags", "_paths", "_shas", "_sizes", "_starts")
    _paths: str
    _starts: array[int]
    """Where each path starts in `_paths`, and where the last ends."""
    _shas: bytes
    _sizes: array[int]
    _flags: bytes

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        packer = EntriesPacker()
        for e in entries:
            packer.add(e.path, e.kind, e.executable, e.size, e.sha256)
        packer.fill(self)

    def __len__(self) -> int:
        return len(self._sizes)

    @overload
    def __getitem__(self, index: int) -> Entry: ...
    @overload
    def __getitem__(self, index: slice) -> list[Entry]: ...
    def __getitem__(self, index: int | slice) -> Entry | list[Entry]:
        if isinstance(index, slice):
            return [self._entry(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("entry index out of range")
        return self._entry(index)

    def _entry(self, i: int) -> Entry:
        flags = self._flags[i]
        return _new_entry(
            (
                self._paths[self._starts[i] : self._starts[i + 1]],
                "link" if flags & _LINK else "file",
                bool(flags & _EXECUTABLE),
                self._sizes[i],
                self._shas[32 * i : 32 * i + 32].hex(),
            )
        )

    def __iter__(self) -> Iterator[Entry]:
        paths, starts, flags, sizes, shas = self._paths, self._starts, self._flags, self._sizes, self._shas
        new, link, executable = _new_entry, _LINK, _EXECUTABLE
        for i in range(len(sizes)):
            f = flags[i]
            yield new(
                (
                    paths[starts[i] : starts[i + 1]],
                    "link" if f & link else "file",
                    f & executable == executable,
                    sizes[i],
                    shas[32 * i : 32 * i + 32].hex(),
                )
            )

    def paths(self) -> Iterator[str]:
        """Each entry's path, without an Entry each."""
        paths, starts = self._paths, self._starts
        return (paths[starts[i] : starts[i + 1]] for i in range(len(self._sizes)))

    def sha256s(self) -> Iterator[str]:
        """Each entry's sha256, without an Entry each."""
        shas = self._shas
        return (shas[i : i + 32].hex() for i in range(0, len(shas), 32))

    def files(self) -> Iterator[tuple[str, bool]]:
        """Each entry's (path, whether it is a link), without an Entry each."""
        paths, starts, flags = self._paths, self._starts, self._flags
        return ((paths[starts[i] : starts[i + 1]], flags[i] & _LINK != 0) for i in range(len(flags)))

    def has_links(self) -> bool:
        return any(f & _LINK for f in self._flags)

    def total_size(self) -> int:
        return sum(self._sizes)

    def _key(self) -> tuple[Any, ...]:
        return (self._paths, self._starts, self._shas, self._sizes, self._flags)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Entries):
            return self._key() == other._key()
        if isinstance(other, tuple | list):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._paths, self._shas, bytes(self._flags)))

    def __repr__(self) -> str:
        return f"Entries({list(self)!r})"


_new_entry = functools.partial(tuple.__new__, Entry)
_ABSENT = object()


class EntriesPacker:
    """`Entries` built an entry at a time, straight from its fields (a record read in a stream, a walk)."""

    _JOIN = 1024

    def __init__(self) -> None:
        self._chunks: list[str] = []
        self._pending: list[str] = []
        self._length = 0
        self._starts = array("Q", [0])
        self._shas = bytearray()
        self._sizes = array("Q")
        self._flags = bytearray()

    def add(self, path: str, kind: str, executable: bool, size: int, sha256: str) -> None:
        """One entry; `sha256` is 64 lowercase hex characters (ValueError otherwise: it could not round-trip)."""
        raw = bytes.fromhex(sha256)
        if len(raw) != 32 or len(sha256) != 64 or (not sha256.islower() and not sha256.isdigit()):
            raise ValueError(f"not a sha256 in lowercase hex: {sha256!r}")
        self._shas += raw
        self._pending.append(path)
        self._length += len(path)
        self._starts.append(self._length)
        self._sizes.append(size)
        self._flags.append((_LINK if kind == "link" else 0) | (_EXECUTABLE if executable else 0))
        if len(self._pending) >= self._JOIN:
            self._chunks.append("".join(self._pending))
            self._pending.clear()

    def __len__(self) -> int:
        return len(self._sizes)

    def _joined(self) -> str:
        if self._pending:
            self._chunks.append("".join(self._pending))
            self._pending.clear()
        if len(self._chunks) != 1:
            self._chunks = ["".join(self._chunks)]
        return self._chunks[0]

    @property
    def sizes(self) -> array[int]:
        return self._sizes

    def files(self) -> Iterator[tuple[str, bool]]:
        """Each entry's (path, whether it is a link) so far."""
        paths, starts, flags = self._joined(), self._starts, self._flags
        return ((paths[starts[i] : starts[i + 1]], flags[i] & _LINK != 0) for i in range(len(flags)))

    def fill(self, entries: Entries, shas: bytes | None = None, sizes: array[int] | None = None) -> None:
        """`entries` made of what was added; `shas` and `sizes`, when given, in place of the entries' own."""
        if (shas is not None and len(shas) != len(self._shas)) or (
            sizes is not None and len(sizes) != len(self)
        ):
            raise ValueError("sha256s or sizes for another number of entries")
        entries._paths = self._joined()
        entries._starts = self._starts
        entries._shas = bytes(self._shas if shas is None else shas)
        entries._sizes = self._sizes if sizes is None else sizes
        entries._flags = bytes(self._flags)

    def entries(self, shas: bytes | None = None, sizes: array[int] | None = None) -> Entries:
        packed = Entries.__new__(Entries)
        self.fill(packed, shas, sizes)
        return packed


@frozen(kw_only=True)
class Manifest:
    """A file or directory's content, independent of where it lies: the unit outputs and inputs are keyed by.

    `entries` may be given as any sequence of `Entry`; it is kept packed (`Entries`)."""

    type: str  # "file" | "dir"
    entries: Sequence[Entry]

    def __post_init__(self) -> None:
        if not isinstance(self.entries, Entries):
            object.__setattr__(self, "entries", Entries(self.entries))

    @cached_property
    def digest(self) -> str:
        """json_digest of to_json(), taken a chunk of entries at a time (not a dict per entry all at once), once."""
        digest = ManifestDigest(self.type)
        for start in range(0, len(self.entries), _CHUNK_ENTRIES):
            digest.add(self.entries[start : start + _CHUNK_ENTRIES])
        return digest.hexdigest()

    @property
    def size(self) -> int:
        entries = self.entries
        return entries.total_size() if isinstance(entries, Entries) else sum(e.size for e in entries)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "entries": [e.to_json() for e in self.entries]}

    @staticmethod
    def from_json(data: Any, where: str = "manifest") -> Manifest:
        """A manifest as stored, read from a registry or a shared store: every field checked (records.manifest),
        records.BadRecord otherwise."""
        kind, entries = records.manifest(data, where)
        packer = EntriesPacker()
        for path, k, x, size, sha256 in entries:
            packer.add(path, k, x, size, sha256)
        return Manifest(type=kind, entries=packer.entries())

    @staticmethod
    def read(scanner: Scanner, where: str = "manifest") -> Manifest:
        """A manifest as stored, read from `scanner` an entry at a time into packed entries (never a parsed dict
        per entry, nor the record's whole text): every field checked as `from_json` checks it."""
        kind: Any = _ABSENT
        packer: EntriesPacker | None = None
        for key in scanner.members(where):
            if key == "entries":
                packer = EntriesPacker()
                for i in scanner.items(f"{where}.entries", records.array):
                    packer.add(*records.entry(scanner.value(), f"{where}.entries[{i}]"))
            elif key == "type":
                kind = scanner.value()
            else:
                scanner.value()
        if kind is _ABSENT:
            raise records.BadRecord(where, "no 'type'")
        kind = records.choice(kind, ("file", "dir"), f"{where}.type")
        if packer is None:
            raise records.BadRecord(where, "no 'entries'")
        entries = packer.entries()
        records.check_manifest(kind, entries.files, len(entries), where)
        return Manifest(type=kind, entries=entries)


def walk_files(top: Path | str, *, specials: bool = False) -> Iterator[tuple[str, os.stat_result]]:
    """Every file and link under `top` as ('/'-separated relative path, lstat), in sorted order; with
    `specials`, FIFOs, sockets and devices too (a check of a tree must see them: a hash walk skips them)."""

    def walk(directory: str, prefix: str, flags: int) -> Iterator[tuple[str, os.stat_result]]:
        names, stats = _listing(directory, flags)
        for name, st in zip(names, stats, strict=True):
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                yield from walk(directory + os.sep + name, prefix + name + "/", _OPEN_SUBDIR)
            elif specials or stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                yield prefix + name, st

    yield from walk(os.fspath(top), "", _OPEN_TOP)


def _listing(directory: str, flags: int) -> tuple[list[str], list[os.stat_result]]:
    """The names in `directory`, sorted, and each one's lstat, taken relative to the directory's descriptor: the
    kernel looks up one name per file instead of the whole path again (issue 18: a walk of 20,000 files in 100
    directories, ~85 -> ~66 ms CPU). One descriptor is open at a time, closed before the walk goes deeper."""
    fd = os.open(directory, flags)
    try:
        names = sorted(os.listdir(fd))
        lstat = os.lstat
        return names, [lstat(name, dir_fd=fd) for name in names]
    finally:
        os.close(fd)


_OPEN_TOP = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
"""A walk's top is followed if it is a link (an input linked in from elsewhere is walked as its target)."""
_OPEN_SUBDIR = _OPEN_TOP | os.O_NOFOLLOW
"""A directory below it was lstat'ed as one: a link swapped in since then fails (ELOOP), never followed."""


def tree_signature(files: Iterable[tuple[str, os.stat_result]]) -> tuple[str, int]:
    """A digest of every file's path and stat data, and the newest mtime: what the tree cache is keyed by.

    Fed file by file, so a walk (`walk_files`) passed in is never held whole: memory stays flat in the number
    of files. The bytes hashed are the lines joined by newlines, as they always were (stored keys still match).
    """
    h = hashlib.blake2b(digest_size=20)
    newest = 0
    separator = b""
    for rel, st in files:
        line = f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\0{st.st_mode}"
        h.update(separator + line.encode("utf-8", "surrogateescape"))
        separator = b"\n"
        newest = max(newest, st.st_mtime_ns)
    return h.hexdigest(), newest


def walk_signature(top: str) -> tuple[str, int]:
    """`tree_signature(walk_files(top))` in one pass, the same bytes hashed (stored keys still match): each
    directory's run of files between its subdirectories is joined and hashed at once, no generator is resumed
    per file, and the file type is read from the mode without a call. A no-op run signs every input tree this
    way (issue 18: 20,000 files, ~98 -> ~80 ms; the bare `walk_files` loop alone takes ~72 ms)."""
    signature, newest, _runs = _signed_walk(top, 0)
    return signature, newest


Run = tuple[str, bytes, int]
"""A directory's run of files between its subdirectories, as `walk_signature` hashed them: the directory's
'/'-terminated prefix ('' at the top), the run's signature lines joined by newlines, and its newest mtime."""


def _signed_walk(top: str, keep_bytes: int) -> tuple[str, int, list[Run] | None]:
    """`walk_signature`, also handing back the walk's runs while they total at most `keep_bytes` (None beyond
    that, or if a name holds a newline and the lines would not split apart again): what a stat-cache miss needs
    to look the files up without walking again. The bytes kept are the ones hashed anyway, one object a run:
    nothing is done per file for them."""
    h = hashlib.blake2b(digest_size=20)
    newest = 0
    separator = b""
    runs: list[Run] | None = [] if keep_bytes > 0 else None
    kept = 0

    def walk(directory: str, prefix: str, flags: int) -> None:
        nonlocal newest
        names, stats = _listing(directory, flags)
        lines: list[str] = []
        run_newest = 0
        for name, st in zip(names, stats, strict=True):
            mode = st.st_mode
            kind = mode & _S_IFMT
            if kind == stat.S_IFDIR:
                if lines:
                    run(prefix, lines, run_newest)
                    lines, run_newest = [], 0
                walk(directory + os.sep + name, prefix + name + "/", _OPEN_SUBDIR)
            elif kind in _FILE_KINDS:
                mtime = st.st_mtime_ns
                lines.append(f"{prefix}{name}\0{st.st_size}\0{mtime}\0{st.st_ctime_ns}\0{st.st_ino}\0{mode}")
                if mtime > run_newest:  # noqa: PLR1730 (a call to max() per file costs more, in this hot loop)
                    run_newest = mtime
        if lines:
            run(prefix, lines, run_newest)

    def run(prefix: str, lines: list[str], run_newest: int) -> None:
        nonlocal newest, separator, runs, kept
        newest = max(newest, run_newest)
        joined = "\n".join(lines).encode("utf-8", "surrogateescape")
        h.update(separator + joined)
        separator = b"\n"
        if runs is not None:
            kept += len(joined)
            if kept > keep_bytes or joined.count(b"\n") != len(lines) - 1:
                runs = None  # too many to hold, or a name with a newline: a miss walks again
            else:
                runs.append((prefix, joined, run_newest))

    walk(top, "", _OPEN_TOP)
    return h.hexdigest(), newest, runs


class FileStat(NamedTuple):
    """The stat fields of a file as a signature line holds them (`_signed_walk`)."""

    st_mode: int
    st_ino: int
    st_size: int
    st_mtime_ns: int
    st_ctime_ns: int


_S_IFMT = 0o170000
"""`stat.S_IFMT(mode)` is `mode & 0o170000`."""
_FILE_KINDS = frozenset({stat.S_IFREG, stat.S_IFLNK})
"""What `walk_files` yields (without `specials`): regular files and links."""


class FileHasher:
    """Hashes files, several at once when there is much to read; a stat cache spares unchanged files."""

    PARALLEL_BYTES = 8 << 20
    """Below this much new data, threads cost more than they save."""
    KEEP_BYTES = 8 << 20
    """A directory's walk keeps its signature lines up to this many bytes (one bytes object a directory run;
    about 100,000 files of the benchmark's path lengths), so that a stat-cache miss looks the files up from the
    one walk instead of walking again; beyond, it walks again (memory stays bounded in the number of files)."""

    def __init__(self, stat_cache: StatCache | None = None, *, workers: int | None = None) -> None:
        self.stat_cache = stat_cache
        self.workers = workers or min(8, os.cpu_count() or 1)
        self._signatures: dict[str, str] = {}
        """Path -> tree_signature of the last `digest()` walk, so callers need not walk it again: written by
        whichever thread digests (the plan's, a step's), so under `_lock`."""
        self._lock = threading.Lock()

    def save(self) -> None:
        if self.stat_cache is not None:
            self.stat_cache.save()

    def hash_file(self, path: Path | str, st: StatData) -> str:
        name = os.fspath(path)
        cached = self.stat_cache.get(name, st) if self.stat_cache else None
        if cached is not None:
            return cached
        digest = file_sha256(name)
        if self.stat_cache:
            self.stat_cache.put(name, st, digest)
        return digest

    def _hash_new(self, base: str, batch: Sequence[tuple[str, StatData]]) -> list[str]:
        """The digests of regular files the stat cache was already asked about (and did not know), kept in it
        a batch at a time: no second lookup, one lock per batch."""
        digests = [file_sha256(base + rel) for rel, _st in batch]
        if self.stat_cache is not None and batch:
            self.stat_cache.put_many(
                [(base + rel, st, d) for (rel, st), d in zip(batch, digests, strict=True)]
            )
        return digests

    def entry(self, path: Path | str, rel: str, st: StatData) -> Entry:
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

    def digest(self, path: Path) -> str:
        """The content digest of a file or directory, as `manifest(path).digest`.

        A directory whose files' stat data all match the last time it was hashed is not hashed again, not even
        file by file: one walk decides (this is what keeps a no-op run close to a bare stat walk). A directory
        is hashed as it is walked, in bounded batches, and its digest taken entry by entry: memory stays flat in
        the number of files.
        """
        top = os.fspath(path)
        st = os.stat(top)
        if not stat.S_ISDIR(st.st_mode):
            return self._file_digest(path)
        if self.stat_cache is None:
            digest = ManifestDigest("dir")
            pipeline = _EntryJson(self, top, digest.add_json)
            for rel, file_st in walk_files(top):
                pipeline.add(rel, file_st)
            pipeline.close()
            return digest.hexdigest()
        cached, runs = None, None
        if self.stat_cache.knows_tree(top):  # else (a fresh clone, a new input) no signature can match
            signature, newest, runs = _signed_walk(top, self.KEEP_BYTES)
            cached = self.stat_cache.get_tree(top, signature, newest)
        if cached is None:
            digest = ManifestDigest("dir")
            if runs is not None:
                # A miss: hashed from the walk's own stat data, so the digest is keyed by the signature of the
                # very walk it was computed from; a run whose signature lines are as stored is taken whole.
                stored = _StoredRuns(self.stat_cache, digest.add_json)
                pipeline = _EntryJson(self, top, stored.add)
                for run in runs:
                    self._take_run(pipeline, stored, top, run)
            else:
                # A tree never signed (walked once, here), or too many files to hold their lines (or a name
                # with a newline): walk (again), hashing as it goes, and key the digest by the signature of
                # that walk, in case a file changed between the walks.
                pipeline = _EntryJson(self, top, digest.add_json)
                signature, _ = tree_signature(pipeline.tap(walk_files(top)))
            pipeline.close()
            cached = digest.hexdigest()
            self.stat_cache.put_tree(top, signature, cached)
        with self._lock:
            self._signatures[top] = signature
        return cached

    def _take_run(self, pipeline: _EntryJson, stored: _StoredRuns, top: str, run: Run) -> None:
        """A run's entries into `pipeline`: the JSON stored for it if its signature lines are the very ones it
        was stored under (every file's path and stat data; none racy then), else file by file (`_put_run`),
        and then kept for next time."""
        prefix, joined, run_newest = run
        directory = top + os.sep + prefix[:-1] if prefix else top
        first = joined[: joined.index(b"\0")].decode("utf-8", "surrogateescape")[len(prefix) :]
        key = hashlib.blake2b(joined, digest_size=20).hexdigest()
        cache = present(self.stat_cache, "a run looked up without a stat cache")
        entries = cache.get_run(directory, first, key, run_newest)
        if entries is not None:
            stored.expect(None, 1)
            pipeline.emit(entries)
        else:
            stored.expect((directory, first, key, run_newest), joined.count(b"\n") + 1)
            self._put_run(pipeline, top, prefix, joined)

    def _put_run(self, pipeline: _Hashing[str], top: str, prefix: str, joined: bytes) -> None:
        """A run's files into `pipeline`, read back from its signature lines (a name holds no NUL, so a line
        splits into exactly its six fields; `_signed_walk` kept no run whose names hold a newline), each with
        its digest where the stat cache trusts it, the directory's entries read in one query."""
        cache = present(self.stat_cache, "a run looked up without a stat cache")
        lines = joined.decode("utf-8", "surrogateescape").split("\n")
        start = len(prefix)
        directory = top + os.sep + prefix[:-1] if prefix else top
        rows = cache.rows(directory, lambda: [line[start : line.index("\0")] for line in lines])
        put = pipeline.put
        for line in lines:
            rel, size_, mtime_, ctime_, ino_, mode_ = line.split("\0")
            size, mtime, ctime, ino = int(size_), int(mtime_), int(ctime_), int(ino_)
            row = rows.get(rel[start:])
            known = None if row is None else trusted(row, size, mtime, ctime, ino)
            put(rel, FileStat(int(mode_), ino, size, mtime, ctime), known)

    def _file_digest(self, path: Path) -> str:
        if self.stat_cache is None:
            return self.manifest(path).digest
        top = os.fspath(path)
        signature, newest = tree_signature([("", os.stat(top))])
        cached = self.stat_cache.get_tree(top, signature, newest)
        if cached is None:
            st = os.stat(top)
            signature, _ = tree_signature([("", st)])
            cached = Manifest(type="file", entries=(self.entry(path, "", st),)).digest
            self.stat_cache.put_tree(top, signature, cached)
        with self._lock:
            self._signatures[top] = signature
        return cached

    def signature(self, path: Path | str) -> str | None:
        """The stat signature `digest()` last saw of `path`, if it digested it."""
        with self._lock:
            return self._signatures.get(os.fspath(path))

    def remember(self, other: FileHasher) -> None:
        """Take the signatures another hasher saw (inputs outside the workspace have a stat cache of their own)."""
        with other._lock:
            seen = dict(other._signatures)
        with self._lock:
            self._signatures.update(seen)

    def manifest(self, path: Path) -> Manifest:
        """The manifest of a file or a directory (symlinks inside are recorded as links, not followed).

        `path` itself is followed, a file as a directory is: a data file linked in from elsewhere is
        hashed by its content, so editing it changes the digest.
        """
        st = path.stat()
        if not stat.S_ISDIR(st.st_mode):
            return Manifest(type="file", entries=(self.entry(path, "", st),))
        top = os.fspath(path)
        entries: list[Entry] = []
        pipeline = _Entries(self, top, entries.extend)
        for rel, file_st in walk_files(top):
            pipeline.add(rel, file_st)
        pipeline.close()
        return Manifest(type="dir", entries=entries)


class ManifestDigest:
    """`Manifest.digest` taken entry by entry, without holding the entries: the same bytes are hashed (the
    canonical JSON of {"entries": [...], "type": ...}, keys sorted)."""

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._hash = hashlib.sha256(b'{"entries":[')
        self._separator = b""

    def add(self, entries: Sequence[Entry]) -> None:
        """The next entries, in order (a batch at a time). Each is written as `canonical_json(e.to_json())`
        writes it, without the dict and the encoder's walk over it: keys in sorted order, strings through
        json's own escaping, an int's and a bool's JSON spelling (tests compare the bytes with canonical_json)."""
        self.add_json([_entry_json(e.kind, e.path, e.sha256, e.size, e.executable) for e in entries])

    def add_json(self, entries: Sequence[str]) -> None:
        """The next entries, as `_entry_json` wrote them."""
        if entries:
            self._hash.update(self._separator + ",".join(entries).encode())
            self._separator = b","

    def hexdigest(self) -> str:
        """The digest ('sha256:...'); call once, after the last entry."""
        self._hash.update(b"]," + canonical_json({"type": self._kind})[1:])
        return "sha256:" + self._hash.hexdigest()


_json_string: Callable[[str], str] = json.encoder.encode_basestring
"""A str as `json.dumps(..., ensure_ascii=False)` writes it, quotes included (the C function it uses)."""


def _entry_json(kind: str, path: str, sha256: str, size: int, executable: bool) -> str:
    """`canonical_json(entry.to_json())` of an entry with these fields, as a str."""
    quoted = _json_string
    x = "true" if executable else "false"
    return f'{{"kind":{quoted(kind)},"path":{quoted(path)},"sha256":{quoted(sha256)},"size":{int(size)},"x":{x}}}'


_Item = tuple[str, StatData, "str | None"]
"""A file on its way through `_Hashing`: relative path, lstat, and its digest if the stat cache knew it."""


class _Hashing(Generic[T]):
    """The entries of a walk, in walk order, handed to `out` a batch at a time as they are hashed: in batches, a bounded
    number in flight, so memory does not grow with the number of files. What an entry is handed out as, is the
    subclass's (`_Entries`: an Entry; `_EntryJson`: its canonical JSON, for a digest).

    Files are hashed in this thread until FileHasher.PARALLEL_BYTES of new data has been seen, then by a pool of
    threads (hashlib releases the GIL while it hashes), ROUND_BATCHES batches at a time.
    """

    BATCH_FILES = 256
    """A batch, not a future per file: 20,000 futures cost more than the hashing they share."""
    ROUND_BATCHES = 16
    """Batches hashed together before the walk goes on: at most 4,096 files (or 16 x PARALLEL_BYTES) held."""

    def __init__(self, hasher: FileHasher, top: str, out: Callable[[list[T]], None]) -> None:
        self._hasher = hasher
        self._base = top + os.sep
        self._out = out
        self._batch: list[_Item] = []
        self._batch_bytes = 0
        self._new_bytes = 0
        self._pool: Any = None
        self._ahead: deque[Future[list[T]]] = deque()
        self._round: list[list[_Item]] = []
        """Batches walked and not yet hashed (once the threads have started)."""
        cache = hasher.stat_cache
        self._ask = cache is not None and cache.knows_files()
        """Whether to look each file up: not in a table that cannot know it (a fresh clone's, a new one)."""

    def tap(self, files: Iterable[tuple[str, os.stat_result]]) -> Iterator[tuple[str, os.stat_result]]:
        """`files`, unchanged, each also added here as it passes (so one walk feeds a signature and the hash)."""
        for rel, st in files:
            self.add(rel, st)
            yield rel, st

    def add(self, rel: str, st: os.stat_result) -> None:
        known = None
        if self._ask and stat.S_ISREG(st.st_mode):
            known = self._hasher.stat_cache.get(self._base + rel, st)  # type: ignore[union-attr]
        self.put(rel, st, known)

    def put(self, rel: str, st: StatData, known: str | None) -> None:
        """The next file, its digest already looked up (`known`: None where the stat cache had none)."""
        if not stat.S_ISREG(st.st_mode):
            known = None  # a link is read, never looked up
        elif known is None:
            self._batch_bytes += st.st_size
        self._batch.append((rel, st, known))
        if len(self._batch) >= self.BATCH_FILES or self._batch_bytes >= FileHasher.PARALLEL_BYTES:
            self._flush()

    def emit(self, item: T) -> None:
        """Hand out `item` as is, after every file put so far (a stored run's entries, taken whole)."""
        self._flush()
        if self._round:
            self._hash_round()
        self._out([item])

    def close(self) -> None:
        """Hand out what is left; shuts the pool down (also when hashing failed)."""
        try:
            self._flush()
            if self._round:
                self._hash_round()
        finally:
            if self._pool is not None:
                for future in self._ahead:
                    future.cancel()
                self._pool.shutdown()
                self._pool = None

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        self._new_bytes += self._batch_bytes
        self._batch_bytes = 0
        if not batch:
            return
        workers = self._hasher.workers
        if self._pool is None and (workers < 2 or self._new_bytes < self._hasher.PARALLEL_BYTES):
            self._out(self._entries(batch))
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(workers)
        self._round.append(batch)
        if len(self._round) >= self.ROUND_BATCHES:
            self._hash_round()

    def _hash_round(self) -> None:
        # The walk waits while the threads hash, and they wait while it walks: a walk (stat calls, each a GIL
        # hand-off) beside 8 hashing threads waits its turn for the GIL at every file; 20,000 files' walk took
        # 0.4-0.6 s instead of 0.1 s.
        pool = present(self._pool, "a round hashed before its threads started")
        rounds, self._round = self._round, []
        self._ahead.extend(pool.submit(self._entries, batch) for batch in rounds)
        while self._ahead:
            self._out(self._ahead.popleft().result())

    def _entries(self, batch: list[_Item]) -> list[T]:
        raise NotImplementedError

    def _digests(self, batch: list[_Item]) -> list[str | None]:
        """Each file's digest, known or hashed now (the stat cache was asked already: no second lookup, and
        the new ones kept a batch at a time); None for a link."""
        new = [(rel, st) for rel, st, known in batch if known is None and stat.S_ISREG(st.st_mode)]
        hashed = iter(self._hasher._hash_new(self._base, new))
        return [
            known if known is not None else next(hashed) if stat.S_ISREG(st.st_mode) else None
            for _rel, st, known in batch
        ]


class _Entries(_Hashing[Entry]):
    def _entries(self, batch: list[_Item]) -> list[Entry]:
        hasher, base = self._hasher, self._base
        entries = []
        for (rel, st, _known), digest in zip(batch, self._digests(batch), strict=True):
            if digest is None:  # a link
                entries.append(hasher.entry(base + rel, rel, st))
            else:
                executable = bool(st.st_mode & stat.S_IXUSR)
                entries.append(
                    Entry(path=rel, kind="file", executable=executable, size=st.st_size, sha256=digest)
                )
        return entries


class _EntryJson(_Hashing[str]):
    """Each entry as `_entry_json` writes it, a file the stat cache knows without an Entry made for it (20,000
    files: an Entry each cost more than the rest of their JSON)."""

    def _entries(self, batch: list[_Item]) -> list[str]:
        hasher, base = self._hasher, self._base
        entries = []
        for (rel, st, _known), digest in zip(batch, self._digests(batch), strict=True):
            if digest is None:  # a link
                e = hasher.entry(base + rel, rel, st)
                entries.append(_entry_json(e.kind, e.path, e.sha256, e.size, e.executable))
            else:
                entries.append(_entry_json("file", rel, digest, st.st_size, bool(st.st_mode & stat.S_IXUSR)))
        return entries


_RunKey = tuple[str, str, str, int]
"""A run as `StatCache.put_run` keeps it: its directory, its first file's name, its key and its newest mtime."""


class _StoredRuns:
    """The entries' JSON on its way to a digest, cut back into runs as they were put: each run hashed file by
    file is kept in the stat cache (`StatCache.put_run`), so that the next miss takes it whole if its files'
    stat data are unchanged (issue 18: a data change of one file in 100 directories of 200 reads one)."""

    MAX_FILES = 4096
    """A longer run is not kept (its JSON would be held whole until its last entry is hashed)."""

    def __init__(self, cache: StatCache, out: Callable[[Sequence[str]], None]) -> None:
        self._cache = cache
        self._out = out
        self._expected: deque[tuple[_RunKey | None, int]] = deque()
        """The runs whose entries are still to come, in order, and how many of each are."""
        self._held: list[str] = []
        """The entries of the first expected run so far, if it is to be kept."""

    def expect(self, run: _RunKey | None, count: int) -> None:
        """The next run's `count` entries come next: kept once all have passed, unless `run` is None (taken
        from the cache) or it is too long."""
        self._expected.append((run if count <= self.MAX_FILES else None, count))

    def add(self, entries: Sequence[str]) -> None:
        self._out(entries)
        done = 0
        while done < len(entries):
            run, left = self._expected[0]
            taken = entries[done : done + left]
            done += len(taken)
            if run is not None:
                self._held.extend(taken)
            if len(taken) < left:
                self._expected[0] = (run, left - len(taken))
                continue
            self._expected.popleft()
            if run is not None:
                self._cache.put_run(*run, ",".join(self._held))
                self._held.clear()
