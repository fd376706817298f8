"""Helpers shared by the tests: real git repositories in temp dirs and the real `mlpipe` command.

A module of its own (not conftest) so test modules can import it by a name no other conftest shadows.
"""

from __future__ import annotations

import json as json_module
import os
import shutil
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
}


def isolate_environment(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """No inherited git/mlpipe/GitHub state; `home` as a private HOME so global git config cannot leak in.
    Every test gets it (conftest's `clean_environment`); a module-scoped fixture applies it for its own setup."""
    for name in list(os.environ):
        if name.startswith(("GIT_", "MLPIPE_", "GITHUB_")) or name in {"CI", "RUNNER_TEMP"}:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    # Registry logins (podman's, docker's) of whoever runs the tests stay out of them.
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(home / "run"))
    for name in ("REGISTRY_AUTH_FILE", "DOCKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    # Steps find `python` as they would in an activated virtual environment.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    for name, value in GIT_IDENTITY.items():
        monkeypatch.setenv(name, value)


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return result.stdout


def write_files(root: Path, files: Mapping[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def count_file_reads(monkeypatch: Any) -> list[str]:
    """The base names of the files `mlpipe.digest` reads to hash from now on (the real hashing, counted)."""
    from mlpipe import digest

    read: list[str] = []
    real = digest.file_sha256

    def counted(path: Path | str) -> str:
        read.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(digest, "file_sha256", counted)
    return read


def old_files(top: Path, count: int, per_dir: int) -> Path:
    """`count` small files of distinct bytes in directories of `per_dir`, dated 1970 (never racy for a stat cache)."""
    for i in range(count):
        path = top / f"d{i // per_dir}" / f"f{i:02d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes([i % 256]) * 100)
        os.utime(path, ns=(10**9, 10**9))
    return top


def make_repo(root: Path, files: Mapping[str, str | bytes], *, commit: bool = True) -> Path:
    """A real git repository at `root` holding `files`, committed on branch main."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    write_files(root, files)
    if commit:
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "initial")
    return root


class Outcome:
    def __init__(self, args: tuple[str, ...], completed: subprocess.CompletedProcess[str]) -> None:
        self.args = args
        self.code = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def assert_success(self) -> Outcome:
        assert self.code == 0, f"mlpipe {' '.join(self.args)} exited {self.code}:\n{self.output}"
        return self

    def assert_code(self, code: int) -> Outcome:
        assert self.code == code, (
            f"mlpipe {' '.join(self.args)} exited {self.code}, not {code}:\n{self.output}"
        )
        return self

    def json(self) -> Any:
        return json_module.loads(self.stdout)


class Project:
    """A pipeline in a real, committed git repository; `.run(...)` runs the real `mlpipe` command in it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, files: Mapping[str, str | bytes]) -> None:
        write_files(self.root, files)

    def git(self, *args: str) -> str:
        return git(self.root, *args)

    def commit(self, message: str = "change") -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)

    def run(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> Outcome:
        full_env = {**os.environ, **(env or {})}
        completed = subprocess.run(
            [sys.executable, "-m", "mlpipe", *args],
            check=False,
            cwd=self.root,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Outcome(args, completed)

    def record(self, run_id: str = "latest") -> Any:
        return self.run("show", run_id, "--json").assert_success().json()


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example_project(name: str, dest: Path) -> Project:
    """A copy of examples/NAME as a fresh one-commit git repository (no state or outputs of earlier runs)."""
    root = dest / name
    ignore = shutil.ignore_patterns(".mlpipe", "metrics.json", "train-stats.json", "__pycache__")
    shutil.copytree(EXAMPLES / name, root, ignore=ignore)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"{name} example")
    return Project(root)


_METRICS_STEPS = """\
params:
  lr: 0.1
steps:
  prepare:
    code: prepare
    run: sh prepare.sh ${{ outputs.data }}
    outputs:
      data: {}
  train:
    code: train
    run: sh train.sh ${{ inputs.data }} ${{ params.lr }} ${{ outputs.scores }}
    inputs:
      data: ${{ steps.prepare.outputs.data }}
    outputs:
      scores: {kind: metrics, higher-is-better: true}
  report:
    code: report
    run: cat ${{ inputs.scores }} > ${{ outputs.page }}
    inputs:
      scores: ${{ steps.train.outputs.scores }}
    outputs:
      page: {type: file}
"""

METRICS_FILES = {
    "prepare/prepare.sh": 'echo rows > "$1/rows.txt"\n',
    "train/train.sh": 'printf \'{"acc": 0.5}\' > "$3"\n',
    "report/.keep": "",
}
"""The scripts of `metrics_pipeline`: train scores acc 0.5."""


def metrics_pipeline(name: str, extra_steps: str = "") -> str:
    """prepare -> train (a metrics output, higher is better) -> report: what the diff and PR tests compare."""
    return f"name: {name}\n" + _METRICS_STEPS + extra_steps


def traced_peak(action: Callable[[], object]) -> int:
    """The peak of memory traced (tracemalloc) while `action()` runs."""
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
