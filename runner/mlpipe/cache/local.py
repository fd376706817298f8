"""The local content-addressed store (default `.mlpipe/cache`).

Layout, versioned by `LAYOUT`:
  objects/ab/cdef...     file content by sha256, read-only; `.x` suffix for the executable variant
  results/ab/<fp>.json   a complete step result, written last and atomically (first complete entry wins)
  latest/<pipeline>/<step>.json   the step's most recent result fingerprint, for `plan`
  trees/ab/<tree>.json   file listings of code snapshots, so `plan` can name the files that changed
  materialized/<digest>/ read-only hard-link farms of outputs, shared by every step that reads them
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mlpipe.cache import records
from mlpipe.cache.base import Published, StepResult
from mlpipe.digest import Entry, FileHasher, Manifest, walk_files
from mlpipe.treepaths import UnsafeTree

LAYOUT = 1


def _warn(message: str) -> None:
    print(f"mlpipe: warning: {message}", file=sys.stderr)


def _check_paths(manifest: Manifest, link_target: Callable[[Entry], str]) -> None:
    """Refuse, before writing anything, a tree that could leave its top: names that are not plain relative paths,
    files under a file or a link, links that resolve outside however they chain (treepaths.check_tree). A
    result in a store several clones share is as untrusted as one from a registry. Raises UnsafeTree."""
    if manifest.type == "dir":
        records.check_links(manifest.entries, link_target)
    elif manifest.entries[0].kind != "file" or manifest.entries[0].path:
        raise UnsafeTree("a file output must be one regular file")


def _link_target(path: Path, entry: Entry) -> str:
    with open(path, "rb") as f:
        return records.link_target(f.read(records.MAX_LINK_BYTES + 1), entry.path)


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
        self._temp: str | None = f"{directory}/.{name}.{uuid.uuid4().hex[:12]}.tmp"
        self.fd = os.open(self._temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        os.fchmod(self.fd, mode)  # whatever the umask

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        return len(data)

    def commit(self) -> None:
        """Give the object its name (an object already there has the same content: replacing it is harmless)."""
        try:
            os.close(self.fd)
            self.fd = -1
            assert self._temp is not None
            os.replace(self._temp, self.target)
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


class LocalStore:
    def __init__(self, root: Path, *, hasher: FileHasher | None = None) -> None:
        self.root = root
        self.hasher = hasher or FileHasher()
        self._tmp = root / "tmp"
        self._dirs: set[str] = set()

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
        return self._tmp / f"{uuid.uuid4().hex}{hint}"

    # -- results -------------------------------------------------------------------------------------------
    def lookup(self, fingerprint: str) -> StepResult | None:
        path = self._result_path(fingerprint)
        try:
            result = StepResult.from_json(records.load_json(path.read_bytes(), "result"))
            missing = next((e for m in result.outputs.values() for e in m.entries if not self._has(e)), None)
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, AttributeError) as error:  # also JSON of the wrong shape
            _warn(f"ignoring corrupt cache entry {path}: {error}")
            return None
        if missing is not None:
            _warn(
                f"ignoring incomplete cache entry {fingerprint[:12]}: object of {missing.path!r} is missing"
            )
            return None
        return result

    def _has(self, entry: Entry) -> bool:
        return self.object_path(entry).exists()

    def publish(self, result: StepResult, staged: Mapping[str, Path]) -> Published:
        """Ingest every staged output, then write the entry; the entry appearing is the commit point."""
        manifests = {name: self.ingest(path) for name, path in staged.items()}
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
            # Compact, so json uses its C encoder: with indent a 20,000-file result took 0.7 s to write.
            temp.write_bytes(json.dumps(result.to_json(), sort_keys=True, separators=(",", ":")).encode())
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
        """Move a staged file or directory's content into objects/ and return its manifest."""
        manifest = self.hasher.manifest(path)
        for entry in manifest.entries:
            source = path / entry.path if entry.path else path
            self._store_object(source, entry)
        return manifest

    def _store_object(self, source: Path, entry: Entry) -> None:
        target = self.object_path(entry)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = self._temp_path()
        try:
            if entry.kind == "link":
                temp.write_bytes(os.readlink(source).encode())
            elif os.lstat(source).st_nlink == 1:
                try:
                    os.link(source, temp)  # same filesystem: no copy at all
                except OSError:
                    shutil.copyfile(source, temp)
            else:
                # A link, or a file also reachable elsewhere (the step hard-linked it in): the object gets its
                # own inode, so the chmod below and later edits of that file cannot reach the store.
                shutil.copyfile(source, temp)
            os.chmod(temp, 0o555 if entry.executable else 0o444)
            os.replace(temp, target)
        except BaseException:  # a full disk, an interrupt: no half-written temp stays behind
            with contextlib.suppress(OSError):
                temp.unlink()
            raise

    # -- reading outputs -----------------------------------------------------------------------------------
    def materialize(self, manifest: Manifest, name: str) -> Path:
        digest = manifest.digest.removeprefix("sha256:")
        top = self.root / "materialized" / digest
        if not top.exists():
            temp = self._temp_path()
            temp.mkdir()
            try:
                self._build(manifest, temp / name if manifest.type == "file" else temp / "d", link=True)
            except BaseException:
                _rmtree(temp)
                raise
            top.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(temp, top)
            except OSError:  # another process materialized it first
                shutil.rmtree(temp, ignore_errors=True)
        if manifest.type == "file":
            existing = next(top.iterdir())
            if existing.name != name:  # same content under another output name
                alias = top.parent / f"{digest}-{_slug(name)}"
                if not alias.exists():
                    with contextlib.suppress(FileExistsError):
                        os.symlink(existing, alias)
                return alias
            return existing
        return top / "d"

    def forget_materialized(self, manifest: Manifest) -> None:
        """Drop a materialization (and the objects behind it) that a step was found to have modified."""
        top = self.root / "materialized" / manifest.digest.removeprefix("sha256:")
        _rmtree(top)
        for entry in manifest.entries:
            path = self.object_path(entry)
            if path.exists() and entry.kind == "file":
                with contextlib.suppress(OSError):
                    if self.hasher.hash_file(path, path.stat()) != entry.sha256:
                        path.unlink()

    def checkout(self, manifest: Manifest, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        temp = dest.parent / f".{dest.name}.mlpipe-{uuid.uuid4().hex[:8]}"
        try:
            self._build(manifest, temp, link=False)
        except BaseException:
            _rmtree(temp)
            raise
        old = None
        # A file replaces a file or link atomically; anything else is moved aside first (rename cannot).
        if os.path.lexists(dest) and (manifest.type == "dir" or (dest.is_dir() and not dest.is_symlink())):
            old = dest.parent / f".{dest.name}.mlpipe-old-{uuid.uuid4().hex[:8]}"
            os.rename(dest, old)
        os.replace(temp, dest)
        if old is not None:
            _rmtree(old)

    def _build(self, manifest: Manifest, dest: Path, *, link: bool) -> None:
        _check_paths(manifest, lambda e: _link_target(self.object_path(e), e))
        if manifest.type == "dir":
            dest.mkdir(parents=True)
        for entry in manifest.entries:
            target = dest / entry.path if entry.path else dest
            target.parent.mkdir(parents=True, exist_ok=True)
            source = self.object_path(entry)
            if entry.kind == "link":
                os.symlink(source.read_bytes().decode(), target)
            elif link:
                os.link(source, target)
            else:
                shutil.copyfile(source, target)
                os.chmod(target, 0o755 if entry.executable else 0o644)

    # -- indexes for plan ----------------------------------------------------------------------------------
    def latest(self, pipeline: str, step: str) -> StepResult | None:
        try:
            pointer = json.loads(self._latest_path(pipeline, step).read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        fingerprint = pointer.get("fingerprint") if isinstance(pointer, dict) else None
        return self.lookup(fingerprint) if isinstance(fingerprint, str) else None

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


__all__ = ["LocalStore", "walk_files"]
