"""Finding the run to compare with: by run id, or by commit in the local history and then in the registry.

The I/O half of `mlpipe diff`, `ci-run --since` and PR summaries; `compare.py` is the pure half.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mlpipe.core.reasons import FileChange
from mlpipe.errors import GitError, MlpipeError, UsageError
from mlpipe.frozen import frozen
from mlpipe.git.commands import run_git
from mlpipe.github.context import from_env
from mlpipe.paths import Workspace
from mlpipe.runs import RunHistory, RunRecord
from mlpipe.spec.model import Pipeline

if TYPE_CHECKING:
    from mlpipe.cache.tiered import RemoteSettings
    from mlpipe.core.compare import RunDiff


def resolve_commit(root: Path, rev: str) -> str | None:
    """The full commit id `rev` names in the repository at `root`, or None."""
    try:
        out = run_git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"], root)
    except GitError:
        return None
    return out.decode().strip() or None


def runs_at_commit(
    workspace: Workspace, commit: str, *, registry: RemoteSettings | None = None
) -> list[RunRecord]:
    """Runs of `commit` (clean tree only), newest first: the local history, then the registry's."""
    found = [
        r
        for r in RunHistory(workspace.runs).records()
        if r.git.get("commit") == commit and not r.git.get("dirty")
    ]
    if registry is not None:
        from mlpipe.run.stores import remote_run_records

        seen = {r.run_id for r in found}
        for data in remote_run_records(registry, workspace.cache, workspace.root, limit=20, commit=commit):
            with contextlib.suppress(ValueError, TypeError, KeyError):
                record = RunRecord.from_json(data)
                if record.run_id not in seen and not record.git.get("dirty"):
                    found.append(record)
    return sorted(found, key=lambda r: (r.status == "succeeded", r.run_id), reverse=True)


BRANCH_RUNS_READ = 40
"""Run records read from the registry to find a branch's latest runs (every branch's runs are tagged there)."""


def branch_runs(
    workspace: Workspace, branch: str, *, limit: int, registry: RemoteSettings | None = None
) -> list[RunRecord]:
    """The latest runs of `branch` on a clean tree, newest first: the local history's, then the registry's
    (among its BRANCH_RUNS_READ newest runs)."""
    found: dict[str, RunRecord] = {}
    for checked, record in enumerate(RunHistory(workspace.runs).records()):
        if len(found) >= limit or checked >= 1000:
            break
        if _on_branch(record, branch):
            found[record.run_id] = record
    if registry is not None and len(found) < limit:
        from mlpipe.run.stores import remote_run_records

        for data in remote_run_records(registry, workspace.cache, workspace.root, limit=BRANCH_RUNS_READ):
            with contextlib.suppress(ValueError, TypeError, KeyError):
                record = RunRecord.from_json(data)
                if _on_branch(record, branch):
                    found.setdefault(record.run_id, record)
    return sorted(found.values(), key=lambda r: r.run_id, reverse=True)[:limit]


def _on_branch(record: RunRecord, branch: str) -> bool:
    git = record.git if isinstance(record.git, dict) else {}
    return git.get("branch") == branch and not git.get("dirty") and isinstance(record.run_id, str)


def find_run(workspace: Workspace, rev: str, *, registry: RemoteSettings | None = None) -> RunRecord:
    """`rev` is a run id (or unique prefix, or `latest`), else a git revision whose latest clean run is taken."""
    history = RunHistory(workspace.runs)
    with contextlib.suppress(UsageError):
        return history.load(history.resolve(rev))
    commit = resolve_commit(workspace.root, rev)
    if commit is None:
        raise UsageError(
            f"{rev!r} is neither a recorded run nor a git revision; `mlpipe runs` lists the runs"
        )
    runs = runs_at_commit(workspace, commit, registry=registry)
    if not runs:
        where = "here or in the registry" if registry else "here (pass --cache oci://… to look in a registry)"
        raise UsageError(f"no run of commit {commit[:12]} ({rev}) is recorded {where}")
    return runs[0]


def pr_base_commit(environ: Mapping[str, str]) -> str | None:
    """On a `pull_request` job: the base branch's commit the PR is compared with (`pull_request.base.sha`)."""
    github = from_env(environ)
    sha = github.base_sha if github is not None else None
    return sha if isinstance(sha, str) and sha else None


@frozen(kw_only=True)
class Baseline:
    """The run a new run is compared with, or why there is none."""

    commit: str
    record: RunRecord | None
    note: str = ""


