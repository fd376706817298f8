"""Services for integration and fault tests: the real distribution registry (plain, htpasswd, token auth), podman's
Docker-compatible API and the GitHub API stand-in, each started once per test run.

In CI (CI=true) a service that cannot start fails the tests; locally without its packages they skip. tests/conftest.py
imports them, so every test folder (one per part of the package, faults/, contracts/) shares one instance of each.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from ci_testing import unavailable
from services import podman as podman_service
from services.podman import Podman, PodmanUnavailable
from services.registry import (
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    Registry,
    RegistryUnavailable,
    TestCA,
    missing_tools,
)


def _start(tmp_path_factory: pytest.TempPathFactory, *, auth: bool, tls: bool = False) -> Iterator[Registry]:
    missing = missing_tools(auth=auth) + (["openssl"] if tls and shutil.which("openssl") is None else [])
    if missing:
        message = (
            f"{', '.join(missing)} not installed (apt-get install docker-registry apache2-utils openssl)"
        )
        unavailable(f"the test registry cannot start: {message}")
    root = tmp_path_factory.mktemp("registry-auth" if auth else "registry-tls" if tls else "registry")
    try:
        registry = Registry(
            root,
            username=REGISTRY_USER if auth else None,
            password=REGISTRY_PASSWORD,
            tls=TestCA(root / "ca") if tls else None,
        )
        registry.start()
    except (RegistryUnavailable, OSError, subprocess.CalledProcessError) as error:
        pytest.fail(f"the test registry did not start: {error}", pytrace=False)
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from _start(tmp_path_factory, auth=False)


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry on 127.0.0.1 serving HTTPS with a certificate signed by a private CA (`registry.tls.cert`),
    as a company registry behind its own CA; the CA is in no trust store."""
    yield from _start(tmp_path_factory, auth=False, tls=True)


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from _start(tmp_path_factory, auth=True)


# -- podman's Docker-compatible API, for the container executor tests ----------------------------------------
@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    missing = podman_service.missing_tools()
    if missing:
        message = f"{', '.join(missing)} not installed (apt-get install podman runc catatonit busybox-static)"
        unavailable(f"the container engine cannot start: {message}")
    engine = Podman(tmp_path_factory.mktemp("podman"))
    try:
        engine.start()
        engine.build_busybox()
    except (PodmanUnavailable, OSError) as error:
        engine.stop()
        pytest.fail(f"the podman API service did not start: {error}", pytrace=False)
    try:
        yield engine
    finally:
        engine.remove_all_containers()
        engine.stop()


@pytest.fixture
def engine(podman: Podman, monkeypatch: pytest.MonkeyPatch) -> Iterator[Podman]:
    """The podman service as this test's DOCKER_HOST; fails the test if it leaves a container behind."""
    monkeypatch.setenv("DOCKER_HOST", podman.docker_host)
    yield podman
    left = podman.containers()
    if left:
        podman.remove_all_containers()
        pytest.fail(f"containers left behind: {left}", pytrace=False)


# -- the GitHub API stand-in (tests/services/github_api.py) --------------------------------------------------
GITHUB_WRITE_TOKEN = "ghs_writeTOKEN0123456789abcdefABCDEF01"
GITHUB_READ_TOKEN = "ghs_readTOKEN0123456789abcdefABCDEF012"


@pytest.fixture(scope="session")
def github_api_server() -> Iterator[object]:
    from services.github_api import GitHubAPI, spec_available

    if not spec_available():
        message = "GitHub's OpenAPI description is not installed (scripts/test runs npm ci in tests/node)"
        unavailable(f"the GitHub API stand-in cannot start: {message}")
    api = GitHubAPI()
    api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def github_api(github_api_server: object) -> object:
    """The stand-in, emptied, knowing a token that may write checks and one that may only read."""
    server = github_api_server
    server.reset()  # type: ignore[attr-defined]
    server.add_token(GITHUB_WRITE_TOKEN, "write")  # type: ignore[attr-defined]
    server.add_token(GITHUB_READ_TOKEN, "read")  # type: ignore[attr-defined]
    return server


# -- the registry behind a token service (`auth: token`), as ghcr.io and Docker Hub authenticate ---------------
@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from services.token_server import start_for_tests

    yield from start_for_tests(tmp_path_factory)
