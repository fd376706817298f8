"""Images pushed and pulled by the engine itself (Docker Engine API `push` / `pull`), as real OCI images.

The engine talks to the registry: base layers already there are not uploaded again, and `docker pull` /
`podman pull` of the recorded digest gives the image. Credentials go as the API's X-Registry-Auth; whether the
engine speaks plain HTTP or trusts a certificate is the engine's own registries configuration.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from mlpipe.cache.logins import Credentials

__lazy_modules__ = ["docker"]


class NotSaved(Exception):
    """The engine does not have the image to push (any more): a warning, and nothing is pushed."""


class EngineRefused(Exception):
    """The engine could not push or pull the image: its message, cut to a line."""


class Unauthorized(EngineRefused):
    """The registry refused the engine's credentials."""


def _auth(credentials: Credentials | None, host: str) -> dict[str, str] | None:
    if credentials is None:
        return None
    return {"username": credentials.username, "password": credentials.password, "serveraddress": host}


def _problem(messages: Any) -> str:
    """The stream's first error, on one line; "" when there is none."""
    problem = ""
    for message in messages:
        if isinstance(message, Mapping) and message.get("error") and not problem:
            problem = " ".join(str(message["error"]).split())[:300]
    return problem


def _refused(problem: str) -> EngineRefused:
    lowered = problem.lower()
    if "unauthorized" in lowered or "authentication required" in lowered or "denied" in lowered:
        return Unauthorized(problem)
    return EngineRefused(problem)


def push_image(
    engine: Any, image_id: str, host: str, repository: str, tag: str, credentials: Credentials | None
) -> None:
    """Push the image as `<host>/<repository>:<tag>`; the registry tag is removed from the engine again (the
    image keeps its build tag). The engine's own report of the digest is not used: podman's names another
    manifest format than the one it pushed; the caller reads the digest from the registry."""
    import docker

    name = f"{host}/{repository}"
    try:
        engine.api.tag(image_id, name, tag=tag)
    except docker.errors.DockerException as error:
        raise EngineRefused(f"the engine could not tag it: {error}") from None
    try:
        stream = engine.api.push(
            name, tag=tag, stream=True, decode=True, auth_config=_auth(credentials, host)
        )
        problem = _problem(stream)
        if problem:
            raise _refused(problem)
    except docker.errors.APIError as error:
        raise _refused(str(error.explanation or error)) from None
    except docker.errors.DockerException as error:
        raise EngineRefused(str(error)) from None
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            engine.api.remove_image(f"{name}:{tag}", noprune=True)


def pull_image(engine: Any, host: str, repository: str, digest: str, credentials: Credentials | None) -> str:
    """Pull `<host>/<repository>@<digest>`; the id of the image the engine got."""
    import docker

    name = f"{host}/{repository}"
    try:
        stream = engine.api.pull(
            name, tag=digest, stream=True, decode=True, auth_config=_auth(credentials, host)
        )
        problem = _problem(stream)
        if problem:
            raise _refused(problem)
        return str(engine.api.inspect_image(f"{name}@{digest}")["Id"])
    except docker.errors.APIError as error:
        raise _refused(str(error.explanation or error)) from None
    except docker.errors.DockerException as error:
        raise EngineRefused(str(error)) from None
