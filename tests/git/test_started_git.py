"""`StartedGit`: git started now and read later says what `run_git` says, and is reaped if never read."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from mlpipe.errors import GitError
from mlpipe.git.commands import StartedGit, run_git
from mlpipe.git.provenance import git_info, start_git_info
from mlpipe_testing import make_repo, write_files


def test_its_output_and_its_errors_are_run_gits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "a\n"})
    assert StartedGit(["rev-parse", "HEAD"], repo).output() == run_git(["rev-parse", "HEAD"], repo)
    assert StartedGit(["config", "--get", "no.such"], repo, ok_codes=(0, 1)).output() == b""
    with pytest.raises(GitError) as started:
        StartedGit(["rev-parse", "--verify", "-q", "nosuchref"], repo).output()
    with pytest.raises(GitError) as ran:
        run_git(["rev-parse", "--verify", "-q", "nosuchref"], repo)
    assert (
        str(started.value)
        == str(ran.value)
        == "`git rev-parse --verify -q nosuchref` failed with exit code 1: "
    )
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    missing = StartedGit(["status"], repo)  # no error until it is read, where run_git would raise
    with pytest.raises(GitError, match="git is not installed or not on PATH"):
        missing.output()


def test_it_reads_the_repository_when_started(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "a\n"})
    started = StartedGit(["status", "--porcelain", "--untracked-files=all"], repo)
    assert started.process is not None
    started.process.wait()
    write_files(repo, {"new.py": "later\n"})
    assert started.output() == b""


def test_one_never_read_is_reaped_when_it_goes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "a\n"})
    started = StartedGit(["status"], repo)
    assert started.process is not None
    pid = started.process.pid
    del started
    gc.collect()
    with pytest.raises(ChildProcessError):  # already waited for: no zombie left behind
        os.waitpid(pid, 0)


def test_git_info_started_early_needs_git_only_when_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `prepare` starts git's status and remotes first and reads them after the snapshots, the walk and the plan.
    repo = make_repo(tmp_path / "repo", {"a.py": "a\n"})
    expected = git_info(repo)
    finish = start_git_info(repo)
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))  # both are running already
    assert finish() == expected
    assert expected.in_repo and expected.commit is not None
    assert not git_info(repo).in_repo  # the check can fail: a git started now is not found
