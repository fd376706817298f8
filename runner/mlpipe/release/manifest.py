"""Release manifests: what a tag's run was made of and made, recorded so anyone can verify and reproduce it.

A run on a tag push (`refs/tags/…`) must start from a clean tree; when it succeeds its manifest (commit,
snapshot trees, images, params, environment files, input and output digests) is written to
`.mlpipe/releases/` and pushed to the registry as `release.<tag>`, never over an existing one.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpipe.cache.base import ResultStore
from mlpipe.digest import Entry, bytes_sha256, canonical_json, file_sha256, is_digest
from mlpipe.errors import MlpipeError, UsageError
from mlpipe.events import Sink, to_stderr, warning
from mlpipe.frozen import frozen
from mlpipe.git.provenance import GitInfo
from mlpipe.paths import Workspace
from mlpipe.runs import RunRecord

if TYPE_CHECKING:
    from mlpipe.cache.tiered import RemoteSettings

RELEASE_FORMAT = "mlpipe.release/1"
RELEASE_ARTIFACT_TYPE = "application/vnd.mlpipe.release.v1+json"
RELEASE_CONFIG_TYPE = "application/vnd.mlpipe.release.config.v1+json"


def release_tag(environ: Mapping[str, str]) -> str | None:
    """The tag a GitHub Actions job runs for (a tag push), or None."""
    ref = environ.get("GITHUB_REF", "") if environ.get("GITHUB_ACTIONS") == "true" else ""
    return ref.removeprefix("refs/tags/") if ref.startswith("refs/tags/") else None


def require_clean(tag: str, git: GitInfo) -> None:
    if git.dirty:
        paths = list(git.dirty_paths)
        shown = ", ".join(paths[:5]) + (", …" if len(paths) > 5 else "")
        raise UsageError(
            f"release run for tag {tag}: the working tree has uncommitted changes ({len(paths)} path(s): {shown}); "
            "a release is built from the tagged commit alone: commit or remove them"
        )


def oci_tag(tag: str) -> str:
    """`release.<tag>`, with what an OCI tag cannot hold (`/`, `+`, ...) as `-`."""
    return "release." + re.sub(r"[^A-Za-z0-9._-]", "-", tag)[:119]


def build_manifest(tag: str, record: RunRecord) -> dict[str, Any]:
    """Pure: the manifest of a finished, clean run."""
    steps = {}
    for name, step in record.steps.items():
        parts = step.parts or {}
        steps[name] = {
            "status": step.status,
            "fingerprint": step.fingerprint,
            "code": step.code,
            "tree": step.tree,
            "image": step.image or parts.get("image"),
            "params": parts.get("params", {}),
            "environment": parts.get("environment", {}),
            "inputs": parts.get("inputs", {}),
            "upstream": parts.get("upstream", {}),
            "outputs": dict(step.outputs),
            "metrics": {k: dict(v) for k, v in step.metrics.items()},
        }
    return {
        "format": RELEASE_FORMAT,
        "tag": tag,
        "run_id": record.run_id,
        "pipeline": record.pipeline,
        "pipeline_file": record.pipeline_file,
        "commit": record.git.get("commit"),
        "snapshot_ref": record.git.get("snapshot_ref"),
        "snapshots": dict(record.snapshots),
        "params": dict(record.params),
        "platform": record.platform,
        "mlpipe_version": record.mlpipe_version,
        "steps": steps,
    }


def _local_path(workspace: Workspace, tag: str) -> Path:
    return workspace.state / "releases" / f"{oci_tag(tag)}.json"


def save_local(workspace: Workspace, manifest: Mapping[str, Any]) -> Path:
    path = _local_path(workspace, str(manifest["tag"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    os.replace(temp, path)
    return path


def push_release(
    registry: RemoteSettings, workspace: Workspace, manifest: Mapping[str, Any], sink: Sink = to_stderr
) -> str:
    """Push to the repository this run writes; returns `repo:tag`, or says why not. Never overwrites. `sink`
    hears that the tag already holds another run's release."""
    opened = _remote(registry, workspace)
    if opened is None:
        return "not pushed: the registry is off"
    remote, pol = opened
    if pol.write is None:
        return f"not pushed: {pol.why}"
    from mlpipe.cache.oci import empty_layer
    from mlpipe.cache.registry import MANIFEST_TYPE

    tag = oci_tag(str(manifest["tag"]))
    client = remote.client
    existing = _fetch(remote, pol.write, tag)
    if existing is not None:
        if existing.get("run_id") != manifest["run_id"]:
            sink(
                warning(
                    f"{pol.write}:{tag} already holds run {existing.get('run_id')}'s release; "
                    "kept it (release manifests are never replaced)"
                )
            )
        return f"{pol.write}:{tag}"
    config = canonical_json(dict(manifest))
    digest = "sha256:" + bytes_sha256(config)
    if not client.has_blob(pol.write, digest):
        client.upload_bytes(pol.write, digest, config)
    body = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": RELEASE_ARTIFACT_TYPE,
        "config": {"mediaType": RELEASE_CONFIG_TYPE, "digest": digest, "size": len(config)},
        "layers": empty_layer(client, pol.write),
        "annotations": {
            "org.mlpipe.release": str(manifest["tag"]),
            "org.mlpipe.run": str(manifest["run_id"]),
        },
    }
    client.put_manifest(pol.write, tag, canonical_json(body))
    return f"{pol.write}:{tag}"


