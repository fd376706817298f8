"""`oci://HOST/REPO@sha256:...` inputs: an artifact's files (as `oras push` stores them), fetched once.

Each layer becomes one file named by its `org.opencontainers.image.title`, or, for a directory layer (`oras
push DIR`: a gzip'd tar, marked `io.deis.oras.content.unpack` by oras-go or typed `...tar+gzip` by oras-py),
the files under that name; the step reads the directory of them. Blobs go straight into the store's objects (a
layer digest is its content's sha256, verified while streaming); a directory layer is downloaded, verified, and
read member by member (never extracted by tarfile: regular files and links inside the tree only, bounded) and
the file list is kept as a store entry, so a stored artifact is used without a request.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import posixpath
import time
import zlib
from typing import IO, Any

from mlpipe.cache.base import ResultStore
from mlpipe.core.results import StepResult
from mlpipe.digest import Entry, Manifest, bytes_sha256, canonical_json, is_digest
from mlpipe.events import cache_note
from mlpipe.inputs.base import InputUnavailable, RegistryAccess
from mlpipe.records import MAX_LINK_BYTES
from mlpipe.spec.model import OciInput
from mlpipe.text import human_size
from mlpipe.treepaths import UnsafeTree, check_name, check_tree

FORMAT = "mlpipe.oci-input/2"
"""2: directory layers are unpacked (format 1 refused oras-go's and kept oras-py's as a gzip file)."""
TITLE = "org.opencontainers.image.title"
UNPACK = "io.deis.oras.content.unpack"
DIRECTORY_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
MAX_MEMBERS = 200_000
MAX_UNPACKED = 64 << 30
"""What a directory layer may unpack to: a gzip bomb stops here, with an error, not at a full disk."""


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
    client = access.client(item.host, item.repo)
    got = client.get_manifest(item.repo, item.digest)
    if got is None:
        raise OciInputError(f"input {item.name!r}: {item.ref} is not in the registry")
    data, digest = got
    if digest != item.digest:
        raise OciInputError(f"input {item.name!r}: the registry sent manifest {digest} for {item.ref}")
    layers = _layers(item, data)
    files: dict[str, tuple[Entry, str | None]] = {}
    for layer in layers:
        title = _title(item, layer)
        found = (
            _unpack(store, client, item, layer, title)
            if _is_directory(layer)
            else [(_layer(store, client, item, layer, title), None)]
        )
        for entry, target in found:
            if files.setdefault(entry.path, (entry, target))[0] is not entry:
                raise OciInputError(f"input {item.name!r}: {item.ref} holds {entry.path[:200]!r} twice")
    try:
        check_tree(
            {path: target for path, (_, target) in files.items()}
        )  # nothing under a file, links inside
    except UnsafeTree as error:
        raise OciInputError(f"input {item.name!r}: {item.ref}: {error}") from None
    return Manifest(type="dir", entries=tuple(sorted((e for e, _ in files.values()), key=lambda e: e.path)))


def _is_directory(layer: dict[str, Any]) -> bool:
    """What ORAS clients unpack on pull: oras-go by the annotation, oras-py by the media type."""
    annotations = layer.get("annotations")
    unpack = isinstance(annotations, dict) and annotations.get(UNPACK) == "true"
    return unpack or layer.get("mediaType") == DIRECTORY_MEDIA_TYPE


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
    if not isinstance(title, str):
        raise OciInputError(
            f"input {item.name!r}: {item.ref}: a layer has no {TITLE} annotation: only named layers are "
            "read (push files or directories with oras)"
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


def _unpack(
    store: ResultStore, client: Any, item: OciInput, layer: dict[str, Any], title: str
) -> list[tuple[Entry, str | None]]:
    """A directory layer's files and links, each under `title` as oras-go requires (oras-py's are too, its
    titles being base names); each file's content goes into the store as an object."""
    import tarfile

    where = f"input {item.name!r}: {item.ref}: directory layer {title!r}"
    temp = store.local.temp_path(".tgz")
    found: list[tuple[Entry, str | None]] = []
    try:
        with open(temp, "wb") as out:
            client.download_blob(item.repo, str(layer["digest"]), out)
        total = 0
        with tarfile.open(temp, mode="r|gz") as tar:
            for count, member in enumerate(tar, 1):
                if count > MAX_MEMBERS:
                    raise OciInputError(f"{where} holds more than {MAX_MEMBERS} members")
                path = _member_path(where, title, member.name)
                if member.isdir():
                    continue
                if path is None:
                    raise OciInputError(f"{where} holds a file at its own title; a directory was expected")
                if member.issym():
                    found.append(_link(store, where, path, member.linkname))
                    continue
                if not member.isreg():
                    what = "a hard link" if member.islnk() else "a device or pipe"
                    raise OciInputError(
                        f"{where}: {path[:200]!r} is {what}; only files and symbolic links are read"
                    )
                total += member.size
                if total > MAX_UNPACKED:
                    raise OciInputError(f"{where} unpacks to more than {MAX_UNPACKED >> 30} GiB")
                data = tar.extractfile(member)
                if data is None:
                    raise OciInputError(f"{where}: {path[:200]!r} cannot be read")
                found.append((_store_object(store, path, data, bool(member.mode & 0o100)), None))
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise OciInputError(f"{where} is not a gzip'd tar ({error})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return found


def _member_path(where: str, title: str, name: str) -> str | None:
    """The member's path in the input (under `title`), None for the title itself; refused when outside it."""
    clean = posixpath.normpath(name.removeprefix("./")) if name not in ("", ".") else "."
    if clean == title:
        return None
    if not clean.startswith(title + "/"):
        raise OciInputError(f"{where}: member {name[:200]!r} is not under {title!r}")
    try:
        check_name(clean)
    except UnsafeTree as error:
        raise OciInputError(f"{where}: {error}") from None
    return clean


def _link(store: ResultStore, where: str, path: str, target: str) -> tuple[Entry, str]:
    data = target.encode("utf-8", "surrogateescape")
    if not data or len(data) > MAX_LINK_BYTES:
        raise OciInputError(
            f"{where}: link {path[:200]!r} has an empty target or one over {MAX_LINK_BYTES} bytes"
        )
    entry = _store_object(store, path, io.BytesIO(data), False)
    return Entry(path=path, kind="link", executable=False, size=entry.size, sha256=entry.sha256), target


def _store_object(store: ResultStore, path: str, data: IO[bytes], executable: bool) -> Entry:
    """`data` into the store as an object (hashed while written; kept when the store already has it)."""
    temp = store.local.temp_path(".oci")
    hasher, size = hashlib.sha256(), 0
    try:
        with open(temp, "wb") as out:
            while block := data.read(1 << 20):
                hasher.update(block)
                out.write(block)
                size += len(block)
        entry = Entry(path=path, kind="file", executable=executable, size=size, sha256=hasher.hexdigest())
        target = store.local.object_path(entry)
        if not target.exists():
            os.chmod(temp, 0o555 if executable else 0o444)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)
        return entry
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
