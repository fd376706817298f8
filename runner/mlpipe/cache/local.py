"""The local content-addressed store (default `.mlpipe/cache`).

Layout, versioned by `LAYOUT`:
  objects/ab/cdef...     file content by sha256, read-only; `.x` suffix for the executable variant
  results/ab/<fp>.json   a complete step result, written last and atomically (first complete entry wins)
  latest/<pipeline>/<step>.json   the step's most recent result fingerprint, for `plan`
  trees/ab/<tree>.json   file listings of code snapshots, so `plan` can name the files that changed
  materialized/<digest>/ read-only hard-link farms of outputs, shared by every step that reads them
  materialized/<digest>-@stat.json   stat data of a farm's files when last found whole ('@': no alias has it)

Objects are read-only and their mtime is OBJECT_MTIME_NS: an object that differs is hashed before it is linked
or copied for a step, and dropped if its content no longer has its name. A farm is checked before it is handed
to a step and after the step: its files' stat data against the last seen, and the content of the files whose
stat data changed (linking an object for another farm changes its ctime, which is no damage).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import os
import shutil
import stat
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlpipe import records
from mlpipe.cache import farmstat, intake
from mlpipe.cache.base import Handed, LocalObjects, Published
from mlpipe.cache.intake import OBJECT_MTIME_NS, UnstorableOutput
from mlpipe.core.results import StepResult
from mlpipe.digest import Entries, Entry, FileHasher, Manifest, bytes_sha256, walk_files
from mlpipe.errors import MlpipeError, present
from mlpipe.events import Sink, to_stderr, warning
from mlpipe.jsonstream import Scanner
from mlpipe.treepaths import UnsafeTree, check_in_order

LAYOUT = 1
_INGEST_BATCH = _HASH_BATCH = 4096
"""Files of an output hashed at once when it is stored, or when a farm is checked."""
FARM_STAT_SUFFIX = "-@stat.json"
"""materialized/<digest>-@stat.json: a farm's stat data when last found whole ('@' is in no alias name)."""


def check_paths(manifest: Manifest, link_target: Callable[[Entry], str]) -> None:
    """Refuse, before writing anything, a tree that could leave its top: names that are not plain relative paths,
    files under a file or a link, links that resolve outside however they chain (treepaths.check_tree). A
    result in a store several clones share is as untrusted as one from a registry. Raises UnsafeTree."""
    if manifest.type == "dir":
        entries = manifest.entries
        if isinstance(entries, Entries) and not entries.has_links() and check_in_order(entries.files()):
            return  # in walk order and without links: checked in one pass, not as a dict of every path
        records.check_links(entries, link_target)
    elif manifest.entries[0].kind != "file" or manifest.entries[0].path:
        raise UnsafeTree("a file output must be one regular file")


def _link_target(path: Path, entry: Entry) -> str:
    with open(path, "rb") as f:
        return records.link_target(f.read(records.MAX_LINK_BYTES + 1), entry.path)


_TEMP_PREFIX = os.urandom(4).hex()
_TEMP_COUNTER = itertools.count()
"""Temp names of objects being written: a random prefix per process and a counter (a uuid4 per file was a
getrandom call and a UUID object per pulled file; os.urandom, not uuid, keeps `uuid` off the no-op)."""


@functools.cache
def _umask() -> int:
    """This process's umask, read once from /proc (setting it to read it would race with other threads); 0o777,
    so every mode is set explicitly, where it cannot be read."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"Umask:"):
                return int(line.split()[1], 8)
    return 0o777


class NewObject:
    """A store object being written: invisible under its name until `commit`, gone after `discard`.

    It is written as a dot-named temp file in its own objects/ directory and renamed to its name once whole
    and checked; a crash can leave such a temp file (never a wrong object), which `mlpipe gc` removes. Not in
    tmp/, so no rename crosses directories (that takes the file system's rename lock) and tmp/ does not grow
    and shrink by every file in flight. Paths are strings and there is no Path or Entry per object: a pull
    runs this once per file.
    """

    def __init__(self, directory: str, name: str, mode: int) -> None:
        self.target = f"{directory}/{name}"
        while True:  # unique in this process by its counter; O_EXCL settles it against any other writer
            self._temp: str | None = f"{directory}/.{name}.{_TEMP_PREFIX}{next(_TEMP_COUNTER):x}.tmp"
            try:
                self.fd = os.open(self._temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
                break
            except FileExistsError:
                continue
        if mode & _umask():
            os.fchmod(self.fd, mode)  # the umask took bits of it

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        return len(data)

    def commit(self) -> None:
        """Give the object its name (an object already there has the same content: replacing it is harmless)."""
        try:
            os.utime(self.fd, ns=(OBJECT_MTIME_NS, OBJECT_MTIME_NS))  # see intake.OBJECT_MTIME_NS
            os.close(self.fd)
            self.fd = -1
            os.replace(present(self._temp, "an object committed twice"), self.target)
            self._temp = None
        finally:
            self.discard()

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self._temp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._temp)
            self._temp = None


class DamagedData(MlpipeError):
    """Stored data that was found changed when it was to be handed to a step; its damaged objects are dropped."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"stored data was found changed at {self.path!r} and dropped from the store; "
            "the next run fetches or computes it again"
        )