def load_release(workspace: Workspace, tag: str, *, registry: RemoteSettings | None) -> dict[str, Any]:
    """The manifest of `tag`: the local copy, else the registry's (from the repositories this run reads)."""
    path = _local_path(workspace, tag)
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except ValueError as error:
            raise UsageError(f"release manifest {path} is unreadable ({error})") from None
        return _checked(data, str(path))
    if registry is not None:
        opened = _remote(registry, workspace)
        if opened is not None:
            remote, pol = opened
            for repo in pol.read:
                found = _fetch(remote, repo, oci_tag(tag))
                if found is not None:
                    return _checked(found, f"{repo}:{oci_tag(tag)}")
    where = "here or in the registry" if registry else "here (pass --cache oci://… to look in a registry)"
    raise UsageError(f"no release manifest for tag {tag!r} {where}")


def _checked(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("format") != RELEASE_FORMAT:
        raise UsageError(f"{where} is not a release manifest of format {RELEASE_FORMAT}")
    return data


def _remote(registry: RemoteSettings, workspace: Workspace) -> tuple[Any, Any] | None:
    from mlpipe.run.stores import open_remote

    return open_remote(registry, workspace.cache, workspace.root)


def _fetch(remote: Any, repo: str, tag: str) -> dict[str, Any] | None:
    got = remote.client.get_manifest(repo, tag)
    if got is None:
        return None
    from mlpipe.cache.oci import Refused, _load_json
    from mlpipe.cache.registry import BlobCorrupt

    try:
        manifest = _load_json(got[0], "manifest")
        if manifest.get("artifactType") != RELEASE_ARTIFACT_TYPE:
            return None
        digest = manifest["config"]["digest"]
        if not is_digest(digest):
            raise Refused(f"config digest {str(digest)[:80]!r} is not sha256:<64 hex>")
        return _load_json(remote.client.blob_bytes(repo, digest, max_size=16 << 20), "release manifest")
    except (Refused, BlobCorrupt, KeyError, TypeError) as error:
        raise UsageError(f"the release artifact {repo}:{tag} is unusable: {error}") from None


# -- verify ----------------------------------------------------------------------------------------------------


class NotVerified(MlpipeError):
    """Exit 1: an artifact the manifest names is missing or does not match."""

    def __init__(self, tag: str, failed: list[str]) -> None:
        self.tag, self.failed = tag, failed
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"release {self.tag} is not verified: {', '.join(self.failed)} missing or not matching"


@frozen(kw_only=True)
class Finding:
    step: str
    output: str
    ok: bool
    message: str


def verify(manifest: Mapping[str, Any], store: ResultStore) -> list[Finding]:
    """Every output the manifest names: its stored result present, its digest the manifest's, every object
    intact (re-hashed). A store behind a registry fetches what is not local first."""
    found: list[Finding] = []
    for name, step in manifest["steps"].items():
        outputs: dict[str, str] = step.get("outputs") or {}
        if not outputs:
            continue
        result = store.lookup(step["fingerprint"]) if step.get("fingerprint") else None
        for output, digest in outputs.items():
            if result is None:
                message = f"no complete stored result {str(step.get('fingerprint'))[:12]}"
                found.append(Finding(step=name, output=output, ok=False, message=message))
                continue
            stored = result.outputs.get(output)
            if stored is None:
                found.append(Finding(step=name, output=output, ok=False, message="not in the stored result"))
            elif stored.digest != digest:
                message = f"stored digest {stored.digest[:19]} is not the manifest's {digest[:19]}"
                found.append(Finding(step=name, output=output, ok=False, message=message))
            else:
                bad = [e.path or "(the file)" for e in stored.entries if not _intact(store, e)]
                message = f"corrupt or missing: {', '.join(bad)}" if bad else f"matches {digest[:19]}"
                found.append(Finding(step=name, output=output, ok=not bad, message=message))
    return found


def _intact(store: ResultStore, entry: Entry) -> bool:
    path = store.local.object_path(entry)
    if not path.is_file():
        return False
    return entry.kind != "file" or file_sha256(path) == entry.sha256
