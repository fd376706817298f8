"""`mlpipe reproduce TAG_OR_RUN`: rerun a release (or a recorded run) from scratch and compare output digests.

The exact code (the commit, or the snapshot ref of a run on uncommitted changes) is checked out into a
temporary `git worktree`, so the user's checkout is never touched; every step runs again with reuse off, into
a temporary result store, so no stored entry is overwritten and no registry is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlpipe.errors import GitError, MlpipeError, UsageError
from mlpipe.frozen import frozen
from mlpipe.git.commands import git_env, run_git
from mlpipe.paths import Workspace
from mlpipe.release.manifest import build_manifest, load_release
from mlpipe.runs import RunHistory

if TYPE_CHECKING:
    from mlpipe.cache.tiered import RemoteSettings

REPRODUCE_FORMAT = "mlpipe.reproduce/1"
Outcome = Literal["match", "differs", "missing"]


class CouldNotCheck(MlpipeError):
    """Exit 2: the code could not be checked out or the pipeline did not run through."""

    exit_code = 2


class NotReproduced(MlpipeError):
    """Exit 1: an output came out different."""

    def __init__(self, name: str, steps: list[str]) -> None:
        self.name, self.steps = name, steps
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.name} is not reproduced: nondeterministic step(s) {', '.join(self.steps)}"


@frozen(kw_only=True)
class OutputCheck:
    step: str
    output: str
    expected: str
    got: str | None
    outcome: Outcome


@frozen(kw_only=True)
class Reproduction:
    name: str
    run_id: str
    code: str
    """The commit or snapshot ref checked out."""
    checks: tuple[OutputCheck, ...]

    @property
    def nondeterministic(self) -> list[str]:
        return list(dict.fromkeys(c.step for c in self.checks if c.outcome != "match"))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": REPRODUCE_FORMAT,
            "name": self.name,
            "run_id": self.run_id,
            "code": self.code,
            "reproduced": not self.nondeterministic,
            "nondeterministic": self.nondeterministic,
            "outputs": [vars(c) for c in self.checks],
        }


def load_target(workspace: Workspace, name: str, *, registry: RemoteSettings | None) -> dict[str, Any]:
    """A release manifest by tag, else the manifest-shaped view of a recorded run."""
    try:
        return load_release(workspace, name, registry=registry)
    except UsageError as not_a_release:
        history = RunHistory(workspace.runs)
        try:
            run_id = history.resolve(name)
        except UsageError:
            raise not_a_release from None
        return build_manifest(name, history.load(run_id))


def reproduce(
    workspace: Workspace, manifest: Mapping[str, Any], *, timeout_s: float | None = None
) -> Reproduction:
    code = manifest.get("snapshot_ref") or manifest.get("commit")
    if not code:
        raise CouldNotCheck(f"{manifest['tag']}: the run recorded no commit to check out")
    try:
        top = Path(run_git(["rev-parse", "--show-toplevel"], workspace.root).decode().strip())
    except GitError as error:
        raise CouldNotCheck(str(error)) from None
    inside = os.path.relpath(os.path.realpath(workspace.root), os.path.realpath(top))
    with _worktree(top, str(code)) as tree:
        record = _run(tree / inside, manifest, timeout_s=timeout_s)
    return Reproduction(
        name=str(manifest["tag"]),
        run_id=str(manifest["run_id"]),
        code=str(code),
        checks=compare(manifest, record),
    )


def compare(manifest: Mapping[str, Any], record: Mapping[str, Any]) -> tuple[OutputCheck, ...]:
    """Pure: the manifest's output digests against a reproduced run record's."""
    checks = []
    for name, step in manifest["steps"].items():
        got_outputs = (record.get("steps", {}).get(name) or {}).get("outputs") or {}
        for output, expected in (step.get("outputs") or {}).items():
            got = got_outputs.get(output)
            outcome: Outcome = "missing" if got is None else "match" if got == expected else "differs"
            checks.append(OutputCheck(step=name, output=output, expected=expected, got=got, outcome=outcome))
    return tuple(checks)


@contextlib.contextmanager
def _worktree(top: Path, code: str) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="mlpipe-reproduce-"))
    tree = base / "tree"
    try:
        run_git(["worktree", "add", "--detach", "--quiet", str(tree), code], top)
    except GitError as error:
        shutil.rmtree(base, ignore_errors=True)
        raise CouldNotCheck(f"cannot check out {code}: {error}") from None
    try:
        yield tree
    finally:
        with contextlib.suppress(GitError):
            run_git(["worktree", "remove", "--force", str(tree)], top)
        shutil.rmtree(base, ignore_errors=True)
        with contextlib.suppress(GitError):
            run_git(["worktree", "prune"], top)


def _run(root: Path, manifest: Mapping[str, Any], *, timeout_s: float | None) -> dict[str, Any]:
    store = root.parent.parent / "store"  # beside the worktree, inside the temporary directory
    argv = [sys.executable, "-m", "mlpipe", "ci-run", "--no-reuse", "--json", "--cache", str(store)]
    argv += ["-f", str(manifest.get("pipeline_file") or "mlpipe.yaml")]
    for name, value in (manifest.get("params") or {}).items():
        argv += ["-p", f"{name}={_param(value)}"]
    # Not a CI job and no registry: nothing is published, pushed or released from the reproduction.
    env = {k: v for k, v in git_env().items() if not k.startswith(("GITHUB_", "MLPIPE_"))}
    env.pop("CI", None)
    try:
        done = subprocess.run(
            argv, cwd=root, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise CouldNotCheck(f"the reproduction ran over {timeout_s} s") from None
    try:
        record: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        tail = done.stderr.strip().splitlines()[-5:]
        raise CouldNotCheck("the reproduction did not run: " + " / ".join(tail)) from None
    if record.get("status") != "succeeded":
        failed = [n for n, s in record.get("steps", {}).items() if s.get("status") not in {"ran", "reused"}]
        raise CouldNotCheck(f"the reproduction failed: {', '.join(failed)} did not succeed")
    return record


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
