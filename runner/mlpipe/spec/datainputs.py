"""Inputs whose data does not live in the repository: a URL with its sha256, an external path, a data file."""

from __future__ import annotations

import ipaddress
import posixpath
import re
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from yaml.nodes import Node

from mlpipe.spec.datafiles import DATA_SUFFIX
from mlpipe.spec.model import DataInput, ExternalInput, Input, Location, OciInput, RepoInput, UrlInput
from mlpipe.spec.yamlnodes import Reader, join

URL_KEYS = ("url", "sha256")
EXTERNAL_KEYS = ("path", "external")
SHA256 = re.compile(r"[0-9a-f]{64}")
OCI_REF = re.compile(
    r"oci://(?P<host>[A-Za-z0-9.-]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:]+\](?::[0-9]{1,5})?)"
    r"/(?P<repo>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"@(?P<digest>sha256:[0-9a-f]{64})"
)


def mapping_input(reader: Reader, name: str, node: Node, key: str, loc: Location) -> Input | None:
    """`{url: ..., sha256: ...}` or `{path: /abs, external: true}`; None when wrong (reported)."""
    entries = reader.entries(node, key)
    if entries is None:
        return None
    names = {e.name for e in entries}
    if "url" in names or "sha256" in names or not names & set(EXTERNAL_KEYS):
        fields = reader.fields(node, key, URL_KEYS, required=URL_KEYS, owner=node) or {}
        url = _url(reader, fields["url"].value, join(key, "url")) if "url" in fields else None
        digest = _sha256(reader, fields["sha256"].value, join(key, "sha256")) if "sha256" in fields else None
        if url is None or digest is None:
            return None
        return UrlInput(name=name, url=url, sha256=digest, loc=loc)
    fields = reader.fields(node, key, EXTERNAL_KEYS, required=EXTERNAL_KEYS, owner=node) or {}
    external = None
    if "external" in fields:
        value = fields["external"].value
        external = reader.scalar(value, join(key, "external"), (bool,), "true")
        if external is False:
            fix = "write a workspace path as a plain string, or set external: true for a path on the runner"
            reader.add(value, join(key, "external"), "external: false is not an input form", fix)
    path = _external_path(reader, fields["path"].value, join(key, "path")) if "path" in fields else None
    if path is None or external is not True:
        return None
    return ExternalInput(name=name, path=path, loc=loc)


def _url(reader: Reader, node: Node, key: str) -> str | None:
    text = reader.string(node, key)
    if text is None:
        return None
    try:
        parts = urlsplit(text.strip())
        host = parts.hostname or ""
    except ValueError:
        parts, host = urlsplit(""), ""
    if parts.scheme == "https" and host:
        return text.strip()
    if parts.scheme == "http" and is_loopback(host):
        return text.strip()
    if parts.scheme == "http":
        reader.add(node, key, f"plain http is only for loopback hosts, found {host!r}", "use https://")
    else:
        reader.expected(node, key, "an https:// URL", "give the full URL, e.g. https://host/path/file.csv")
    return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _sha256(reader: Reader, node: Node, key: str) -> str | None:
    text = reader.string(node, key)
    if text is None:
        return None
    digest = text.strip().lower().removeprefix("sha256:")
    if not SHA256.fullmatch(digest):
        reader.expected(node, key, "64 hex digits (the file's sha256)", "run `sha256sum FILE` to get it")
        return None
    return digest


def _external_path(reader: Reader, node: Node, key: str) -> str | None:
    text = reader.string(node, key)
    if text is None:
        return None
    if not PurePosixPath(text).is_absolute():
        fix = "give an absolute path on the runner, or a workspace path as a plain string"
        reader.add(node, key, f"external path {text!r} is not absolute", fix)
        return None
    path = posixpath.normpath(text)
    if not reader.facts.exists(Path(path)):
        reader.add(node, key, f"external path {path!r} does not exist", "check the path on this machine")
    return path


def oci_input(reader: Reader, name: str, node: Node, key: str, text: str, loc: Location) -> Input:
    """`oci://HOST/REPO@sha256:...`: pinned by digest, since a tag can move under a cached result."""
    found = OCI_REF.fullmatch(text.strip())
    if found is None:
        fix = (
            "pin it by digest, e.g. oci://ghcr.io/org/data@sha256:<64 hex digits> (`oras resolve` prints it)"
        )
        reader.add(node, key, f"expected an OCI artifact by digest, found {text.strip()!r}", fix)
        return RepoInput(name=name, path=text, loc=loc)
    return OciInput(name=name, host=found["host"], repo=found["repo"], digest=found["digest"], loc=loc)


def is_oci(text: str) -> bool:
    return text.strip().startswith("oci://")


def is_data_file(rel: str) -> bool:
    return rel.endswith(DATA_SUFFIX)


def data_file_input(
    reader: Reader, root: Path, name: str, node: Node, key: str, rel: str, loc: Location
) -> Input:
    """A workspace path ending in `.mlpipe-data.json`: the data set it records."""
    try:
        data, digest = reader.facts.record(root / rel)
    except FileNotFoundError:
        fix = f"run `mlpipe data add {rel.removesuffix(DATA_SUFFIX)}` to record it"
        reader.add(node, key, f"data file {rel!r} does not exist", fix)
        return RepoInput(name=name, path=rel, loc=loc)
    except ValueError as error:
        fix = f"run `mlpipe data add {rel.removesuffix(DATA_SUFFIX)}` again"
        reader.add(node, key, f"data file {rel!r} is not valid: {error}", fix)
        return RepoInput(name=name, path=rel, loc=loc)
    path = posixpath.join(posixpath.dirname(rel), data)
    return DataInput(name=name, file=rel, path=path, digest=digest, loc=loc)
