"""A step's code snapshot: the files under its code dir that the ignore rules keep, and their git tree id.

The id is byte for byte the tree git would write for those files, so `git rev-parse HEAD:<dir>` equals it
on a clean checkout where no rule matches a tracked file. Rules are git's, read from the repository root
down, except that a directory's `.amlignore` replaces its `.gitignore` (as Azure ML does), and that
`.git/info/exclude` and the global excludes file are never read: a snapshot must not depend on one
machine's settings. A file the rules match is left out even when git tracks it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlpipe.errors import BrokenInvariant, MlpipeError, present
from mlpipe.frozen import frozen
from mlpipe.git.commands import RepoPaths, find_repo, run_git
from mlpipe.git.ignore import RULE_FILES, RuleStack, is_excluded, read_rules
from mlpipe.git.index import MODE_TREE, IndexEntry, read_index, tree_id
from mlpipe.paths import STATE_DIR

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_LINK = 0o120000
MODE_GITLINK = 0o160000

_NEVER = frozenset({".git", STATE_DIR})
"""Names never in a snapshot, at any depth."""

_SMALL_FILE = 1 << 20
_CHUNK = 1 << 20


@frozen(eq=False, repr=False)
class SnapshotFile:
    """One file of a snapshot, as git stores it."""

    path: str
    """'/'-separated, relative to the snapshot directory."""
    mode: int
    """0o100644, 0o100755, 0o120000 (symlink) or 0o160000 (submodule commit)."""
    blob: str
    """Git object id (hex): the blob, or the commit for a gitlink."""
    size: int
    """Bytes in the working tree; a symlink's target length; 0 for a gitlink."""


@frozen(eq=False, repr=False)
class Snapshot:
    """A code directory's filtered files and their git tree id."""

    directory: Path
    """Absolute."""
    tree: str
    """Git tree id (hex) of `files`."""
    files: tuple[SnapshotFile, ...]
    """Sorted by path."""


class SnapshotChanged(MlpipeError):
    """A file kept changing while it was being hashed."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path} changed while mlpipe was hashing it; run again once it is written"


@dataclass(slots=True)
class _Rec:
    """A file found by the walk; `blob` is None until hashed."""

    path: str
    """Relative to the Snapshotter's root."""
    mode: int
    size: int
    blob: str | None


if TYPE_CHECKING:
    from dulwich.objects import ObjectID, Tree


class ObjectStore(Protocol):
    """The part of a dulwich object store `write_tree` uses."""

    def __contains__(self, sha: ObjectID) -> bool: ...

    def add_object(self, obj: Tree) -> None: ...


