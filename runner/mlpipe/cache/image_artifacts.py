"""Step images as the registry holds them: an artifact tagged `image-<build key>` whose config names the image
id (images/provide.py builds, pushes and loads them). Read here, with every field checked, by the image
provider and by `gc`, which keeps the images that kept runs used.

Format 2 (`IMAGE_FORMAT_PUSHED`): the engine pushed the image itself, as a real OCI image, to the repository
`<repo>/images` (tag `image-<build key>`); the artifact's config names its id, that repository and its manifest
digest, and its one layer is the empty descriptor. Format 1 (`IMAGE_FORMAT`): the image as one `docker save`
archive layer; still read and loaded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from mlpipe.digest import is_digest
from mlpipe.frozen import frozen

IMAGE_ARTIFACT_TYPE = "application/vnd.mlpipe.image.v1+json"
IMAGE_CONFIG_TYPE = "application/vnd.mlpipe.image.config.v1+json"
ARCHIVE_MEDIA_TYPE = "application/vnd.mlpipe.image.archive.v1.tar"
"""The image as the Docker Engine API's `GET /images/{name}/get` (docker save) writes it."""
IMAGE_FORMAT = "mlpipe.oci-image/1"
"""The archive format; it also names build keys (images/provide.py), so keys stay the same across formats."""
IMAGE_FORMAT_PUSHED = "mlpipe.oci-image/2"
IMAGES_SUFFIX = "/images"
"""The engine pushes a cache repository's images to `<repo>/images`."""


@frozen(kw_only=True)
class Found:
    """An image artifact in the registry, its config read and its trust accepted."""

    repo: str
    image_id: str
    layer: Mapping[str, Any] | None = None
    """Format 1: the archive's layer descriptor."""
    repository: str | None = None
    """Format 2: the repository the engine pushed the image to (`<repo>/images`, checked)."""
    digest: str | None = None
    """Format 2: the image's manifest digest there."""


class Unusable(Exception):
    """An image artifact that is there but must not be used: a warning, and the image is built instead."""


def artifact_image_id(client: Any, repo: str, tag: str) -> str | None:
    """The image id an `image-*` artifact holds; None when it is absent or unusable (for gc)."""
    with contextlib.suppress(Unusable):
        found = read_artifact(client, repo, tag)
        return found[0].image_id if found is not None else None
    return None


def artifact_found(client: Any, repo: str, tag: str) -> Found | None:
    """The `image-*` artifact as read; None when it is absent or unusable (for gc)."""
    with contextlib.suppress(Unusable):
        found = read_artifact(client, repo, tag)
        return found[0] if found is not None else None
    return None


def read_artifact(client: Any, repo: str, tag: str) -> tuple[Found, Mapping[str, Any]] | None:
    """The artifact under `tag` and its trust; None when absent. Raises Unusable for a wrong or broken one."""
    from mlpipe.cache.oci import Refused, _load_json
    from mlpipe.cache.registry import BlobCorrupt

    got = client.get_manifest(repo, tag)
    if got is None:
        return None
    try:
        manifest = _load_json(got[0], "manifest")
        if manifest.get("artifactType") != IMAGE_ARTIFACT_TYPE:
            raise Unusable("it is not an mlpipe image")
        if not is_digest(manifest["config"]["digest"]):
            raise Unusable("malformed image artifact: its config digest is not sha256:<64 hex>")
        config = _load_json(client.blob_bytes(repo, manifest["config"]["digest"], max_size=1 << 20), "config")
        if config.get("format") == IMAGE_FORMAT_PUSHED:
            return _pushed(repo, config), dict(config.get("trust") or {})
        if config.get("format") != IMAGE_FORMAT:
            raise Unusable(f"unknown image format {str(config.get('format'))[:80]!r}")
        layers = [d for d in manifest["layers"] if d.get("mediaType") == ARCHIVE_MEDIA_TYPE]
        image_id = config["image"]["id"]
        archive = layers[0] if len(layers) == 1 else {}
        size = archive.get("size")
        if (
            not (is_digest(image_id) and is_digest(archive.get("digest")))
            or type(size) is not int
            or size < 0
        ):
            raise Unusable("malformed image artifact: expected one archive layer and sha256 digests")
        return Found(repo=repo, image_id=image_id, layer=layers[0]), dict(config.get("trust") or {})
    except (Refused, BlobCorrupt) as error:
        raise Unusable(str(error)) from None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise Unusable(f"malformed image artifact: {error!r}") from None


def _pushed(repo: str, config: Mapping[str, Any]) -> Found:
    """A format-2 config: the image must be in this repository's `images` repository, named by digests."""
    image = config["image"]
    image_id, repository, digest = image["id"], image["repository"], image["digest"]
    if not (is_digest(image_id) and is_digest(digest)):
        raise Unusable("malformed image artifact: its image id and digest must be sha256:<64 hex>")
    if repository != repo + IMAGES_SUFFIX:
        raise Unusable(f"its image is in {str(repository)[:80]!r}, not in {repo + IMAGES_SUFFIX!r}")
    return Found(repo=repo, image_id=image_id, repository=repository, digest=digest)