class LocalStore:
    def __init__(self, root: Path, *, hasher: FileHasher | None = None, sink: Sink = to_stderr) -> None:
        """`sink` hears what the store ignores or drops (a corrupt entry, a changed object)."""
        self.root = root
        self.hasher = hasher or FileHasher()
        self.sink = sink
        self._tmp = root / "tmp"
        self._dirs: set[str] = set()
        self._handed: dict[str, Handed] = {}

    @property
    def local(self) -> LocalObjects:
        """This store: it is the store on this machine."""
        return self

    # -- paths ---------------------------------------------------------------------------------------------
    def object_path(self, entry: Entry) -> Path:
        suffix = ".x" if entry.executable else ""
        return self.root / "objects" / entry.sha256[:2] / (entry.sha256[2:] + suffix)

    def object_file(self, sha256: str, executable: bool) -> str:
        """object_path as a string, without an Entry or Path per call (push and pull run it per file)."""
        return f"{self.root}/objects/{sha256[:2]}/{sha256[2:]}{'.x' if executable else ''}"

    def _result_path(self, fingerprint: str) -> Path:
        return self.root / "results" / fingerprint[:2] / f"{fingerprint}.json"

    def _latest_path(self, pipeline: str, step: str) -> Path:
        return self.root / "latest" / _slug(pipeline) / f"{_slug(step)}.json"

    def _tree_path(self, tree: str) -> Path:
        return self.root / "trees" / tree[:2] / f"{tree}.json"

    def _temp_path(self, hint: str = "") -> Path:
        self._tmp.mkdir(parents=True, exist_ok=True)
        return self._tmp / f"{os.urandom(16).hex()}{hint}"

    # -- results -------------------------------------------------------------------------------------------
    def lookup(self, fingerprint: str) -> StepResult | None:
        path = self._result_path(fingerprint)
        try:
            result = read_result(path, "result")
            missing = next((e for m in result.outputs.values() for e in m.entries if not self._has(e)), None)
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, AttributeError) as error:  # also JSON of the wrong shape
            self.sink(warning(f"ignoring corrupt cache entry {path}: {error}"))
            return None
        if missing is not None:
            self.sink(
                warning(
                    f"ignoring incomplete cache entry {fingerprint[:12]}: object of {missing.path!r} is missing"
                )
            )
            return None
        return result

    def lookup_ahead(self, fingerprint: str) -> StepResult | None:
        """As `lookup`: everything stored here is here."""
        return self.lookup(fingerprint)

    def _has(self, entry: Entry) -> bool:
        return os.path.exists(self.object_file(entry.sha256, entry.executable))

    def publish(self, result: StepResult, staged: Mapping[str, Path]) -> Published:
        """Ingest every staged output, then write the entry; the entry appearing is the commit point."""
        manifests = {}
        for name, path in staged.items():
            try:
                manifests[name] = self.ingest(path)
            except UnstorableOutput as error:
                error.output = name
                raise
        result = StepResult(
            fingerprint=result.fingerprint,
            parts=result.parts,
            outputs=manifests,
            metrics=result.metrics,
            provenance=result.provenance,
        )
        return self.commit_result(result)

    def commit_result(self, result: StepResult) -> Published:
        """Write the entry of a result whose objects are all stored; the first complete entry wins."""
        final = self._result_path(result.fingerprint)
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = self._temp_path(".json")
        try:
            with open(temp, "wb") as f:
                f.writelines(result_json(result))
            os.link(temp, final)  # fails if an entry exists: never overwrite the first complete one
            stored, already = result, False
        except FileExistsError:
            existing = self.lookup(result.fingerprint)
            stored, already = (existing, True) if existing is not None else (result, False)
            if existing is None:
                os.replace(temp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        nondeterministic = already and stored.output_digests() != result.output_digests()
        return Published(result=stored, already_stored=already, nondeterministic=nondeterministic)

    def ingest(self, path: Path) -> Manifest:
        """Store a staged output, which is untrusted (see intake.py), and return its manifest.

        Raises UnstorableOutput for what cannot be stored, leaving nothing in the store."""
        taken = intake.take(path, os.fspath(self._temp_path()))
        try:
            shas, sizes = bytearray(), array("Q")
            for start in range(0, len(taken), _INGEST_BATCH):  # bounded: no list of every path or digest
                stop = min(start + _INGEST_BATCH, len(taken))
                batch = [taken.temp(i) for i in range(start, stop)]
                for sha, size in self._hash_files(batch, sum(taken.sizes[start:stop])):
                    shas += bytes.fromhex(sha)
                    sizes.append(size)
            entries = taken.entries(bytes(shas), sizes)
            del shas
            for i, entry in enumerate(entries):
                target = self.object_file(entry.sha256, entry.executable)
                if os.path.exists(target):
                    continue
                directory = os.path.dirname(target)
                if directory not in self._dirs:
                    os.makedirs(directory, exist_ok=True)
                    self._dirs.add(directory)
                os.replace(taken.temp(i), target)
        finally:
            taken.close()
        single = len(entries) == 1 and entries[0].path == ""
        return Manifest(type="file" if single else "dir", entries=entries)

    def _hash_files(self, paths: list[str], size: int = 0) -> list[tuple[str, int]]:
        """(sha256, size) of each file, several at once when there is much to read (`size` bytes in all)."""

        def one(path: str) -> tuple[str, int]:
            with open(path, "rb", buffering=0) as f:
                size = os.fstat(f.fileno()).st_size
                return hashlib.file_digest(f, "sha256").hexdigest(), size

        if self.hasher.workers > 1 and len(paths) > 1 and size >= self.hasher.PARALLEL_BYTES:
            from concurrent.futures import ThreadPoolExecutor  # hashlib releases the GIL while it hashes

            size = max(1, len(paths) // (self.hasher.workers * 4))
            batches = [paths[i : i + size] for i in range(0, len(paths), size)]
            with ThreadPoolExecutor(self.hasher.workers) as pool:
                return [h for batch in pool.map(lambda b: [one(p) for p in b], batches) for h in batch]
        return [one(p) for p in paths]

    # -- reading outputs -----------------------------------------------------------------------------------
    def materialize(self, manifest: Manifest, name: str) -> Path:
        """A read-only hard-link farm of stored data for a step to read, checked first (and rebuilt from its
        objects when damaged); `handed(path)` tells what it holds and its files' stat data now."""
        digest = manifest.digest.removeprefix("sha256:")
        top = self.root / "materialized" / digest
        for _ in range(3):  # a farm another process removes or replaces meanwhile is looked at again
            seen = (
                self._checked(manifest, top) if os.path.lexists(top) else self._new_farm(manifest, top, name)
            )
            if seen is not None:
                break
        else:
            raise DamagedData("")
        content = self._content(manifest, top)
        path = content
        if manifest.type == "file" and content.name != name:  # same content under another output name
            path = top.parent / f"{digest}-{_slug(name)}"
            if not os.path.lexists(path):
                with contextlib.suppress(FileExistsError):
                    os.symlink(content, path)
        self._handed[os.fspath(path)] = Handed(manifest, top, content, seen)
        return path

    def handed(self, path: Path) -> Handed | None:
        """The farm `materialize` returned as `path` (None for a path that is none)."""
        return self._handed.get(os.fspath(path))

    def check_handed(self, handed: Handed) -> str | None:
        """After a step: None if the farm is as handed out (content read only where stat data changed), else
        the first damaged path; the farm is then removed and its damaged objects dropped."""
        try:
            bad, _seen = self._damage(handed.manifest, handed.content, handed.seen)
        except FileNotFoundError:  # removed meanwhile, found damaged by a step beside this one
            return ""
        if not bad:
            return None
        self._discard(handed.manifest, handed.top, bad)
        return bad[0]

    def _content(self, manifest: Manifest, top: Path) -> Path:
        if manifest.type == "dir":
            return top / "d"
        names = os.listdir(top)
        return top / (names[0] if len(names) == 1 else "")

    def _sidecar(self, top: Path) -> Path:
        return top.parent / f"{top.name}{FARM_STAT_SUFFIX}"

    def _checked(self, manifest: Manifest, top: Path) -> array[int] | None:
        """The farm's stat data if it holds `manifest` exactly; else None, having removed it."""
        known = farmstat.read(self._sidecar(top), len(manifest.entries))
        try:
            bad, seen = self._damage(manifest, self._content(manifest, top), known)
        except FileNotFoundError:  # removed meanwhile
            return None
        if bad:
            self._discard(manifest, top, bad)
            return None
        if seen != known:
            farmstat.write(self._sidecar(top), seen, self._temp_path())
        return seen

    def _damage(
        self, manifest: Manifest, content: Path, known: array[int] | None
    ) -> tuple[list[str], array[int]]:
        """The paths where a farm differs from `manifest` (missing, extra, kind, mode, size, content; content is
        read only where stat data differ from `known`, a batch of files at a time), and every file's stat data."""
        top = os.lstat(content)
        if manifest.type == "dir" and not stat.S_ISDIR(top.st_mode):
            return [""], farmstat.empty(len(manifest.entries))
        seen, extra = farmstat.found(manifest, content)
        bad: list[tuple[int, str]] = []
        unsure: list[tuple[int, Entry]] = []
        for i, entry in enumerate(manifest.entries):
            found = farmstat.row(seen, i)
            mode, size = found[4], found[1]
            path = os.path.join(content, entry.path) if entry.path else os.fspath(content)
            if not mode:
                bad.append((i, entry.path))
            elif entry.kind == "link":
                if not stat.S_ISLNK(mode) or _link_sha256(path) != entry.sha256:
                    bad.append((i, entry.path))
            elif not stat.S_ISREG(mode) or stat.S_IMODE(mode) != _mode(entry) or size != entry.size:
                bad.append((i, entry.path))
            elif known is None or farmstat.row(known, i) != found:
                unsure.append((i, entry))
                if len(unsure) >= _HASH_BATCH:
                    bad += self._changed(content, unsure)
                    unsure.clear()
        bad += self._changed(content, unsure)
        return [path for _i, path in sorted(bad)] + extra, seen

    def _changed(self, content: Path, unsure: list[tuple[int, Entry]]) -> list[tuple[int, str]]:
        """Those of `unsure` (index, entry) whose file in the farm does not hold its sha256."""
        paths = [os.path.join(content, e.path) if e.path else os.fspath(content) for _i, e in unsure]
        hashed = self._hash_files(paths, sum(e.size for _i, e in unsure))
        return [(i, e.path) for (i, e), (sha, _size) in zip(unsure, hashed, strict=True) if sha != e.sha256]

    def _discard(self, manifest: Manifest, top: Path, bad: list[str]) -> None:
        """Remove a damaged farm, and drop the objects behind its damaged files that no longer hold their name."""
        with contextlib.suppress(FileNotFoundError):
            self._sidecar(top).unlink()
        aside = self._temp_path()
        try:
            os.rename(top, aside)  # at once: a process looking at it now finds nothing, not half a farm
        except FileNotFoundError:
            pass
        else:
            _rmtree(aside)
        damaged = set(bad)
        for entry in manifest.entries:
            if entry.path in damaged:
                self._sound_object(entry, hash_always=True)

    def _sound_object(self, entry: Entry, *, hash_always: bool = False) -> bool:
        """Whether the object holds its name, read-only; one that does not is dropped. Its content is read only
        when its mtime is not OBJECT_MTIME_NS (something wrote to it, or it predates the mark), or if asked."""
        path = self.object_file(entry.sha256, entry.executable)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        sound = stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == _mode(entry)
        if sound and (hash_always or st.st_mtime_ns != OBJECT_MTIME_NS or entry.kind == "link"):
            sound = self._hash_files([path])[0][0] == entry.sha256
            if sound and st.st_mtime_ns != OBJECT_MTIME_NS:
                with contextlib.suppress(PermissionError):  # another user's object in a shared store
                    os.utime(path, ns=(OBJECT_MTIME_NS, OBJECT_MTIME_NS))
        if not sound:
            self.sink(
                warning(
                    f"dropping stored object {os.path.basename(path)} of {entry.path!r}: its content or mode changed"
                )
            )
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return sound

    def _new_farm(self, manifest: Manifest, top: Path, name: str) -> array[int] | None:
        temp = self._temp_path()
        temp.mkdir()
        content = temp / ("d" if manifest.type == "dir" else name)
        try:
            self._build(manifest, content, link=True)
            _make_read_only(content)
            seen, _extra = farmstat.found(manifest, content)
        except BaseException:
            _rmtree(temp)
            raise
        top.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(temp, top)
        except OSError:  # another process materialized it first
            _rmtree(temp)
            return None
        os.chmod(top, 0o555)  # only now: renaming a directory rewrites its `..`, which needs it writable
        farmstat.write(self._sidecar(top), seen, self._temp_path())
        return seen

    def checkout(self, manifest: Manifest, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        temp = dest.parent / f".{dest.name}.mlpipe-{os.urandom(4).hex()}"
        try:
            self._build(manifest, temp, link=False)
        except BaseException:
            _rmtree(temp)
            raise
        old = None
        # A file replaces a file or link atomically; anything else is moved aside first (rename cannot).
        if os.path.lexists(dest) and (manifest.type == "dir" or (dest.is_dir() and not dest.is_symlink())):
            old = dest.parent / f".{dest.name}.mlpipe-old-{os.urandom(4).hex()}"
            os.rename(dest, old)
        os.replace(temp, dest)
        if old is not None:
            _rmtree(old)

    def _build(self, manifest: Manifest, dest: Path, *, link: bool) -> None:
        """Hard links (`link`) or copies of the objects; an object that does not hold its name is dropped and
        nothing is built (DamagedData)."""
        check_paths(manifest, lambda e: _link_target(self.object_path(e), e))
        # Path strings, not a Path per file: pathlib interns every name it parses (a table grown per file).
        top = os.fspath(dest)
        os.makedirs(os.path.dirname(top), exist_ok=True)
        made = {os.path.dirname(top)}
        if manifest.type == "dir":
            os.mkdir(top)
            made.add(top)
        for entry in manifest.entries:
            target = f"{top}/{entry.path}" if entry.path else top
            parent = os.path.dirname(target)
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            source = self.object_file(entry.sha256, entry.executable)
            if not self._sound_object(entry):
                raise DamagedData(entry.path)
            if entry.kind == "link":
                with open(source, "rb") as f:
                    os.symlink(f.read().decode(), target)
            elif link:
                os.link(source, target)
            else:
                shutil.copyfile(source, target)
                os.chmod(target, 0o755 if entry.executable else 0o644)

    # -- indexes for plan ----------------------------------------------------------------------------------
    def latest(self, pipeline: str, step: str) -> StepResult | None:
        fingerprint = self.latest_fingerprint(pipeline, step)
        return None if fingerprint is None else self.lookup(fingerprint)

    def latest_fingerprint(self, pipeline: str, step: str) -> str | None:
        try:
            pointer = json.loads(self._latest_path(pipeline, step).read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        fingerprint = pointer.get("fingerprint") if isinstance(pointer, dict) else None
        return fingerprint if isinstance(fingerprint, str) else None

    def set_latest(self, pipeline: str, step: str, fingerprint: str) -> None:
        path = self._latest_path(pipeline, step)
        try:
            if json.loads(path.read_bytes()) == {"fingerprint": fingerprint}:
                return  # a no-op run rewrites nothing
        except (OSError, ValueError):
            pass
        _atomic_write(path, {"fingerprint": fingerprint}, self._temp_path())

    def save_listing(self, tree: str, files: list[list[Any]]) -> None:
        path = self._tree_path(tree)
        if not path.exists():
            _atomic_write(path, {"tree": tree, "files": files}, self._temp_path())

    def listing(self, tree: str) -> list[list[Any]] | None:
        try:
            files: list[list[Any]] = json.loads(self._tree_path(tree).read_bytes())["files"]
            return files
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def has_object(self, entry: Entry) -> bool:
        return self._has(entry)

    def new_object(self, sha256: str, executable: bool) -> NewObject:
        """Write an object's content through this, check it, then `commit` it (or `discard` it)."""
        directory = f"{self.root}/objects/{sha256[:2]}"
        if directory not in self._dirs:
            os.makedirs(directory, exist_ok=True)
            self._dirs.add(directory)
        return NewObject(directory, sha256[2:] + (".x" if executable else ""), 0o555 if executable else 0o444)

    def temp_path(self, hint: str = "") -> Path:
        """A fresh path in the store's own temp dir (same filesystem as objects/, so renames are atomic)."""
        return self._temp_path(hint)

    def sync(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """Wait for background work (a registry behind this store pushes); the local store has none."""
        return {}

    def results(self) -> Iterator[Path]:
        yield from (self.root / "results").glob("*/*.json")


def read_result(path: Path, what: str) -> StepResult:
    """The result entry at `path`, read as a stream (a record of 100,000 files is 13-45 MB of JSON) and checked
    whole (StepResult.read); records.BadRecord (a ValueError) for one that fails, OSError when unreadable."""
    with open(path, "rb") as f:
        scanner = Scanner(f.read, what)
        result = StepResult.read(scanner)
        scanner.end()
    return result


_ENTRIES_AT_ONCE = 1024
"""Entries of a result turned into JSON at once when it is written."""


def _compact(value: Any) -> bytes:
    # Compact, so json uses its C encoder: with indent a 20,000-file result took 0.7 s to write.
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def result_json(result: StepResult, _compact: Callable[[Any], bytes] = _compact) -> Iterator[bytes]:
    """The bytes of _compact(result.to_json()), in pieces: each output's entries a chunk at a time, so writing a
    result never holds a dict per entry, nor the whole text (about 450 bytes an entry, 45 MB for 100,000).
    `_compact` may be another encoder of sorted keys without spaces (digest.canonical_json: not ASCII-escaped)."""
    shell = replace(result, outputs={n: Manifest(type=m.type, entries=()) for n, m in result.outputs.items()})
    data = shell.to_json()
    empty = b'{"entries":[]'
    yield b"{"
    for i, key in enumerate(sorted(data)):
        yield (b"," if i else b"") + _compact(key) + b":"
        if key != "outputs":
            yield _compact(data[key])
            continue
        for j, name in enumerate(sorted(result.outputs)):
            yield (b"{" if j == 0 else b",") + _compact(name) + b":"
            manifest, rest = result.outputs[name], _compact(data[key][name])
            if not rest.startswith(empty):  # a manifest shaped otherwise: written whole
                yield _compact(manifest.to_json())
                continue
            yield empty[:-1]
            for start in range(0, len(manifest.entries), _ENTRIES_AT_ONCE):
                entries = manifest.entries[start : start + _ENTRIES_AT_ONCE]
                chunk = _compact([e.to_json() for e in entries])[1:-1]
                yield (b"," if start else b"") + chunk
            yield rest[len(empty) - 1 :]
        yield b"}" if result.outputs else b"{}"
    yield b"}"


def _atomic_write(path: Path, data: Any, temp: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp.write_bytes(json.dumps(data, sort_keys=True).encode())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.[]=," else "_" for c in name)


def _mode(entry: Entry) -> int:
    return 0o555 if entry.executable else 0o444


def _link_sha256(path: str) -> str:
    return bytes_sha256(os.fsencode(os.readlink(path)))


def _make_read_only(content: Path) -> None:
    """A farm's directories, so that a step cannot add, remove or rename its files without chmod first."""
    if content.is_dir() and not content.is_symlink():
        for dirpath, _dirnames, _files in os.walk(content, topdown=False):
            os.chmod(dirpath, 0o555)


def _rmtree(path: Path) -> None:
    """Remove a tree whose directories may have been made read-only."""

    def onerror(func: Any, p: str, exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            func(p)

    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, onerror=onerror)


__all__ = ["DamagedData", "Handed", "LocalStore", "UnstorableOutput", "walk_files"]