class Snapshotter:
    """One per command: reads the index and walks each directory once, shared by all steps."""

    def __init__(self, root: Path, *, exclude: Iterable[Path] = ()) -> None:
        root = Path(root).resolve()
        self.repo: RepoPaths | None = find_repo(root)
        self.root = self.repo.root if self.repo is not None else root
        self._root_str = str(self.root)
        self._excluded = {_relative(self.root, Path(p).resolve()) for p in exclude} - {None}
        self._index: dict[bytes, IndexEntry] | None = None
        self._index_mtime = 0
        self._walked: dict[str, list[_Rec]] = {}
        self._rules: dict[str, RuleStack] = {}
        self._attributes_seen = False
        self._filters: bool | None = None

    # -- public ------------------------------------------------------------------------------------------

    def snapshot(self, directory: Path) -> Snapshot:
        """The snapshot of `directory`, which must lie inside the root (or be it)."""
        directory = Path(directory).resolve()
        rel = _relative(self.root, directory)
        if rel is None:
            raise MlpipeError(f"{directory} is not inside {self.root}; cannot snapshot it")
        above = self._stack_above(rel)
        records: list[_Rec] = []
        if above is not None and directory.is_dir():
            records = self._walk(rel, above, top=True) or []
        self._hash_pending(records)
        cut = len(rel) + 1 if rel else 0
        files = tuple(
            sorted(
                (SnapshotFile(r.path[cut:], r.mode, r.blob or "", r.size) for r in records),
                key=lambda f: f.path,
            )
        )
        return Snapshot(directory=directory, tree=snapshot_tree(files), files=files)

    def write_tree(self, snapshot: Snapshot, object_store: ObjectStore) -> str:
        """Write the snapshot's trees that the store lacks; blobs must be there already."""
        return write_tree(snapshot.files, object_store)

    def _abs(self, rel: str) -> str:
        return f"{self._root_str}/{rel}" if rel else self._root_str

    # -- rules -------------------------------------------------------------------------------------------

    def _stack_above(self, rel: str) -> RuleStack | None:
        """The rule files applying to `rel` itself (from its parents), root first; None if it is left out."""
        if not rel:
            return ()
        stack: RuleStack = ()
        parts = rel.split("/")
        for i, name in enumerate(parts):
            sub = "/".join(parts[: i + 1])
            stack = self._dir_rules("/".join(parts[:i]), stack)
            if name in _NEVER or sub in self._excluded or is_excluded(stack, os.fsencode(sub), True):
                return None
        return stack

    def _dir_rules(self, rel: str, above: RuleStack, names: frozenset[str] | None = None) -> RuleStack:
        """`above` plus the rule file of directory `rel`; `names` are its entries when it was scanned."""
        known = self._rules.get(rel)
        if known is not None:
            return known
        directory = self._abs(rel)
        if names is None:  # a parent of a snapshot dir, not walked: look for the files themselves
            if os.path.lexists(directory + "/.gitattributes"):
                self._attributes_seen = True
            candidates: Sequence[str] = RULE_FILES
        else:
            candidates = [n for n in RULE_FILES if n in names]
        patterns = read_rules(directory, candidates) if candidates else []
        prefix = len(os.fsencode(rel)) + 1 if rel else 0
        known = self._rules[rel] = (*above, (prefix, patterns)) if patterns else above
        return known

    # -- walk --------------------------------------------------------------------------------------------

    def _walk(self, rel: str, above: RuleStack, *, top: bool = False) -> list[_Rec] | None:
        """Every kept file under `rel` (root-relative), hashed from the index where its stat still matches.

        None when `rel` holds a nested repository (`.git`), which its parent records as a gitlink.
        """
        key = rel + "\0" if top else rel
        done = self._walked.get(key)
        if done is not None:
            return done
        with os.scandir(self._abs(rel)) as scan:
            entries = list(scan)
        names = frozenset(e.name for e in entries)
        if ".git" in names and rel and not top:
            return None
        if ".gitattributes" in names:
            self._attributes_seen = True  # it applies even when ignored
        stack = self._dir_rules(rel, above, names)
        index = self._load_index()
        records: list[_Rec] = []
        prefix = rel + "/" if rel else ""
        for entry in entries:
            name = entry.name
            path = prefix + name
            if name in _NEVER or path in self._excluded:
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            path_bytes = os.fsencode(path)
            if is_excluded(stack, path_bytes, is_dir):
                continue
            if is_dir:
                indexed = index.get(path_bytes)
                sub = (
                    None if indexed is not None and indexed.mode == MODE_GITLINK else self._walk(path, stack)
                )
                if sub is not None:
                    records.extend(sub)
                elif (link := self._gitlink(path, entry.path, indexed)) is not None:
                    records.append(link)
                continue
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                target = os.fsencode(Path(entry.path).readlink())
                records.append(_Rec(path, MODE_LINK, len(target), _blob_id(target)))
            elif stat.S_ISREG(st.st_mode):
                mode = MODE_EXEC if st.st_mode & stat.S_IXUSR else MODE_FILE
                indexed = index.get(path_bytes)
                blob = indexed.sha.decode() if indexed and self._stat_matches(indexed, st, mode) else None
                records.append(_Rec(path, mode, st.st_size, blob))
            # sockets, fifos and devices are not content; git skips them too
        self._walked[key] = records
        return records

    def _gitlink(self, rel: str, path: str, indexed: IndexEntry | None) -> _Rec | None:
        """A submodule or embedded repository: its checked-out commit, else the one the index records."""
        commit = _head_commit(Path(path))
        if commit is None and indexed is not None and indexed.mode == MODE_GITLINK:
            commit = indexed.sha.decode()
        # An embedded repository without a commit is skipped, as `git add` refuses it.
        return None if commit is None else _Rec(rel, MODE_GITLINK, 0, commit)

    # -- index and hashing -------------------------------------------------------------------------------

    def _load_index(self) -> dict[bytes, IndexEntry]:
        if self._index is None:
            self._index, self._index_mtime = ({}, 0) if self.repo is None else _read_index(self.repo.index)
        return self._index

    def _stat_matches(self, entry: IndexEntry, st: os.stat_result, mode: int) -> bool:
        """Git's "stat-clean" test; a racily clean entry (mtime not before the index's) must be rehashed.

        Seconds decide raciness, as in git built without USE_NSEC (the default).
        """
        if entry.mode != mode:
            return False
        mtime = entry.mtime
        ctime = entry.ctime
        if not (isinstance(mtime, tuple) and isinstance(ctime, tuple)):
            raise BrokenInvariant("an index entry without (seconds, nanoseconds) times")
        return (
            mtime[0] < self._index_mtime
            and entry.size == st.st_size & 0xFFFFFFFF
            and entry.ino == st.st_ino & 0xFFFFFFFF
            and mtime == divmod(st.st_mtime_ns, 1_000_000_000)
            and ctime == divmod(st.st_ctime_ns, 1_000_000_000)
        )

    def _hash_pending(self, records: list[_Rec]) -> None:
        pending = [r for r in records if r.blob is None]
        if not pending:
            return
        if self._uses_filters():
            # Clean filters, eol and autocrlf conversions apply exactly as `git add` would apply them.
            repo = present(self.repo, "git filters apply only inside a repository")
            blobs = hash_with_git(repo.root, [r.path for r in pending])
            for record, blob in zip(pending, blobs, strict=True):
                record.blob = blob
        else:
            for record in pending:
                record.blob, record.size = hash_file(self._abs(record.path))

    def _uses_filters(self) -> bool:
        if self.repo is None:
            return False
        if self._filters is None:
            self._filters = (
                self._attributes_seen
                or (self.repo.common_dir / "info" / "attributes").exists()
                or _global_attributes_file().exists()
                or _config_sets_filters(self.repo)
            )
        return self._filters


