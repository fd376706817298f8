"""actions/checkout as the test workflow runner (actions_testing.py) performs it, and the repositories it
checks out: the test's repository, and this checkout's working tree as the action repository."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from actions_model import Event, StepContext, WorkflowError

CHECKOUT_INPUTS = {"repository", "ref", "path", "persist-credentials"}
"""What the runner's checkout does; other inputs are refused."""


def checkout(
    options: Mapping[str, Any],
    workspace: Path,
    *,
    own: str,
    origin: Path,
    event: Event,
    repositories: Mapping[str, Path],
) -> str:
    """actions/checkout@v4 with `options` (its `with:`), into a job's workspace."""
    repository = str(options.get("repository") or own)
    target = (workspace / str(options.get("path", "."))).resolve()
    if not target.is_relative_to(workspace.resolve()):
        raise WorkflowError(f"actions/checkout: path {options['path']!r} is outside the workspace")
    ref = str(options.get("ref") or "")
    if repository == own:
        source, sha = origin, git(origin, "rev-parse", ref or event.sha).strip()
        branch = event.ref
    elif repository in repositories:
        source = repositories[repository]
        sha = git(source, "rev-parse", f"{ref or 'HEAD'}^{{commit}}").strip()
        branch = ref if ref and not ref.startswith("refs/") and ref != sha else ""
    else:
        raise WorkflowError(f"actions/checkout: the test maps no repository {repository!r}")
    target.mkdir(parents=True, exist_ok=True)
    if not (target / ".git").exists():  # as checkout does: a directory that is no clone is emptied first
        for entry in target.iterdir():
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    git(target, "init", "-q")
    git(target, "remote", "add", "origin", source.resolve().as_uri())
    if branch.startswith("refs/pull/"):
        remote_ref = f"refs/remotes/pull/{branch.split('/')[2]}/merge"
    elif branch.startswith(("refs/heads/", "refs/tags/")) or (branch and not branch.startswith("refs/")):
        remote_ref = f"refs/remotes/origin/{branch.removeprefix('refs/heads/')}"
    else:
        remote_ref = "refs/remotes/origin/checkout"
    git(
        target,
        "-c",
        "protocol.version=2",
        "fetch",
        "-q",
        "--no-tags",
        "--depth=1",
        "origin",
        f"+{sha}:{remote_ref}",
    )
    if branch.startswith("refs/heads/") or (branch and not branch.startswith("refs/")):
        local = branch.removeprefix("refs/heads/")
        git(target, "checkout", "-q", "--force", "-B", local, remote_ref)
    else:
        git(target, "checkout", "-q", "--force", "--detach", remote_ref)
    return f"checked out {repository} at {sha} into {target}"


# -- contexts ------------------------------------------------------------------------------------------------


def link_installed_mlpipe(step: StepContext) -> None:
    """The seam for install/action.yml's `install` step: where it would build its virtual environment ($VENV),
    link the test environment, in which this checkout's mlpipe is installed (editable)."""
    venv = Path(step.env["VENV"])
    venv.parent.mkdir(parents=True, exist_ok=True)
    venv.symlink_to(Path(sys.prefix), target_is_directory=True)


def working_tree_repository(source: Path, dest: Path) -> tuple[Path, str]:
    """A one-commit repository of `source`'s working tree (tracked and untracked, not ignored files): the action
    repository as it would be published from this checkout, so uncommitted changes are what the jobs check out."""
    listed = git(source, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    dest.mkdir(parents=True)
    for name in filter(None, listed.split("\0")):
        path = source / name
        if path.is_file() and not path.is_symlink():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / name)
    identity = ["-c", "user.name=actions-testing", "-c", "user.email=actions-testing@example.com"]
    git(dest, "init", "-q", "-b", "main")
    # Every job fetches this tree afresh: served without zlib or delta search, a fetch takes 0.03 s CPU, not 0.2.
    git(dest, "config", "core.compression", "0")
    git(dest, "config", "pack.window", "0")
    git(dest, "add", "-A")
    git(dest, *identity, "commit", "-q", "-m", "the working tree")
    return dest, git(dest, "rev-parse", "HEAD").strip()


# -- helpers -----------------------------------------------------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        raise WorkflowError(f"git {' '.join(args)} in {cwd}: {result.stderr.strip()}")
    return result.stdout
