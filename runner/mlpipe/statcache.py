"""Digests of workspace files remembered by their stat data, so unchanged files are not read again.

An entry is trusted only while the file's (size, mtime_ns, ctime_ns, inode) are unchanged and, as git's
racy-clean rule has it, its mtime is older than a moment before it was hashed: a file modified within the same
clock tick as its hashing could change again without its stat data changing, so it is hashed again. That moment
is the file system's clock when the process began using the table (it touches the table's file and reads its
mtime), stored with each entry it writes.

The per-file table is an SQLite database (stdlib sqlite3), read one entry at a time and written in bounded
batches: memory does not grow with the number of files, and two runs writing at once both keep their entries
(SQLite's lock; a run killed mid-write leaves the last committed state, by its journal). Whole directories are
remembered too (a digest of every file's path and stat data -> the directory's digest), in a small JSON table of
their own, so that a run in which nothing changed reads one small file, never the per-file table. And each run
of a directory's walk (its files between its subdirectories) is kept as its entries' JSON under a digest of
those files' paths and stat data (table `runs`), so that a tree in which one file changed looks up that file's
run alone.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Mapping, Sequence

FORMAT = "mlpipe.statcache/1"
FILES_FORMAT = 2
"""The per-file table's format, as SQLite's user_version (1 was a JSON file, FORMAT, loaded whole)."""

Signature = tuple[int, int, int, int]


class StatData(Protocol):
    """The stat fields a cache entry is checked against: an os.stat_result, or the same fields read back from a
    walk's signature lines (digest.FileStat)."""

    @property
    def st_mode(self) -> int: ...
    @property
    def st_ino(self) -> int: ...
    @property
    def st_size(self) -> int: ...
    @property
    def st_mtime_ns(self) -> int: ...
    @property
    def st_ctime_ns(self) -> int: ...


def signature(st: StatData) -> Signature:
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
        temp = self.path.with_name(f".{self.path.name}.{os.urandom(4).hex()}")
        temp.write_text(json.dumps({"format": FORMAT, "entries": self._entries}, separators=(",", ":")))
        os.replace(temp, self.path)
        self.written_ns = self.path.stat().st_mtime_ns
        self._dirty = False