def take_snapshot(directory: Path, *, exclude: Iterable[Path] = ()) -> Snapshot:
    """The snapshot of one directory, rules read from its repository's root (or from itself outside git)."""
    directory = Path(directory).resolve()
    repo = find_repo(directory)
    return Snapshotter(repo.root if repo else directory, exclude=exclude).snapshot(directory)


def diff_files(
    old: Snapshot | Iterable[SnapshotFile], new: Snapshot | Iterable[SnapshotFile]
) -> list[tuple[str, str]]:
    """(change, path) for each path added, removed or modified (content or mode) from `old` to `new`."""
    before = {f.path: f for f in (old.files if isinstance(old, Snapshot) else old)}
    after = {f.path: f for f in (new.files if isinstance(new, Snapshot) else new)}
    changes = []
    for path in sorted(before.keys() | after.keys()):
        a, b = before.get(path), after.get(path)
        if a is None:
            changes.append(("added", path))
        elif b is None:
            changes.append(("removed", path))
        elif (a.mode, a.blob) != (b.mode, b.blob):
            changes.append(("modified", path))
    return changes


# -- trees ---------------------------------------------------------------------------------------------------


def _nest(files: Iterable[SnapshotFile]) -> dict[bytes, Any]:
    """Files as nested dicts: name -> (mode, hex id) for files, name -> dict for directories."""
    root: dict[bytes, Any] = {}
    for f in files:
        *dirs, name = os.fsencode(f.path).split(b"/")
        node = root
        for d in dirs:
            node = node.setdefault(d, {})
        node[name] = (f.mode, f.blob)
    return root


def snapshot_tree(files: Iterable[SnapshotFile]) -> str:
    """The git tree id of `files` (hashed here, without dulwich: this runs on every command)."""

    def tree(node: dict[bytes, Any]) -> str:
        return tree_id(
            (name, MODE_TREE, tree(value)) if isinstance(value, dict) else (name, value[0], value[1])
            for name, value in node.items()
        )

    return tree(_nest(files))


def build_trees(files: Iterable[SnapshotFile]) -> tuple[str, list[Tree]]:
    """The root tree id of `files` and every tree object (dulwich's, for writing), root last."""
    from dulwich.objects import ObjectID, Tree

    def build(node: dict[bytes, Any], out: list[Tree]) -> Tree:
        tree = Tree()
        for name, value in node.items():
            if isinstance(value, dict):
                tree.add(name, MODE_TREE, build(value, out).id)
            else:
                tree.add(name, value[0], ObjectID(value[1].encode()))
        out.append(tree)
        return tree

    trees: list[Tree] = []
    root = build(_nest(files), trees)
    return root.id.decode(), trees


def write_tree(files: Iterable[SnapshotFile], object_store: ObjectStore) -> str:
    """Write the tree objects of `files` that the store lacks; return the root tree id."""
    tree_id, trees = build_trees(files)
    for tree in trees:
        if tree.id not in object_store:
            object_store.add_object(tree)
    return tree_id


# -- hashing -------------------------------------------------------------------------------------------------


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0%s" % (len(data), data), usedforsecurity=False).hexdigest()


