"""Shared fixtures: a pinned, leak-free environment and real git repositories in temp dirs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from mlpipe_testing import Project, git, make_repo, write_files  # noqa: F401 - re-exported
from nonroot_testing import shared_dir  # noqa: F401 - a fixture
from service_fixtures import (  # noqa: F401 - fixtures and constants, one instance per test run
    GITHUB_READ_TOKEN,
    GITHUB_WRITE_TOKEN,
    auth_registry,
    engine,
    github_api,
    github_api_server,
    podman,
    registry,
    tls_registry,
    token_registry,
)

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


STAND_IN_BIN = Path(__file__).parent / "bin"


def real_gpu_count() -> int:
    """GPUs the real nvidia-smi lists (never the stand-in in tests/bin)."""
    path = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep) if Path(d) != STAND_IN_BIN)
    smi = shutil.which("nvidia-smi", path=path)
    if smi is None:
        return 0
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in listed.stdout.splitlines())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` run only where a real GPU is: the one kind of test that may skip in CI."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_tests or real_gpu_count() > 0:
        return
    skip = pytest.mark.skip(reason="needs a real NVIDIA GPU (no nvidia-smi here lists one)")
    for item in gpu_tests:
        item.add_marker(skip)
