"""What a run records about git, and a ref that keeps a dirty run's exact code recoverable."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mlpipe.errors import GitError
from mlpipe.frozen import frozen
from mlpipe.git.commands import StartedGit, find_repo, run_git, split_z
from mlpipe.git.snapshot import (
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    SnapshotChanged,
    Snapshotter,
    hash_with_git,
    write_tree,
)
from mlpipe.paths import STATE_DIR

RUNS_REF_PREFIX = "refs/mlpipe/runs/"
_RUN_ID = r"[A-Za-z0-9_][A-Za-z0-9._-]*"
"""A run id fit for a ref name; compiled on first use (re's cache): only a dirty run's snapshot ref needs it."""
IDENTITY = b"mlpipe <mlpipe@localhost>"


@frozen
class GitInfo:
    """The repository's state: root, commit, branch, whether the tree is clean."""

    in_repo: bool
    root: Path
    commit: str | None = None
    branch: str | None = None
    """e.g. "main"; None when HEAD is detached."""
    ref: str | None = None
    """e.g. "refs/heads/main", or a tag HEAD is detached at."""
    dirty: bool = False
    dirty_paths: tuple[str, ...] = ()
    """Modified, staged and untracked-not-ignored paths per `git status`, without the state dir."""
    remote: str | None = None
    """origin's URL (else the first remote's), without credentials."""

    def to_json(self) -> dict[str, Any]:
        return {
            "in_repo": self.in_repo,
            "root": str(self.root),
            "commit": self.commit,
            "branch": self.branch,
            "ref": self.ref,
            "dirty": self.dirty,
            "dirty_paths": list(self.dirty_paths),
            "remote": self.remote,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GitInfo:
        return cls(
            in_repo=bool(data.get("in_repo")),
            root=Path(data.get("root") or "."),
            commit=data.get("commit"),
            branch=data.get("branch"),
            ref=data.get("ref"),
            dirty=bool(data.get("dirty")),
            dirty_paths=tuple(data.get("dirty_paths") or ()),
            remote=data.get("remote"),
        )


def git_info(workspace_root: Path) -> GitInfo:
    """Commit, branch, dirty paths and remote of the repository holding `workspace_root`.

    Outside a repository (or without git installed) this says so instead of failing.
    """
    return start_git_info(workspace_root)()


def start_git_info(workspace_root: Path) -> Callable[[], GitInfo]:
    """`git_info` with its two git commands (the status, the remotes) started now, both at once: the function
    returned (call it once) waits for them. A caller with other work to do meanwhile (`prepare`: the snapshots,
    the input walk, the plan) does not wait for git's start-up, 2-10 ms a command (issue 18)."""
    workspace_root = Path(workspace_root).resolve()
    repo = find_repo(workspace_root)
    if repo is None:
        outside = GitInfo(in_repo=False, root=workspace_root)
        return lambda: outside
    status = StartedGit(
        ["--no-optional-locks", "status", "--porcelain=v2", "--branch", "-z", "--untracked-files=all"],
        repo.root,
    )
    remotes = StartedGit(["config", "-z", "--get-regexp", r"^remote\..*\.url$"], repo.root, ok_codes=(0, 1))

    def finish() -> GitInfo:
        try:
            output = status.output()
        except GitError as error:
            if "not a git repository" in str(error) or "git is not installed" in str(error):
                return GitInfo(in_repo=False, root=workspace_root)
            raise
        commit, branch, dirty_paths = parse_status(output)
        ref = f"refs/heads/{branch}" if branch else None
        if branch is None and commit is not None:
            ref = _tag_at(repo.root, commit)
        return GitInfo(
            in_repo=True,
            root=repo.root,
            commit=commit,
            branch=branch,
            ref=ref,
            dirty=bool(dirty_paths),
            dirty_paths=dirty_paths,
            remote=_remote_url(remotes.output()),
        )

    return finish


def parse_status(output: bytes) -> tuple[str | None, str | None, tuple[str, ...]]:
    """(commit, branch, dirty paths) from `git status --porcelain=v2 --branch -z`."""
    commit = branch = None
    paths: list[str] = []
    fields = iter(split_z(output))
    for record in fields:
        kind = record[:1]
        if record.startswith("# branch.oid "):
            oid = record.removeprefix("# branch.oid ")
            commit = None if oid == "(initial)" else oid
        elif record.startswith("# branch.head "):
            head = record.removeprefix("# branch.head ")
            branch = None if head == "(detached)" else head
        elif kind == "1":
            paths.append(record.split(" ", 8)[8])
        elif kind == "2":
            paths.append(record.split(" ", 9)[9])
            paths.append(next(fields))  # the rename's or copy's original path
        elif kind == "u":
            paths.append(record.split(" ", 10)[10])
        elif kind == "?":
            paths.append(record[2:])
    # mlpipe's state dir lives beside each pipeline file, at any depth; snapshots leave it out there too.
    kept = sorted({p for p in paths if STATE_DIR not in p.rstrip("/").split("/")})
    return commit, branch, tuple(kept)


def _tag_at(root: Path, commit: str) -> str | None:
    out = run_git(["for-each-ref", "--points-at", commit, "--format=%(refname)", "refs/tags"], root)
    tags = out.decode(errors="surrogateescape").split()
    return tags[0] if tags else None


def _remote_url(out: bytes) -> str | None:
    """origin's URL (else the first remote's) from `git config -z --get-regexp '^remote\\..*\\.url$'`."""
    urls: dict[str, str] = {}
    for record in split_z(out):
        key, _, value = record.partition("\n")
        urls.setdefault(key.removeprefix("remote.").removesuffix(".url"), value)
    url = urls["origin"] if "origin" in urls else next(iter(urls.values()), None)
    return None if url is None else strip_credentials(url)


def web_url(remote: str) -> str | None:
    """A remote's URL as a browser opens it (what `org.opencontainers.image.source` holds, and ghcr.io links
    a package by): `git@github.com:org/repo.git` and `ssh://git@host/org/repo` -> `https://host/org/repo`;
    None for a local path or anything else."""
    scp = re.fullmatch(r"(?:[A-Za-z0-9._-]+@)?([A-Za-z0-9.-]+):(?!/)([^\s?#]+)", remote)
    if scp and "://" not in remote:
        host, path = scp.groups()
    else:
        parts = urlsplit(remote)
        if parts.scheme not in {"https", "http", "ssh", "git+ssh", "git"} or not parts.hostname:
            return None
        host = parts.hostname + (f":{parts.port}" if parts.scheme in {"https", "http"} and parts.port else "")
        path = parts.path.lstrip("/")
    path = path.removesuffix("/").removesuffix(".git")
    if not path or not re.fullmatch(r"[A-Za-z0-9._~/-]+", path) or ".." in path.split("/"):
        return None
    scheme = "http" if remote.startswith("http://") else "https"
    return f"{scheme}://{host}/{path}"


def strip_credentials(url: str) -> str:
    """`https://user:token@host/x` -> `https://host/x`; an ssh user name without a password is kept."""
    if "://" not in url:
        return url  # a path, or scp-like `git@host:org/repo.git`
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if parts.scheme in {"ssh", "git+ssh"} and ":" not in userinfo:
        return url
    return urlunsplit(parts._replace(netloc=hostport))


# -- the snapshot ref ----------------------------------------------------------------------------------------


@frozen(eq=False, repr=False)
class SnapshotRef:
    """The commit that holds a dirty run's code snapshot."""

    ref: str
    commit: str
    tree: str
    unrecoverable: tuple[dict[str, Any], ...]
    """What the commit's tree lacks of the working tree: {"path", "size", "sha256", "reason"} of each file too
    big to store, and {"path", "size", "reason"} of each changed file the snapshot rules leave out (an
    `.amlignore` that git does not share), at most IGNORED_LISTED of those."""
    ignored_omitted: int = 0
    """Changed, snapshot-ignored files beyond IGNORED_LISTED, counted only."""


IGNORED_LISTED = 100
"""Changed files the snapshot rules leave out are listed up to this many (a data directory in `.amlignore`
only could hold thousands; the record is rewritten after every step)."""
TOO_LARGE = "over the size limit"
IGNORED = "changed, but left out by the snapshot rules (.amlignore)"


def write_snapshot_ref(
    root: Path,
    run_id: str,
    snapshotter: Snapshotter,
    *,
    max_file_size: int = 100 * 2**20,
    dirty_paths: Sequence[str] = (),
) -> SnapshotRef:
    """Record the working tree as the snapshot rules see it under `refs/mlpipe/runs/<run_id>`.

    The commit's parent is HEAD (none on an unborn branch); `<ref>:<code dir>` is each step's snapshot tree
    unless a file over `max_file_size` had to be left out. Only objects git lacks are written.
    """
    from dulwich.objects import Blob, Commit, ObjectID
    from dulwich.refs import Ref
    from dulwich.repo import Repo

    repo_paths = find_repo(Path(root))
    if repo_paths is None:
        raise GitError(f"{root} is not in a git repository; cannot record the run's code in git")
    if not re.fullmatch(_RUN_ID, run_id) or ".." in run_id or run_id.endswith(".lock"):
        raise GitError(f"run id {run_id!r} cannot name a git ref")
    ref = RUNS_REF_PREFIX + run_id

    snapshot = snapshotter.snapshot(repo_paths.root)
    too_big = [f for f in snapshot.files if f.mode in (MODE_FILE, MODE_EXEC) and f.size > max_file_size]
    unrecoverable = tuple(
        {"path": f.path, "size": f.size, "sha256": _sha256(repo_paths.root / f.path), "reason": TOO_LARGE}
        for f in too_big
    )
    ignored = _ignored_changes(repo_paths.root, dirty_paths, {f.path for f in snapshot.files})
    unrecoverable += tuple(ignored[:IGNORED_LISTED])
    left_out = {f.path for f in too_big}
    kept = [f for f in snapshot.files if f.path not in left_out]

    with Repo(str(repo_paths.root)) as repo:
        store = repo.object_store
        missing = [f for f in kept if f.mode != 0o160000 and ObjectID(f.blob.encode()) not in store]
        files = [f for f in missing if f.mode != MODE_LINK]
        written = hash_with_git(repo_paths.root, [f.path for f in files], write=True)
        for f, blob in zip(files, written, strict=True):
            if blob != f.blob:
                raise SnapshotChanged(f.path)
        for f in missing:
            if f.mode == MODE_LINK:
                link = Blob.from_string(os.fsencode((repo_paths.root / f.path).readlink()))
                if link.id.decode() != f.blob:
                    raise SnapshotChanged(f.path)
                store.add_object(link)
        tree = write_tree(kept, store)

        try:
            parents = [repo.refs[Ref(b"HEAD")]]
        except KeyError:
            parents = []  # unborn branch
        commit = Commit()
        commit.tree = ObjectID(tree.encode())
        commit.parents = parents
        commit.author = commit.committer = IDENTITY
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = _message(run_id, unrecoverable).encode()
        if commit.id not in store:
            store.add_object(commit)
        repo.refs[Ref(ref.encode())] = commit.id
    return SnapshotRef(
        ref=ref,
        commit=commit.id.decode(),
        tree=tree,
        unrecoverable=unrecoverable,
        ignored_omitted=max(0, len(ignored) - IGNORED_LISTED),
    )


def _ignored_changes(root: Path, dirty_paths: Sequence[str], kept: set[str]) -> list[dict[str, Any]]:
    """The changed files (git status) the snapshot does not hold: the rules left them out. A deleted file is
    deleted in the snapshot too, so it is not among them."""
    out = []
    for path in dirty_paths:
        if path in kept:
            continue
        try:
            info = (root / path).lstat()
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            out.append({"path": path, "size": info.st_size, "reason": IGNORED})
    return out


def _message(run_id: str, unrecoverable: tuple[dict[str, Any], ...]) -> str:
    lines = [f"mlpipe run {run_id}", "", "The working tree as mlpipe ran it (ignore rules applied)."]
    if unrecoverable:
        lines += ["", "Left out, path size sha256 (why):"]
        lines += [f"  {u['path']} {u['size']} {u.get('sha256', '-')} ({u['reason']})" for u in unrecoverable]
    return "\n".join(lines) + "\n"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