def hash_file(path: str) -> tuple[str, int]:
    """Git blob id and size of a file's bytes, streamed (no filters); retried if it changes underfoot."""
    for _ in range(3):
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size <= _SMALL_FILE:
                data = f.read()
                return _blob_id(data), len(data)
            digest = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
            seen = 0
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                seen += len(chunk)
            if seen == size:
                return digest.hexdigest(), size
    raise SnapshotChanged(path)


def _quote(path: str) -> bytes:
    """A path for `--stdin-paths`, which reads lines and unquotes C-style quoted ones."""
    raw = os.fsencode(path)
    if b"\n" not in raw and not raw.startswith(b'"'):
        return raw
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n") + b'"'


def hash_with_git(root: Path, paths: list[str], *, write: bool = False) -> list[str]:
    """Blob ids from one `git hash-object --stdin-paths` (root-relative paths), so filters apply."""
    if not paths:
        return []
    args = ["hash-object", *(["-w"] if write else []), "--stdin-paths"]
    out = run_git(args, root, stdin=b"".join(_quote(p) + b"\n" for p in paths))
    return out.decode().split()


def _config_sets_filters(repo: RepoPaths) -> bool:
    """Whether git's configuration sets core.autocrlf or core.attributesFile.

    Asking `git config` costs a process; the config files are read first, and only one that mentions
    either key (or an include, or config given in the environment) sends the question to git. The variables
    read here and in `_config_files` are git's own, read from this process's environment as the git it runs
    reads them (not mlpipe settings, so not `config.Settings`).
    """
    if any(name in os.environ for name in ("GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT")):
        return _git_config_sets_filters(repo.root)
    for path in _config_files(repo):
        try:
            text = path.read_bytes().lower()
        except OSError:
            continue
        if b"autocrlf" in text or b"attributesfile" in text or b"include" in text:
            return _git_config_sets_filters(repo.root)
    return False


def _config_files(repo: RepoPaths) -> list[Path]:
    xdg = os.environ.get("XDG_CONFIG_HOME")
    files = [
        repo.common_dir / "config",
        repo.git_dir / "config.worktree",
        Path(os.environ.get("GIT_CONFIG_GLOBAL") or Path.home() / ".gitconfig"),
        (Path(xdg) if xdg else Path.home() / ".config") / "git" / "config",
    ]
    if not os.environ.get("GIT_CONFIG_NOSYSTEM"):
        files.append(Path(os.environ.get("GIT_CONFIG_SYSTEM") or "/etc/gitconfig"))
        git = shutil.which("git")
        if git:  # $(prefix)/etc/gitconfig of a git installed elsewhere (Homebrew, /usr/local)
            files.append(Path(git).resolve().parent.parent / "etc" / "gitconfig")
    return files


def _git_config_sets_filters(root: Path) -> bool:
    out = run_git(
        ["config", "-z", "--get-regexp", r"^core\.(autocrlf|attributesfile)$"], root, ok_codes=(0, 1)
    )
    return bool(out.strip(b"\0"))


def _global_attributes_file() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "git" / "attributes"


def _head_commit(path: Path) -> str | None:
    """The commit a nested repository has checked out, read from its files; None if it has none."""
    repo = find_repo(path)
    if repo is None or repo.root != path:
        return None
    try:
        head = (repo.git_dir / "HEAD").read_text().strip()
        for _ in range(5):
            if not head.startswith("ref:"):
                return head if len(head) == 40 else None
            ref = head.removeprefix("ref:").strip()
            loose = repo.common_dir / ref
            if loose.is_file():
                head = loose.read_text().strip()
                continue
            return _packed_ref(repo.common_dir / "packed-refs", ref)
    except OSError:
        return None
    return None


def _packed_ref(packed: Path, ref: str) -> str | None:
    if not packed.is_file():
        return None
    for line in packed.read_text().splitlines():
        sha, _, name = line.partition(" ")
        if name == ref:
            return sha
    return None


def _read_index(path: Path) -> tuple[dict[bytes, IndexEntry], int]:
    """Stage-0 entries by path and the index file's mtime (seconds); ({}, 0) when unreadable.

    An entry missing here only costs hashing the file, so an index that cannot be parsed (a split index,
    a SHA-256 repository) is read as empty rather than failing the command.
    """
    try:
        with open(path, "rb") as f:
            mtime = os.fstat(f.fileno()).st_mtime_ns // 1_000_000_000
            data = f.read()
    except OSError:
        return {}, 0
    try:
        return read_index(data), mtime
    except (ValueError, IndexError, struct.error):
        return {}, 0


def _relative(root: Path, path: Path) -> str | None:
    """`path` relative to `root`, '/'-separated ('' for root itself), or None if outside."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return None
    return "" if rel == Path() else rel.as_posix()