def baseline_for(
    workspace: Workspace, *, since: str | None, environ: Mapping[str, str], registry: RemoteSettings | None
) -> Baseline | None:
    """`--since REF` (a missing run is an error: nothing was compared), else a pull request's base commit."""
    if since is not None:
        commit = resolve_commit(workspace.root, since)
        if commit is None:
            raise UsageError(f"--since {since}: not a git revision here")
        runs = runs_at_commit(workspace, commit, registry=registry)
        if not runs:
            where = (
                "here or in the registry" if registry else "here (pass --cache oci://… to look in a registry)"
            )
            raise UsageError(f"--since {since}: no run of commit {commit[:12]} is recorded {where}")
        return Baseline(commit=commit, record=runs[0])
    commit = pr_base_commit(environ)
    if commit is None:
        return None
    try:
        runs = runs_at_commit(workspace, commit, registry=registry)
    except MlpipeError as error:  # the comparison is extra: it never fails the run
        return Baseline(commit=commit, record=None, note=f"the base run could not be read: {error}")
    if not runs:
        return Baseline(
            commit=commit, record=None, note=f"no run of the base commit {commit[:12]} is recorded"
        )
    return Baseline(commit=commit, record=runs[0])


def default_pair(workspace: Workspace) -> tuple[RunRecord, RunRecord]:
    """The run before the latest, and the latest."""
    history = RunHistory(workspace.runs)
    ids = history.ids()
    if len(ids) < 2:
        raise UsageError("`mlpipe diff` needs two recorded runs, or name the runs or commits to compare")
    return history.load(ids[1]), history.load(ids[0])


def directions(pipeline: Pipeline) -> dict[tuple[str, ...], bool]:
    """(step, metrics output) -> higher-is-better for the outputs that declare it for every metric, and
    (step, metrics output, metric) for the metrics listed by name."""
    found: dict[tuple[str, ...], bool] = {}
    for step in pipeline.steps.values():
        for output in step.outputs.values():
            if output.higher_is_better is not None:
                found[(step.name, output.name)] = output.higher_is_better
            for metric, higher in output.metric_directions:
                found[(step.name, output.name, metric)] = higher
    return found


def code_stats(root: Path, base: RunRecord, head: RunRecord) -> dict[str, list[str]]:
    """For each step whose code tree changed: `git diff --stat` between the trees, where git has both."""
    stats: dict[str, list[str]] = {}
    for name, step in head.steps.items():
        old = base.steps.get(name)
        if old is None or not old.tree or not step.tree or old.tree == step.tree:
            continue
        try:
            out = run_git(["diff", "--stat=100", "--no-color", old.tree, step.tree, "--"], root)
        except GitError:  # a shallow checkout may lack the base's trees: the reasons still say "code changed"
            continue
        lines = [line.strip() for line in out.decode(errors="replace").splitlines() if line.strip()]
        stats[name] = lines
    return stats


def code_files(workspace: Workspace, base: RunRecord, head: RunRecord) -> dict[str, list[FileChange]]:
    """For each step whose code tree changed: its changed files by repository path, where git has both trees."""
    from mlpipe.git.commands import find_repo
    from mlpipe.git.treediff import CodeDiff

    repo = find_repo(workspace.root)
    if repo is None:
        return {}
    inside = Path(os.path.realpath(workspace.root)).relative_to(Path(os.path.realpath(repo.root))).as_posix()
    differ = CodeDiff(
        repo_root=repo.root,
        workspace="" if inside == "." else inside,
        listing=lambda _tree: None,
        pool=workspace.snapshots / "blobs",
    )
    found: dict[str, list[FileChange]] = {}
    for name, step in head.steps.items():
        old = base.steps.get(name)
        if old is None or not old.tree or not step.tree or old.tree == step.tree or not step.code:
            continue
        changed = differ(str(step.code), str(old.tree), str(step.tree))  # CodeDiff checks the ids
        if changed:
            found[name] = [FileChange(change=c, path=p, line=line) for c, p, line in changed]
    return found


def compare_runs(
    workspace: Workspace,
    base: RunRecord,
    head: RunRecord,
    *,
    pipeline: Pipeline | None = None,
    extra_directions: Mapping[tuple[str, ...], bool] | None = None,
) -> RunDiff:
    found = directions(pipeline) if pipeline is not None else {}
    found.update(extra_directions or {})
    order = list(pipeline.steps) if pipeline is not None else []
    from mlpipe.core.compare import diff_runs  # only a run with a base to compare loads the comparison

    return diff_runs(
        base,
        head,
        directions=found,
        files=code_stats(workspace.root, base, head),
        code_files=code_files(workspace, base, head),
        order=order,
    )
