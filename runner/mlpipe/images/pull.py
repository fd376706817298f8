"""Each step image's id, asked of the container engine; an image not on this machine is pulled first."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mlpipe.errors import ContainerError
from mlpipe.executors.docker import client

__lazy_modules__ = ["docker"]


def resolve_images(refs: Iterable[str]) -> dict[str, dict[str, str | None]]:
    """Each image as the pipeline names it -> {"id": config digest, "digest": registry digest or None}.

    A missing image is pulled; one that cannot be pulled is a ContainerError naming it.
    """
    wanted = sorted(set(refs))
    if not wanted:
        return {}
    engine = client()
    try:
        return {ref: _image_info(engine, ref) for ref in wanted}
    finally:
        engine.close()


def _image_info(engine: Any, ref: str) -> dict[str, str | None]:
    import docker

    try:
        image = engine.images.get(ref)
    except docker.errors.ImageNotFound:
        image = _pull(engine, ref)
    except docker.errors.APIError as error:
        raise ContainerError(f"image {ref!r}: the engine could not inspect it: {error.explanation}") from None
    digests = image.attrs.get("RepoDigests") or []
    return {"id": str(image.id), "digest": str(digests[0]) if digests else None}


def _pull(engine: Any, ref: str) -> Any:
    import docker
    from docker.utils import parse_repository_tag

    repository, tag = parse_repository_tag(ref)
    problem = ""
    try:
        for message in engine.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
            if isinstance(message, dict) and message.get("error"):
                problem = str(message["error"])
        return engine.images.get(ref)
    except docker.errors.ImageNotFound as error:
        problem = problem or str(error.explanation)
    except docker.errors.APIError as error:
        problem = str(error.explanation or error)
    raise ContainerError(
        f"image {ref!r} is not on this machine and could not be pulled: {problem}; "
        "check the name, log in to its registry (docker login), or build it first"
    )
