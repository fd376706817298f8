"""`oci://HOST/REPO@sha256:...` inputs: an artifact's files (as `oras push` stores them), fetched once.

Each layer becomes one file named by its `org.opencontainers.image.title`; the step reads the directory of
them. Blobs go straight into the store's objects (a layer digest is its content's sha256, verified while
streaming) and the file list is kept as a store entry, so a stored artifact is used without a request.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import sys
from typing import Any

from mlpipe.cache.base import StepResult
from mlpipe.cache.local import LocalStore
from mlpipe.digest import Entry, Manifest, bytes_sha256, canonical_json
from mlpipe.inputs import InputUnavailable
from mlpipe.spec.model import OciInput

FORMAT = "mlpipe.oci-input/1"
TITLE = "org.opencontainers.image.title"
UNPACK = "io.deis.oras.content.unpack"


class OciInputError(InputUnavailable):
    """The artifact cannot be fetched, or is not one mlpipe can read."""


def entry_key(digest: str) -> str:
    return bytes_sha256(canonical_json({"format": FORMAT, "digest": digest}))


def fetch(store: LocalStore, item: OciInput) -> Manifest:
    """The artifact's files as a manifest, fetched into the store first when it lacks them."""
    stored = LocalStore.lookup(store, entry_key(item.digest))  # never the registry cache behind the store
    if stored is not None and "data" in stored.outputs:
        return stored.outputs["data"]
    from mlpipe.errors import CacheError

    try:
        manifest = _fetch(store, item)
    except CacheError as error:
        raise OciInputError(f"input {item.name!r}: cannot fetch {item.ref}: {error}") from None
    result = StepResult(
        fingerprint=entry_key(item.digest),
        parts={"oci": item.digest},
        outputs={"data": manifest},
        provenance={"oci": item.ref},
    )
    return store.commit_result(result).result.outputs["data"]


def _fetch(store: LocalStore, item: OciInput) -> Manifest:
    from mlpipe.cache.registry import RegistryClient, find_credentials

    insecure = os.environ.get("MLPIPE_INSECURE_REGISTRY", "").lower() in {"1", "true", "yes", "on"}
    client = RegistryClient(
        item.host, credentials=find_credentials(item.host, os.environ), insecure=insecure, warn=_warn
    )
    got = client.get_manifest(item.repo, item.digest)
    if got is None:
        raise OciInputError(f"input {item.name!r}: {item.ref} is not in the registry")
    data, digest = got
    if digest != item.digest:
        raise OciInputError(f"input {item.name!r}: the registry sent manifest {digest} for {item.ref}")
    entries = [_layer(store, client, item, layer) for layer in _layers(item, data)]
    paths = [e.path for e in entries]
    if len(set(paths)) != len(paths):
        raise OciInputError(f"input {item.name!r}: {item.ref} holds two layers with the same title")
    return Manifest(type="dir", entries=tuple(sorted(entries, key=lambda e: e.path)))


def _layers(item: OciInput, data: bytes) -> list[dict[str, Any]]:
    try:
        layers = json.loads(data)["layers"]
        assert isinstance(layers, list) and layers
    except (ValueError, KeyError, TypeError, AssertionError):
        raise OciInputError(f"input {item.name!r}: {item.ref} is not an artifact with files") from None
    return layers


def _layer(store: LocalStore, client: Any, item: OciInput, layer: dict[str, Any]) -> Entry:
    annotations = layer.get("annotations") or {}
    title = annotations.get(TITLE)
    digest = str(layer.get("digest", ""))
    if annotations.get(UNPACK) or not isinstance(title, str):
        raise OciInputError(
            f"input {item.name!r}: {item.ref}: only file layers with a title are read "
            "(push files, not a directory, with oras)"
        )
    clean = posixpath.normpath(title)
    if clean.startswith(("/", "../")) or clean in {".", ".."} or not digest.startswith("sha256:"):
        raise OciInputError(f"input {item.name!r}: {item.ref}: refusing the layer title {title!r}")
    entry = Entry(path=clean, kind="file", executable=False, size=0, sha256=digest.removeprefix("sha256:"))
    target = store.object_path(entry)
    if not target.exists():
        temp = store.temp_path(".oci")
        try:
            with open(temp, "wb") as out:
                client.download_blob(item.repo, digest, out)  # verified against the digest while streaming
            os.chmod(temp, 0o444)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
    return Entry(path=clean, kind="file", executable=False, size=target.stat().st_size, sha256=entry.sha256)


def _warn(message: str) -> None:
    print(f"mlpipe: warning: {message}", file=sys.stderr, flush=True)
