"""Shared fixtures: a pinned, leak-free environment and real git repositories in temp dirs."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from mlpipe_testing import Project, git, make_repo, write_files  # noqa: F401 - re-exported

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No inherited git/mlpipe/GitHub state; a private HOME so global git config cannot leak in."""
    for name in list(os.environ):
        if name.startswith(("GIT_", "MLPIPE_", "GITHUB_")) or name in {"CI", "RUNNER_TEMP"}:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    # Steps find `python` as they would in an activated virtual environment.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    for name, value in GIT_IDENTITY.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def repo_factory(tmp_path: Path) -> Iterator[object]:
    def factory(files: Mapping[str, str | bytes], *, name: str = "repo", commit: bool = True) -> Path:
        return make_repo(tmp_path / name, files, commit=commit)

    yield factory


@pytest.fixture
def project_factory(tmp_path: Path) -> Any:
    def factory(files: Mapping[str, str | bytes], *, name: str = "project", commit: bool = True) -> Project:
        return Project(make_repo(tmp_path / name, {".gitignore": ".mlpipe/\n", **files}, commit=commit))

    return factory
