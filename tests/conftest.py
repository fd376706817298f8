"""Shared fixtures: a pinned, leak-free environment and real git repositories in temp dirs."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from mlpipe_testing import Project, git, isolate_environment, make_repo, write_files  # noqa: F401 - re-exported
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


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No inherited git/mlpipe/GitHub state; a private HOME so global git config cannot leak in."""
    isolate_environment(monkeypatch, tmp_path_factory.mktemp("home"))


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
