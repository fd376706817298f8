"""Services for integration tests: the real distribution registry, with and without htpasswd auth.

In CI (CI=true) a registry that cannot start fails the tests; locally without the package they skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from services.registry import REGISTRY_PASSWORD, REGISTRY_USER, Registry, RegistryUnavailable, missing_tools


def _in_ci() -> bool:
    # Read at collection time, before the autouse fixture clears CI from the environment.
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


IN_CI = _in_ci()


def _start(tmp_path_factory: pytest.TempPathFactory, *, auth: bool) -> Iterator[Registry]:
    missing = missing_tools(auth=auth)
    if missing:
        message = f"{', '.join(missing)} not installed (apt-get install docker-registry apache2-utils)"
        if IN_CI:
            pytest.fail(f"CI=true and the test registry cannot start: {message}", pytrace=False)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("registry-auth" if auth else "registry")
    registry = Registry(root, username=REGISTRY_USER if auth else None, password=REGISTRY_PASSWORD)
    try:
        registry.start()
    except (RegistryUnavailable, OSError) as error:
        pytest.fail(f"the test registry did not start: {error}", pytrace=False)
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from _start(tmp_path_factory, auth=False)


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from _start(tmp_path_factory, auth=True)
