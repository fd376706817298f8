"""The checks every stored record passes before any of its fields builds a path, a link, an open, a print or an
allocation: result records (from a registry, or from a store several clones share), OCI manifests and configs.

Pure: data in, checked data out, `BadRecord` naming the field and what was expected otherwise. A record that
fails is a miss (the step runs), never a crash: its fields are the work of whoever could write the registry.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from mlpipe.frozen import frozen
from mlpipe.treepaths import UnsafeTree, check_in_order, check_name, check_tree

SHA256 = re.compile(r"[0-9a-f]{64}")
OBJECT_NAME = re.compile(r"[0-9a-f]{64}(\.x)?")
"""A stored object: its sha256, `.x` when executable."""
RUN_ID = re.compile(r"[0-9]{8}T[0-9]{6}[0-9]{3}Z-[0-9a-f]{16}")
"""As runs.new_run_id makes them."""
COMMIT = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
"""A git commit: sha1, or sha256 in a repository of that object format."""
OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,199}")
"""As the pipeline file allows them (spec/refs.py NAME), at most 200 characters."""
RUN_URL = (
    r"https?://[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::[0-9]{1,5})?"
    r"/(?!\.)[A-Za-z0-9_.-]{1,100}/(?!\.)[A-Za-z0-9_.-]{1,100}/actions/runs/[0-9]{1,20}"
)
"""A GitHub Actions workflow run: SERVER/OWNER/REPO/actions/runs/ID; nothing else becomes a link."""
MEDIA_TYPE = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
"""RUN_URL and MEDIA_TYPE are compiled on first use (re's cache): a no-op run reads no link or descriptor."""

MAX_SIZE = 1 << 63
"""Sizes are below this (what an off_t holds)."""
MAX_LINK_BYTES = 4095
"""A symbolic link's target is shorter than PATH_MAX."""
MAX_TEXT = 200
"""Output and metric names, a provenance's pipeline and step."""
MAX_METRICS = 10_000
MAX_PARTS_VALUES = 100_000
MAX_DEPTH = 32
"""Nesting of a fingerprint's parts (params are the deepest, a handful of levels in practice)."""
MAX_LAYERS = 100_000


class BadRecord(ValueError):
    """A stored record with a field that fails its check: the entry is a miss."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")


def load_json(data: bytes, what: str) -> dict[str, Any]:
    """A JSON object from untrusted bytes: not UTF-8, not JSON, too deeply nested or not an object is BadRecord."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise BadRecord(what, "nested too deeply") from None
    except ValueError as error:  # UnicodeDecodeError too
        raise BadRecord(what, f"not JSON ({_short(str(error), 120)})") from None
    return json_object(value, what)


def json_object(value: Any, what: str) -> dict[str, Any]:
    """A record's value as a whole: a JSON object."""
    if not isinstance(value, dict):
        raise BadRecord(what, f"expected a JSON object, found {_kind(value)}")
    return value


# -- scalars -----------------------------------------------------------------------------------------------
def obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRecord(where, f"expected an object, found {_kind(value)}")
    return value


def array(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadRecord(where, f"expected a list, found {_kind(value)}")
    return value


def field(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise BadRecord(where, f"no {key!r}")
    return data[key]


def sha256(value: Any, where: str) -> str:
    if not isinstance(value, str) or not SHA256.fullmatch(value):
        raise BadRecord(where, f"expected 64 lowercase hex characters, found {shown(value)}")
    return value


def digest(value: Any, where: str) -> str:
    """An OCI digest as mlpipe writes them: `sha256:` and 64 lowercase hex characters."""
    if not isinstance(value, str) or not value.startswith("sha256:") or not SHA256.fullmatch(value[7:]):
        raise BadRecord(where, f"expected sha256: and 64 lowercase hex characters, found {shown(value)}")
    return value


def size(value: Any, where: str, limit: int = MAX_SIZE - 1) -> int:
    if type(value) is not int or not 0 <= value <= limit:
        raise BadRecord(where, f"expected a whole number from 0 to {limit}, found {shown(value)}")
    return value


def boolean(value: Any, where: str) -> bool:
    if type(value) is not bool:
        raise BadRecord(where, f"expected true or false, found {shown(value)}")
    return value


def choice(value: Any, allowed: Iterable[str], where: str) -> str:
    options = tuple(allowed)
    if not isinstance(value, str) or value not in options:
        raise BadRecord(where, f"expected one of {', '.join(options)}, found {shown(value)}")
    return value


def text(value: Any, where: str, limit: int = MAX_TEXT) -> str:
    """A string that prints as one plain line: printable characters only, at most `limit` of them."""
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise BadRecord(
            where, f"expected a printable string of 1 to {limit} characters, found {shown(value)}"
        )
    return value


def number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRecord(where, f"expected a finite number, found {shown(value)}")
    return value


# -- file trees ----------------------------------------------------------------------------------------------
def entry(data: Any, where: str) -> tuple[str, str, bool, int, str]:
    """One file of a manifest: (path, kind, executable, size, sha256). Its path is checked with its tree."""
    data = obj(data, where)
    try:
        path, kind, executable, size_, sha = (
            data["path"],
            data["kind"],
            data["x"],
            data["size"],
            data["sha256"],
        )
    except KeyError as error:
        raise BadRecord(where, f"no {error.args[0]!r}") from None
    if not isinstance(path, str):
        raise BadRecord(f"{where}.path", f"expected a string, found {_kind(path)}")
    if kind != "file" and kind != "link":
        choice(kind, ("file", "link"), f"{where}.kind")
    if type(executable) is not bool:
        boolean(executable, f"{where}.x")
    if type(size_) is not int or not 0 <= size_ <= (MAX_LINK_BYTES if kind == "link" else MAX_SIZE - 1):
        size(size_, f"{where}.size", MAX_LINK_BYTES if kind == "link" else MAX_SIZE - 1)
    if type(sha) is not str or not SHA256.fullmatch(sha):
        sha256(sha, f"{where}.sha256")
    return path, kind, executable, size_, sha


def manifest(data: Any, where: str) -> tuple[str, list[tuple[str, str, bool, int, str]]]:
    """A file or directory's manifest: (type, entries). A file is one regular file with path ''; a directory's
    paths are unique plain names, none under a file or a link (links are followed once their targets are
    stored: `check_links`)."""
    data = obj(data, where)
    kind = choice(field(data, "type", where), ("file", "dir"), f"{where}.type")
    raw = array(field(data, "entries", where), f"{where}.entries")
    entries = [entry(e, f"{where}.entries[{i}]") for i, e in enumerate(raw)]
    check_manifest(kind, lambda: ((e[0], e[1] == "link") for e in entries), len(entries), where)
    return kind, entries


def check_manifest(
    kind: str, files: Callable[[], Iterator[tuple[str, bool]]], count: int, where: str
) -> None:
    """The shape of a manifest of `count` entries whose fields passed `entry`, `files()` giving each one's
    (path, is a link): a file output is one regular file with path ''; a directory's paths are unique plain
    names, none under a file or a link."""
    if kind == "file":
        if count != 1 or next(files()) != ("", False):
            raise BadRecord(where, "a file output must have exactly one entry: a regular file with path ''")
        return
    try:
        # A link's target is an object not fetched yet: the shape is checked now, its target once it is stored.
        if check_in_order(files()):
            return
        tree: dict[str, str | None] = {}
        for path, link in files():
            if path in tree:
                raise BadRecord(where, f"{shown(path)} is listed twice")
            tree[path] = "." if link else None  # '.': a target that stays where it is
        check_tree(tree)
    except UnsafeTree as error:
        raise BadRecord(where, str(error)) from None


def check_links(entries: Iterable[Any], target: Callable[[Any], str]) -> None:
    """A directory's entries (digest.Entry) as treepaths.check_tree sees them, each link's target read by
    `target(entry)` from its stored object: plain names, nothing under a file or a link, every link followed as
    the kernel would staying inside the tree. Raises treepaths.UnsafeTree."""
    check_tree({e.path: target(e) if e.kind == "link" else None for e in entries})


def link_target(content: bytes, path: str) -> str:
    """A link object's content as the target to give symlink(): UTF-8, no NUL, shorter than PATH_MAX."""
    if len(content) > MAX_LINK_BYTES:
        raise UnsafeTree(f"link {path!r} has a target longer than {MAX_LINK_BYTES} bytes")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeTree(f"link {path!r} has a target that is not valid UTF-8") from None


# -- result records ----------------------------------------------------------------------------------------
def output_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not OUTPUT_NAME.fullmatch(value):
        raise BadRecord(where, f"expected an output name (letters, digits, '_', '-'), found {shown(value)}")
    return value


def parts(value: Any, where: str) -> dict[str, Any]:
    """A fingerprint's parts: a JSON object of at most MAX_PARTS_VALUES values, MAX_DEPTH levels deep."""
    top = obj(value, where)
    count = 0
    stack: list[tuple[Any, int]] = [(top, 1)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_PARTS_VALUES:
            raise BadRecord(where, f"more than {MAX_PARTS_VALUES} values")
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise BadRecord(where, f"nested deeper than {MAX_DEPTH} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, float) and not math.isfinite(item):
            raise BadRecord(where, f"holds {item!r}, not a finite number")
    return top


def metrics(value: Any, where: str) -> dict[str, dict[str, float]]:
    """Output name -> metric name -> finite number; names are short printable strings."""
    checked: dict[str, dict[str, float]] = {}
    count = 0
    for output, values in obj(value, where).items():
        text(output, f"{where} (an output name)")
        inner = f"{where}.{output}"
        checked[output] = {}
        for name, number_value in obj(values, inner).items():
            count += 1
            if count > MAX_METRICS:
                raise BadRecord(where, f"more than {MAX_METRICS} metrics")
            text(name, f"{inner} (a metric name)")
            checked[output][name] = number(number_value, f"{inner}.{name}")
    return checked


def _optional_commit(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not COMMIT.fullmatch(value):
        raise BadRecord(where, "not a commit")
    return value


def _optional_text(limit: int) -> Callable[[Any, str], str | None]:
    return lambda value, where: None if value is None else text(value, where, limit)


def _duration(value: Any, where: str) -> float:
    if number(value, where) < 0:
        raise BadRecord(where, "negative")
    return value  # type: ignore[no-any-return]


def _run_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not RUN_ID.fullmatch(value):
        raise BadRecord(where, "not a run id")
    return value


def _paths(value: Any, where: str) -> dict[str, str]:
    """Output name -> the repository-relative path the step declares for it (names the output in artifacts)."""
    checked = {}
    for name, path in obj(value, where).items():
        try:
            check_name(text(path, f"{where}.{output_name(name, where)}", 4096))
        except UnsafeTree as error:
            raise BadRecord(f"{where}.{name}", str(error)) from None
        checked[name] = path
    return checked


def _source(value: Any, where: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s@]{1,1000}", value):
        raise BadRecord(where, f"expected an http(s) URL without credentials, found {shown(value)}")
    return value


def run_url(value: Any) -> str | None:
    """`value` if it is a workflow run's URL (RUN_URL), else None: a stored record's link, checked before it
    is shown as one."""
    return value if isinstance(value, str) and re.fullmatch(RUN_URL, value) else None


def _run_url(value: Any, where: str) -> str:
    url = run_url(value)
    if url is None:
        raise BadRecord(where, "not a workflow run URL")
    return url


_PROVENANCE: dict[str, Callable[[Any, str], Any]] = {
    "run_id": _run_id,
    "pipeline": text,
    "step": lambda v, w: text(v, w, 1000),  # a matrix instance carries its values: train[lr=0.1,C=1]
    "commit": _optional_commit,
    "ref": _optional_text(1000),
    "dirty": boolean,
    "created_at": lambda v, w: text(v, w, 64),
    "duration_s": _duration,
    "data": lambda v, w: text(v, w, 4096),  # a data set's path (inputs/datasets.py)
    "oci": lambda v, w: text(v, w, 1000),  # an OCI input's reference (inputs/oci.py)
    "paths": _paths,
    "source": _source,  # the repository's URL (org.opencontainers.image.source of the artifact)
    "run_url": _run_url,  # the GitHub Actions run that produced it
}


def provenance(value: Any) -> dict[str, Any]:
    """Who produced a result: the known fields that pass their check, the rest dropped (it only informs)."""
    if not isinstance(value, dict):
        return {}
    kept = {}
    for key, check in _PROVENANCE.items():
        if key in value:
            try:
                kept[key] = check(value[key], key)
            except BadRecord:
                continue
    return kept


def trust(value: Any) -> dict[str, Any]:
    """Who wrote a registry entry (tiered.py `trust`): event, ref, scope as text, protected as a bool."""
    if not isinstance(value, dict):
        return {}
    kept: dict[str, Any] = {}
    for key in ("event", "ref", "scope"):
        item = value.get(key)
        if isinstance(item, str) and 0 < len(item) <= 1000 and item.isprintable():
            kept[key] = item
    if type(value.get("protected")) is bool:
        kept["protected"] = value["protected"]
    return kept


# -- OCI manifests and configs -------------------------------------------------------------------------------
@frozen
class Descriptor:
    """An OCI descriptor: media type, digest, size."""

    media_type: str
    digest: str
    size: int


@frozen
class OciManifest:
    """An OCI image manifest: its artifact type, config and layers."""

    artifact_type: str | None
    config: Descriptor
    layers: tuple[Descriptor, ...]


def descriptor(value: Any, where: str) -> Descriptor:
    data = obj(value, where)
    media_type = field(data, "mediaType", where)
    if not isinstance(media_type, str) or not re.fullmatch(MEDIA_TYPE, media_type):
        raise BadRecord(f"{where}.mediaType", f"expected a media type, found {shown(media_type)}")
    return Descriptor(
        media_type,
        digest(field(data, "digest", where), f"{where}.digest"),
        size(field(data, "size", where), f"{where}.size"),
    )


def oci_manifest(data: bytes) -> OciManifest:
    value = load_json(data, "manifest")
    artifact = value.get("artifactType")
    layers = array(value.get("layers", []), "manifest.layers")
    if len(layers) > MAX_LAYERS:
        raise BadRecord("manifest.layers", f"more than {MAX_LAYERS} layers")
    return OciManifest(
        artifact if isinstance(artifact, str) else None,
        descriptor(field(value, "config", "manifest"), "manifest.config"),
        tuple(descriptor(d, f"manifest.layers[{i}]") for i, d in enumerate(layers)),
    )


def layer_index(value: Any, where: str) -> list[tuple[str, list[str]]]:
    """A result config's `layers`: (layer digest, object names) each, digests unique."""
    index: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for i, item in enumerate(array(value, where)):
        here = f"{where}[{i}]"
        data = obj(item, here)
        layer = digest(field(data, "digest", here), f"{here}.digest")
        if layer in seen:
            raise BadRecord(here, f"layer {layer[:19]} is listed twice")
        seen.add(layer)
        names = array(field(data, "objects", here), f"{here}.objects")
        for j, name in enumerate(names):
            if not isinstance(name, str) or not OBJECT_NAME.fullmatch(name):
                raise BadRecord(f"{here}.objects[{j}]", f"expected an object name, found {shown(name)}")
        index.append((layer, names))
    return index


# -- messages ------------------------------------------------------------------------------------------------
def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def shown(value: Any) -> str:
    """A value as a message shows it: repr (control characters escaped), cut short."""
    if isinstance(value, dict | list):
        return _kind(value)
    return _short(repr(value), 80)


def _short(message: str, limit: int) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"
