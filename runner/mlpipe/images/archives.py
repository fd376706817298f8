"""Images as the engine loads them from `docker save` archives (format-1 image artifacts), streamed through files.

Loading is guarded: an archive must hold exactly the image it is said to hold, tagged (if at all) as a build of
the same context, so loading one never moves another tag of the engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__lazy_modules__ = ["docker"]


class BadArchive(Exception):
    """The archive is not the image it should be, or the engine would not load it."""


def check_archive(archive: Path, image_id: str, tag: str) -> None:
    """The archive must hold exactly this image, tagged (if at all) as a build of the same context: loading it
    must not move any other tag of the engine."""
    import tarfile

    try:
        with tarfile.open(archive, mode="r:") as tar:  # a seekable file: headers are read, contents skipped
            member = tar.getmember("manifest.json")
            data = tar.extractfile(member) if member.size <= 1 << 20 else None
            entries = json.loads(data.read()) if data is not None else None
    except (tarfile.TarError, KeyError, ValueError, OSError) as error:
        raise BadArchive(f"not an image archive: {error}") from None
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        raise BadArchive("the archive does not hold exactly one image")
    config = str(entries[0].get("Config") or "")
    if config.rsplit("/", 1)[-1].removesuffix(".json") != image_id.removeprefix("sha256:"):
        raise BadArchive(f"the archive does not hold image {image_id[:19]}")
    suffix = ":" + tag.rpartition(":")[2]
    for name in entries[0].get("RepoTags") or []:
        bare = str(name).removeprefix("docker.io/").removeprefix("localhost/")
        if not (bare.startswith("mlpipe-build/") and bare.endswith(suffix)):
            raise BadArchive(f"the archive would tag {name!r}")


def load_image(engine: Any, archive: Path, image_id: str, tag: str) -> None:
    """Load an archive into the engine and tag it; BadArchive if the engine refuses it or it holds another image."""
    import docker

    check_archive(archive, image_id, tag)
    try:
        with open(archive, "rb") as data:  # a file body: requests streams it with its Content-Length
            for message in engine.api.load_image(data):
                if isinstance(message, dict) and message.get("error"):
                    raise BadArchive(f"the engine could not load it: {message['error']}")
        image = engine.images.get(image_id)
    except docker.errors.ImageNotFound:
        raise BadArchive(f"the archive does not hold image {image_id[:19]}") from None
    except docker.errors.DockerException as error:
        raise BadArchive(f"the engine could not load it: {error}") from None
    repository, _, version = tag.rpartition(":")
    image.tag(repository, version)