class _FileTable:
    """Per-file entries in SQLite: looked up one at a time, written in batches of at most PENDING entries.

    Anything wrong with the database (corrupt, locked past the timeout, a full disk) is a miss and an entry not
    kept, never an error: the files are hashed again.
    """

    PENDING = 2048
    DIR_ROWS = 2048
    DIRS = 4
    NAMES_PER_QUERY = 500
    """Below SQLite's default limit of 999 bound parameters (older builds)."""
    BUSY_MS = 5000
    PENDING_RUN_BYTES = 4 << 20
    """Runs' entries held for the next write at most (a run of a directory is its files' JSON, ~150 bytes each)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._broken = False
        self.stamp_ns = 0
        """The file system's clock when this process opened the table: every file it hashes is hashed after."""
        self._held_rows = True
        """Whether the table held any entry when this process opened it (or has been written since): while
        not, every lookup misses and need not be made."""
        self._pending: dict[str, tuple[int, int, int, int, str]] = {}
        self._pending_runs: dict[tuple[str, str], tuple[str, str]] = {}
        self._pending_run_bytes = 0
        self._dirs: OrderedDict[str, dict[str, tuple[Any, ...]] | None] = OrderedDict()
        """The last directories read: name -> row, or None for one too big to hold (read entry by entry)."""

    def _open(self) -> sqlite3.Connection | None:
        if self._db is None and not self._broken:
            import sqlite3

            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = self._connect()
            except (OSError, sqlite3.Error):
                self._broken = True
        return self._db

    def _connect(self) -> sqlite3.Connection:
        import sqlite3

        try:
            return self._prepare()
        except sqlite3.OperationalError:
            raise  # locked, read-only, ...: no cache this time
        except sqlite3.DatabaseError:  # not a database, malformed: start a new one
            self.path.unlink(missing_ok=True)
            return self._prepare()

    def _prepare(self) -> sqlite3.Connection:
        import sqlite3

        db = sqlite3.connect(
            self.path, timeout=self.BUSY_MS / 1000, check_same_thread=False, isolation_level=None
        )
        try:
            db.execute("PRAGMA synchronous=OFF")  # a cache: a kill still leaves the journal's last commit
            db.execute("BEGIN IMMEDIATE")
            try:
                if db.execute("PRAGMA user_version").fetchone()[0] != FILES_FORMAT:
                    db.execute("DROP TABLE IF EXISTS files")
                    db.execute("DROP TABLE IF EXISTS runs")
                    db.execute(
                        "CREATE TABLE files (dir TEXT, name TEXT, size INTEGER, mtime INTEGER, ctime INTEGER,"
                        " ino INTEGER, digest TEXT, stamp INTEGER, PRIMARY KEY (dir, name)) WITHOUT ROWID"
                    )
                    db.execute(f"PRAGMA user_version={FILES_FORMAT}")
                db.execute(  # a table of format 2 may predate it; an older mlpipe leaves it alone
                    "CREATE TABLE IF NOT EXISTS runs (dir TEXT, start TEXT, key TEXT, entries TEXT,"
                    " stamp INTEGER, PRIMARY KEY (dir, start)) WITHOUT ROWID"
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._held_rows = db.execute("SELECT 1 FROM files LIMIT 1").fetchone() is not None
            self.path.with_suffix(".json").unlink(missing_ok=True)  # the table of format 1, loaded whole
            os.utime(self.path)  # the file system's "now", before anything this process hashes
            self.stamp_ns = os.stat(self.path).st_mtime_ns
        except BaseException:
            db.close()
            raise
        return db

    def holds_entries(self) -> bool:
        """Opens the table (taking its stamp, so call it before hashing) and says whether a lookup can hit: False
        for a new or empty table (a fresh clone's), until this process writes to it. A broken table: False."""
        return self._open() is not None and self._held_rows

    def get(self, key: str) -> tuple[Any, ...] | None:
        """(size, mtime, ctime, ino, digest, stamp) of `key`, if stored. A directory's entries are read in one
        query, and the last few directories' kept (a walk comes back to a parent after its subdirectories); a
        directory of more than DIR_ROWS entries is read one entry at a time."""
        directory, _, name = key.rpartition("/")
        rows = self.rows(directory)
        if rows is not None:
            return rows.get(name)
        found = self._query(
            "SELECT size, mtime, ctime, ino, digest, stamp FROM files WHERE dir=? AND name=?",
            (directory, name),
        )
        return found[0] if found else None

    def rows(self, directory: str) -> dict[str, tuple[Any, ...]] | None:
        """Every stored entry of `directory` (name -> row as `get` returns it), read in one query and kept with
        the last few; None for a directory of more than DIR_ROWS entries."""
        if directory in self._dirs:
            self._dirs.move_to_end(directory)
            return self._dirs[directory]
        fetched = self._query(
            "SELECT name, size, mtime, ctime, ino, digest, stamp FROM files WHERE dir=? LIMIT ?",
            (directory, self.DIR_ROWS + 1),
        )
        rows = None if len(fetched) > self.DIR_ROWS else {row[0]: row[1:] for row in fetched}
        self._dirs[directory] = rows
        if len(self._dirs) > self.DIRS:
            del self._dirs[next(iter(self._dirs))]
        return rows

    def some(self, directory: str, names: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        """The stored entries of `names` in a directory too big for `rows`: NAMES_PER_QUERY names a query."""
        found: dict[str, tuple[Any, ...]] = {}
        for start in range(0, len(names), self.NAMES_PER_QUERY):
            chunk = names[start : start + self.NAMES_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            for row in self._query(
                "SELECT name, size, mtime, ctime, ino, digest, stamp FROM files"
                f" WHERE dir=? AND name IN ({marks})",
                (directory, *chunk),
            ):
                found[row[0]] = row[1:]
        return found

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        db = self._open()
        if db is None:
            return []
        import sqlite3

        try:
            return db.execute(sql, args).fetchall()
        except (sqlite3.Error, UnicodeEncodeError):  # a name that is not UTF-8 is never stored
            return []

    def put(self, key: str, value: tuple[int, int, int, int, str]) -> None:
        try:
            key.encode()
        except UnicodeEncodeError:
            return  # a name that is not UTF-8 (os.fsdecode's surrogates): SQLite cannot hold it, so it is not kept
        self._pending[key] = value
        if len(self._pending) >= self.PENDING:
            self.save()

    def get_run(self, directory: str, start: str) -> tuple[Any, ...] | None:
        """(key, entries, stamp) of the run of `directory` whose first file is `start`, if stored."""
        found = self._query(
            "SELECT key, entries, stamp FROM runs WHERE dir=? AND start=?", (directory, start)
        )
        return found[0] if found else None

    def put_run(self, directory: str, start: str, key: str, entries: str) -> None:
        try:
            (directory + start + entries).encode()
        except UnicodeEncodeError:
            return  # a name that is not UTF-8: not kept, as in `put`
        self._pending_runs[directory, start] = (key, entries)
        self._pending_run_bytes += len(entries)
        if self._pending_run_bytes >= self.PENDING_RUN_BYTES:
            self.save()

    def save(self) -> None:
        pending, self._pending = self._pending, {}
        runs, self._pending_runs, self._pending_run_bytes = self._pending_runs, {}, 0
        db = self._open() if pending or runs else None
        if db is None:
            return
        import sqlite3

        rows = [(*key.rpartition("/")[::2], *value, self.stamp_ns) for key, value in pending.items()]
        run_rows = [(*where, *value, self.stamp_ns) for where, value in runs.items()]
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                db.executemany("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?)", run_rows)
                db.execute("COMMIT")
                self._held_rows = True
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error:
            pass  # not kept: hashed again next time


class StatCache:
    def __init__(self, path: Path, root: Path, *, exclude: Path | None = None) -> None:
        self.path = path
        self.root = str(root) + os.sep
        self.exclude = str(exclude) + os.sep if exclude else None
        """Not cached: mlpipe's own state (staged outputs come and go)."""
        self._files = _FileTable(path.with_suffix(".sqlite"))
        self._trees = _Table(path.with_name(f"{path.stem}-trees{path.suffix}"))
        self._lock = threading.Lock()
        """Guards both tables: the hasher's pool threads and the runner's step threads read and add entries while
        another thread may save them."""

    def _key(self, path: str) -> str | None:
        """Workspace-relative key; files outside the workspace are not cached."""
        if not path.startswith(self.root) or (self.exclude and path.startswith(self.exclude)):
            return None
        return path[len(self.root) :]

    def get(self, path: str, st: StatData) -> str | None:
        key = self._key(path)
        if key is None:
            return None
        with self._lock:
            entry = self._files.get(key)
        return _trusted(entry, st)

    def rows(self, directory: str, names: Callable[[], Sequence[str]]) -> Mapping[str, tuple[Any, ...]]:
        """The stored entries of a directory's files (file name -> entry, for `trusted`), read in one query (in
        chunks of `names()` for a directory too big to read whole; nothing outside the workspace): a walk that
        has a directory's stat data in hand looks its files up without a call per file."""
        key = self._key(directory + os.sep)
        if key is None:
            return {}
        key = key[:-1]  # the workspace-relative directory, '' for the workspace itself
        with self._lock:
            rows = self._files.rows(key)
            return rows if rows is not None else self._files.some(key, names())

    def put(self, path: str, st: StatData, digest: str) -> None:
        key = self._key(path)
        if key is not None:
            with self._lock:
                self._files.put(key, (*signature(st), digest))

    def put_many(self, hashed: Sequence[tuple[str, StatData, str]]) -> None:
        """`put` of each (path, lstat, digest), under one lock: a hashed batch's files at once."""
        keyed = [(key, st, digest) for path, st, digest in hashed if (key := self._key(path)) is not None]
        with self._lock:
            for key, st, digest in keyed:
                self._files.put(key, (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, digest))

    def get_run(self, directory: str, start: str, key: str, newest_mtime_ns: int) -> str | None:
        """The entries' JSON (`digest._entry_json`, joined by commas) of the run of files of `directory` that
        begins with the file `start`, if it was kept under `key` (a digest of every file's path and stat data:
        the same key is the same files, unchanged) and none of them was racy then (`trusted`'s rule)."""
        where = self._key(directory + os.sep)
        if where is None:
            return None
        with self._lock:
            row = self._files.get_run(where[:-1], start)
        if row is None or row[0] != key or not isinstance(row[2], int) or newest_mtime_ns >= row[2]:
            return None
        return row[1] if isinstance(row[1], str) else None

    def put_run(self, directory: str, start: str, key: str, newest_mtime_ns: int, entries: str) -> None:
        """Keep a run's entries (`get_run`) unless one of its files is racy now: changed since this process
        began using the table, so that it could change again unseen within the same clock tick."""
        where = self._key(directory + os.sep)
        if where is None:
            return
        with self._lock:
            if self._files.stamp_ns > 0 and newest_mtime_ns < self._files.stamp_ns:
                self._files.put_run(where[:-1], start, key, entries)

    def knows_files(self) -> bool:
        """Whether a per-file lookup can hit at all (`_FileTable.holds_entries`): on a fresh clone's new table it
        cannot, and a hasher asks nothing of it. Opens the table, taking its stamp: call it before hashing."""
        with self._lock:
            return self._files.holds_entries()

    def knows_tree(self, path: str) -> bool:
        """Whether a digest of the directory `path` is stored at all (whatever its signature): without one,
        `get_tree` misses for any signature, so there is no need to walk the tree for one."""
        key = self._key(path)
        if key is None:
            return False
        with self._lock:
            return key in self._trees.entries

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
        """Write what changed; an entry that was racy is trusted once a later process hashed it again."""
        with self._lock:
            self._files.save()
            self._trees.save()


def _trusted(entry: tuple[Any, ...] | None, st: StatData) -> str | None:
    return None if entry is None else trusted(entry, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def trusted(entry: tuple[Any, ...], size: int, mtime_ns: int, ctime_ns: int, ino: int) -> str | None:
    """The digest of a stored entry (as `rows` gives it) if the file's stat data is unchanged and it was not racy
    when hashed."""
    if (
        entry[0] != size
        or entry[1] != mtime_ns
        or entry[2] != ctime_ns
        or entry[3] != ino
        or not isinstance(entry[5], int)
        or mtime_ns >= entry[5]
    ):
        return None
    digest = entry[4]
    return digest if isinstance(digest, str) else None
