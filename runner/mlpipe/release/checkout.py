"""`mlpipe checkout RUN`: bring back the exact code a run ran on, from this clone or from the registry.

A run on a clean tree ran on its commit. A run on uncommitted changes ran on its snapshot ref
(`refs/mlpipe/runs/<id>`), which only the clone that ran it has, unless the run was pushed with
--allow-dirty-push: then its record in the registry carries the ref as a git bundle, fetched here.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpipe.errors import GitError, UsageError
from mlpipe.frozen import frozen
from mlpipe.git.commands import run_git
from mlpipe.git.provenance import RUNS_REF_PREFIX
from mlpipe.paths import Workspace
from mlpipe.runs import RunHistory, unique_match

if TYPE_CHECKING:
    from mlpipe.cache.tiered import RemoteSettings


@frozen(kw_only=True)
class RunCode:
    run_id: str
    code: str
    """The commit, or the snapshot ref of a run on uncommitted changes."""
    source: str
    """Where the code came from: `this clone` or the registry."""
    unrecoverable: tuple[Mapping[str, Any], ...] = ()
    """Files the snapshot left out (over the size limit): path, size, sha256."""


def code_of(record: Mapping[str, Any]) -> str | None:
    git = record.get("git") or {}
    return git.get("snapshot_ref") or git.get("commit")


def find_run_code(workspace: Workspace, prefix: str, *, registry: RemoteSettings | None) -> RunCode:
    """The run's code, made present in this clone (fetched from the registry's bundle when needed)."""
    top = _toplevel(workspace.root)
    record = _local_record(workspace, prefix) or _snapshot_ref_record(top, prefix)
    source = "this clone"
    if record is None or not _has_commit(top, code_of(record)):
        if registry is None:
            raise UsageError(_missing_message(prefix, record))
        record = _fetch_from_registry(workspace, top, prefix, registry)
        source = registry.url
    code = code_of(record)
    if not code:
        raise UsageError(f"run {record['run_id']} recorded no commit (it did not run in a git repository)")
    if not _has_commit(top, code):
        raise UsageError(
            f"run {record['run_id']} ran on {code}, which this clone does not have; "
            "`git fetch origin` it (the registry has no code snapshot for a run on a clean tree)"
        )
    unrecoverable = tuple((record.get("git") or {}).get("unrecoverable") or ())
    return RunCode(run_id=str(record["run_id"]), code=code, source=source, unrecoverable=unrecoverable)


def add_worktree(workspace: Workspace, code: str, dest: Path) -> None:
    if dest.exists() and any(dest.iterdir()):
        raise UsageError(f"{dest} is not empty; give a new directory to --to")
    try:
        run_git(["worktree", "add", "--detach", "--quiet", str(dest), code], _toplevel(workspace.root))
    except GitError as error:
        raise UsageError(f"cannot check out {code} into {dest}: {error}") from None


def _local_record(workspace: Workspace, prefix: str) -> dict[str, Any] | None:
    history = RunHistory(workspace.runs)
    run_id = history.find(prefix)  # an ambiguous prefix is an error here, as in `mlpipe show`
    return None if run_id is None else history.load(run_id).to_json()


def _snapshot_ref_record(top: Path, prefix: str) -> dict[str, Any] | None:
    """A run this clone has only the snapshot ref of (fetched earlier, or pushed by a colleague)."""
    out = run_git(["for-each-ref", "--format=%(refname)", RUNS_REF_PREFIX], top).decode().split()
    ids = [ref.removeprefix(RUNS_REF_PREFIX) for ref in out]
    run_id = unique_match(prefix, [i for i in ids if i.startswith(prefix)])
    return None if run_id is None else {"run_id": run_id, "git": {"snapshot_ref": RUNS_REF_PREFIX + run_id}}


def _fetch_from_registry(
    workspace: Workspace, top: Path, prefix: str, registry: RemoteSettings
) -> dict[str, Any]:
    from mlpipe.run.stores import remote_run  # requests only when the registry is asked

    with tempfile.TemporaryDirectory(prefix="mlpipe-checkout-") as temp:
        bundle = Path(temp) / "run.bundle"
        record = remote_run(registry, workspace.cache, workspace.root, prefix, bundle_to=bundle)
        if record is None:
            raise UsageError(
                f"no run matches {prefix!r} here or in {registry.url}; `mlpipe runs --cache` lists them"
            )
        ref = (record.get("git") or {}).get("snapshot_ref")
        if ref and bundle.exists():
            _fetch_bundle(top, bundle, ref, record)
    return record


def _fetch_bundle(top: Path, bundle: Path, ref: str, record: Mapping[str, Any]) -> None:
    try:
        run_git(["bundle", "verify", "--quiet", str(bundle)], top)
    except GitError:
        commit = (record.get("git") or {}).get("commit")
        raise UsageError(
            f"run {record['run_id']}'s code bundle needs commit {commit}, which this clone does not have; "
            "`git fetch origin` first"
        ) from None
    run_git(["fetch", "--quiet", str(bundle), f"+{ref}:{ref}"], top)


def _has_commit(top: Path, code: str | None) -> bool:
    if not code:
        return False
    with contextlib.suppress(GitError):
        run_git(["cat-file", "-e", f"{code}^{{commit}}"], top)
        return True
    return False


def _toplevel(root: Path) -> Path:
    try:
        return Path(run_git(["rev-parse", "--show-toplevel"], root).decode().strip())
    except GitError:
        raise UsageError(f"{root} is not in a git repository; checkout needs the pipeline's clone") from None


def _missing_message(prefix: str, record: Mapping[str, Any] | None) -> str:
    if record is None:
        return (
            f"no run matches {prefix!r}; `mlpipe runs` lists them (give --cache oci://... for other runners')"
        )
    return (
        f"run {record['run_id']}'s code {code_of(record)} is not in this clone; give --cache oci://... to fetch "
        "it from the registry it was pushed to"
    )
