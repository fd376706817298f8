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
import time
from typing import Any

from mlpipe.cache.base import ResultStore
from mlpipe.core.results import StepResult
from mlpipe.digest import Entry, Manifest, bytes_sha256, canonical_json, is_digest
from mlpipe.events import cache_note
from mlpipe.inputs.base import InputUnavailable, RegistryAccess
from mlpipe.spec.model import OciInput
from mlpipe.text import human_size
from mlpipe.treepaths import UnsafeTree, check_name, check_tree

FORMAT = "mlpipe.oci-input/1"
TITLE = "org.opencontainers.image.title"
UNPACK = "io.deis.oras.content.unpack"


class OciInputError(InputUnavailable):
    """The artifact cannot be fetched, or is not one mlpipe can read."""


def entry_key(digest: str) -> str:
    return bytes_sha256(canonical_json({"format": FORMAT, "digest": digest}))


def fetch(store: ResultStore, item: OciInput, access: RegistryAccess) -> Manifest:
    """The artifact's files as a manifest, fetched into the store first when it lacks them."""
    stored = store.local.lookup(entry_key(item.digest))  # never the registry behind the store
    if stored is not None and "data" in stored.outputs:
        return stored.outputs["data"]
    from mlpipe.errors import CacheError

    started = time.monotonic()
    try:
        manifest = _fetch(store, item, access)
    except CacheError as error:
        raise OciInputError(f"input {item.name!r}: cannot fetch {item.ref}: {error}") from None
    size = sum(entry.size for entry in manifest.entries)
    took = time.monotonic() - started
    files = f"{len(manifest.entries)} file{'s' if len(manifest.entries) != 1 else ''}"
    access.sink(
        cache_note(f"fetched input {item.name!r} {item.ref} ({files}, {human_size(size)}) in {took:.1f}s")
    )
    result = StepResult(
        fingerprint=entry_key(item.digest),
        parts={"oci": item.digest},
        outputs={"data": manifest},
        provenance={"oci": item.ref},
    )
    return store.local.commit_result(result).result.outputs["data"]


def _fetch(store: ResultStore, item: OciInput, access: RegistryAccess) -> Manifest:
    client = access.client(item.host)
    got = client.get_manifest(item.repo, item.digest)
    if got is None:
        raise OciInputError(f"input {item.name!r}: {item.ref} is not in the registry")
    data, digest = got
    if digest != item.digest:
        raise OciInputError(f"input {item.name!r}: the registry sent manifest {digest} for {item.ref}")
    layers = _layers(item, data)
    titles = [_title(item, layer) for layer in layers]
    if len(set(titles)) != len(titles):
        raise OciInputError(f"input {item.name!r}: {item.ref} holds two layers with the same title")
    try:
        check_tree(dict.fromkeys(titles))  # no title may lie under another (a file is not a directory)
    except UnsafeTree as error:
        raise OciInputError(f"input {item.name!r}: {item.ref}: {error}") from None
    entries = [_layer(store, client, item, layer, title) for layer, title in zip(layers, titles, strict=True)]
    return Manifest(type="dir", entries=tuple(sorted(entries, key=lambda e: e.path)))


MAX_LAYERS = 10_000


def _layers(item: OciInput, data: bytes) -> list[dict[str, Any]]:
    try:
        layers = json.loads(data)["layers"]
        ok = isinstance(layers, list) and 0 < len(layers) <= MAX_LAYERS
        ok = ok and all(isinstance(layer, dict) and is_digest(layer.get("digest")) for layer in layers)
    except (ValueError, KeyError, TypeError, RecursionError):
        ok = False
    if not ok:
        raise OciInputError(
            f"input {item.name!r}: {item.ref} is not an artifact with files "
            f"(expected 1 to {MAX_LAYERS} layers, each with a sha256 digest)"
        )
    return list(layers)


def _title(item: OciInput, layer: dict[str, Any]) -> str:
    """The layer's file name: a plain relative path (no '..', no absolute path, no control characters)."""
    annotations = layer.get("annotations")
    title = annotations.get(TITLE) if isinstance(annotations, dict) else None
    if not isinstance(title, str) or (isinstance(annotations, dict) and annotations.get(UNPACK)):
        raise OciInputError(
            f"input {item.name!r}: {item.ref}: only file layers with a title are read "
            "(push files, not a directory, with oras)"
        )
    clean = posixpath.normpath(title)
    try:
        check_name(clean)
    except UnsafeTree as error:
        raise OciInputError(f"input {item.name!r}: {item.ref}: refusing the layer title: {error}") from None
    return clean


def _layer(store: ResultStore, client: Any, item: OciInput, layer: dict[str, Any], title: str) -> Entry:
    digest = str(layer["digest"])
    entry = Entry(path=title, kind="file", executable=False, size=0, sha256=digest.removeprefix("sha256:"))
    target = store.local.object_path(entry)
    if not target.exists():
        temp = store.local.temp_path(".oci")
        try:
            with open(temp, "wb") as out:
                client.download_blob(item.repo, digest, out)  # verified against the digest while streaming
            os.chmod(temp, 0o444)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
    return Entry(path=title, kind="file", executable=False, size=target.stat().st_size, sha256=entry.sha256)
