"""Step results and run records as OCI artifacts, pulled into and pushed from the local store.

A result is one manifest tagged `result-<fingerprint>`: mlpipe's artifactType, a config blob holding the
result record (fingerprint, parts, output file index, metrics, provenance, trust) and which object each layer
holds, and deterministic layers (see layers.py). A run record is a manifest tagged `run.<commit>.<run_id>`
whose config is the record. The registry's tags are the index (distribution 2.8 has no referrers API).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlpipe.cache.base import StepResult
from mlpipe.cache.layers import (
    RAW_MEDIA_TYPE,
    TAR_MEDIA_TYPE,
    LayerError,
    LayerPlan,
    ObjectKey,
    TarObjectSink,
    TarStream,
    plan_layers,
)
from mlpipe.cache.local import LocalStore, _check_paths
from mlpipe.cache.registry import MANIFEST_TYPE, BlobCorrupt, RegistryClient
from mlpipe.digest import Entry, Manifest, canonical_json

ARTIFACT_TYPE = "application/vnd.mlpipe.result.v1+json"
CONFIG_TYPE = "application/vnd.mlpipe.result.config.v1+json"
RUN_ARTIFACT_TYPE = "application/vnd.mlpipe.run.v1+json"
RUN_CONFIG_TYPE = "application/vnd.mlpipe.run.config.v1+json"
BUNDLE_MEDIA_TYPE = "application/vnd.mlpipe.git-bundle.v1"
"""A dirty run's code: `git bundle` of its `refs/mlpipe/runs/<id>`, without what the remote already has."""
CONFIG_FORMAT = "mlpipe.oci-result/1"
MAX_CONFIG = 256 << 20
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def result_tag(fingerprint: str) -> str:
    if not _FINGERPRINT.fullmatch(fingerprint):
        raise ValueError(f"not a fingerprint: {fingerprint!r}")
    return f"result-{fingerprint}"


def run_tag(commit: str | None, run_id: str) -> str:
    tag = f"run.{commit or 'none'}.{run_id}"
    if not _TAG.fullmatch(tag):
        raise ValueError(f"cannot tag run {run_id!r}")
    return tag


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _key_entry(key: ObjectKey) -> Entry:
    return Entry(path="", kind="file", executable=key.executable, size=0, sha256=key.sha256)


class Refused(Exception):
    """An artifact that must not be used (wrong type, escaping paths, corrupt): a miss with a warning."""


class OciCache:
    def __init__(self, client: RegistryClient, store: LocalStore) -> None:
        self.client = client
        self.store = store

    # -- pull ------------------------------------------------------------------------------------------
    def fetch(
        self, repo: str, fingerprint: str, accept: Callable[[Mapping[str, Any]], bool] = lambda t: True
    ) -> StepResult | None:
        """The result under this fingerprint, copied into the local store; None when absent.

        Raises Refused for an artifact that is there but unusable, CacheError when the registry fails.
        """
        got = self.client.get_manifest(repo, result_tag(fingerprint))
        if got is None:
            return None
        manifest = _load_json(got[0], "manifest")
        if manifest.get("artifactType") != ARTIFACT_TYPE:
            raise Refused(f"{repo}:{result_tag(fingerprint)} is not an mlpipe result")
        try:
            config = _load_json(self.client.blob_bytes(repo, manifest["config"]["digest"]), "config")
            if config.get("format") != CONFIG_FORMAT:
                raise Refused(f"unknown result format {config.get('format')!r}")
            result = StepResult.from_json(config["result"])
            chunks = {
                layer["digest"]: [ObjectKey.parse(n) for n in layer["objects"]] for layer in config["layers"]
            }
            descriptors = {d["digest"]: d for d in manifest["layers"]}
            trust = config.get("trust") or {}
            del config, manifest  # the parsed file index is held once, in `result`
        except BlobCorrupt as error:
            raise Refused(str(error)) from None
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise Refused(f"malformed result artifact: {error!r}") from None
        if result.fingerprint != fingerprint:
            raise Refused(f"the artifact holds fingerprint {result.fingerprint[:12]}, not {fingerprint[:12]}")
        if not accept(trust):
            return None
        for output in result.outputs.values():
            try:
                _check_paths(output)
            except ValueError as error:
                raise Refused(str(error)) from None
        needed = {ObjectKey(e.sha256, e.executable) for m in result.outputs.values() for e in m.entries}
        missing = {k for k in needed if not os.path.exists(self.store.object_file(k.sha256, k.executable))}
        work = []
        for digest, keys in chunks.items():
            wanted = [k for k in keys if k in missing]
            if not wanted:
                continue
            descriptor = descriptors.get(digest)
            if descriptor is None:
                raise Refused(f"layer {digest[:19]} is not in the manifest")
            work.append((descriptor, wanted))
            missing.difference_update(wanted)
        _parallel(lambda item: self._pull_layer(repo, item[0], item[1]), work)
        if missing:
            raise Refused(f"{len(missing)} object(s) are in no layer of the artifact")
        for output in result.outputs.values():
            self._check_links(output)
        return self.store.commit_result(result).result

    def _pull_layer(self, repo: str, descriptor: Mapping[str, Any], wanted: Sequence[ObjectKey]) -> None:
        digest, media_type = descriptor["digest"], descriptor.get("mediaType")
        if media_type == TAR_MEDIA_TYPE:
            # Streamed straight into the store: no temp copy of the layer, no tarfile per member.
            sink = TarObjectSink(wanted, lambda k: self.store.new_object(k.sha256, k.executable))
            try:
                self._download(repo, descriptor, sink)
                sink.finish()
            except LayerError as error:
                raise Refused(str(error)) from None
            finally:
                sink.close()
            return
        if media_type != RAW_MEDIA_TYPE:
            raise Refused(f"unknown layer media type {media_type!r}")
        for key in wanted:
            if "sha256:" + key.sha256 != digest:
                raise Refused(f"raw layer {digest[:19]} does not hold object {key.sha256[:12]}")
        temp = self.store.temp_path(".layer")
        try:
            with open(temp, "wb") as out:
                self._download(repo, descriptor, out)
            for i, key in enumerate(wanted):
                self._install(temp, key, copy=i < len(wanted) - 1)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    def _download(self, repo: str, descriptor: Mapping[str, Any], out: Any) -> None:
        try:
            self.client.download_blob(repo, descriptor["digest"], out, max_size=int(descriptor["size"]))
        except BlobCorrupt as error:
            raise Refused(str(error)) from None

    def _install(self, source: Path, key: ObjectKey, *, copy: bool) -> None:
        target = self.store.object_path(_key_entry(key))
        if target.exists():
            if not copy:
                source.unlink()
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = source
        if copy:
            temp = self.store.temp_path()
            shutil.copyfile(source, temp)
        os.chmod(temp, 0o555 if key.executable else 0o444)
        os.replace(temp, target)

    def _check_links(self, manifest: Manifest) -> None:
        for entry in manifest.entries:
            if entry.kind != "link":
                continue
            target = self.store.object_path(entry).read_bytes().decode(errors="replace")
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(entry.path), target))
            if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                raise Refused(f"refusing a link that points outside its output: {entry.path!r} -> {target!r}")

    # -- push ------------------------------------------------------------------------------------------
    def push(
        self, repo: str, result: StepResult, trust: Mapping[str, Any], *, mount_from: Sequence[str] = ()
    ) -> str:
        """Push a stored result unless its tag exists; 'pushed' or 'exists' (a complete entry is kept)."""
        tag = result_tag(result.fingerprint)
        if self.client.has_manifest(repo, tag, push=True):
            return "exists"
        entries = [e for name in sorted(result.outputs) for e in result.outputs[name].entries]
        plans = plan_layers(entries)
        layers = _parallel(lambda plan: self._push_layer(repo, plan, mount_from), plans)
        index = [
            {"digest": layer["digest"], "objects": [k.name for k in plan.objects]}
            for layer, plan in zip(layers, plans, strict=True)
        ]
        config = canonical_json(
            {"format": CONFIG_FORMAT, "result": result.to_json(), "trust": dict(trust), "layers": index}
        )
        self._ensure_bytes(repo, config)
        manifest = _manifest(
            ARTIFACT_TYPE, CONFIG_TYPE, config, layers, {"org.mlpipe.fingerprint": result.fingerprint}
        )
        # Checked again right before the write: another runner may have finished first. The distribution API
        # has no conditional tag write (no If-None-Match on a manifest PUT), so a narrow race remains: two
        # complete entries for one fingerprint that both pass this check are both written, and the later tag
        # wins. A manifest is written only after all its blobs, so a reader always resolves the tag to one
        # whole entry whose blobs exist and verify, never a mix of the two (which may differ in content only
        # where the step is not deterministic).
        if self.client.has_manifest(repo, tag, push=True):
            return "exists"
        self.client.put_manifest(repo, tag, manifest)
        return "pushed"

    def _push_layer(self, repo: str, plan: LayerPlan, mount_from: Sequence[str]) -> dict[str, Any]:
        if plan.kind == "raw":
            key = plan.objects[0]
            digest = "sha256:" + key.sha256
            body = FileBody(self.store.object_path(_key_entry(key)), plan.size)
            self._ensure_blob(repo, digest, body, mount_from)
            return {"mediaType": RAW_MEDIA_TYPE, "digest": digest, "size": plan.size}
        # A chunk's digest is remembered by its object list, so an unchanged chunk is only HEADed, not rebuilt.
        memo = (
            self.store.root
            / "chunks"
            / f"{hashlib.sha256(' '.join(k.name for k in plan.objects).encode()).hexdigest()}.json"
        )
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            known = json.loads(memo.read_bytes())
            if self.client.has_blob(repo, known["digest"]):
                return {"mediaType": TAR_MEDIA_TYPE, "digest": known["digest"], "size": int(known["size"])}
        # Built twice, never stored: once into sha256 to learn the digest (and HEAD it), once as the upload.
        stream = TarStream((k, self.store.object_file(k.sha256, k.executable)) for k in plan.objects)
        digest, size = stream.digest(), len(stream)
        self._ensure_blob(repo, digest, stream, mount_from)
        with contextlib.suppress(OSError):
            memo.parent.mkdir(parents=True, exist_ok=True)
            staged = self.store.temp_path(".json")
            staged.write_text(json.dumps({"digest": digest, "size": size}))
            os.replace(staged, memo)
        return {"mediaType": TAR_MEDIA_TYPE, "digest": digest, "size": size}

    def _ensure_blob(
        self, repo: str, digest: str, body: FileBody | TarStream, mount_from: Sequence[str]
    ) -> None:
        self.client.ensure_blob(repo, digest, len(body), lambda: body, mount_from)

    def _ensure_bytes(self, repo: str, data: bytes) -> str:
        digest = _digest(data)
        if not self.client.has_blob(repo, digest):
            self.client.upload_bytes(repo, digest, data)
        return digest

    # -- run records -----------------------------------------------------------------------------------
    def push_run(self, repo: str, record: Mapping[str, Any], *, bundle: Path | None = None) -> str:
        """Push a run record; `bundle`, a git bundle of a dirty run's snapshot ref, goes with it as a layer."""
        git = record.get("git") or {}
        tag = run_tag(git.get("commit"), str(record["run_id"]))
        config = canonical_json(dict(record))
        self._ensure_bytes(repo, config)
        layers = []
        if bundle is not None:
            digest, size = _file_digest(bundle)
            self._ensure_blob(repo, digest, FileBody(bundle, size), ())
            layers.append({"mediaType": BUNDLE_MEDIA_TYPE, "digest": digest, "size": size})
        manifest = _manifest(
            RUN_ARTIFACT_TYPE, RUN_CONFIG_TYPE, config, layers, {"org.mlpipe.run": record["run_id"]}
        )
        self.client.put_manifest(repo, tag, manifest)  # a run's own record: later states replace earlier ones
        return tag

    def run_tags(self, repo: str, commit: str | None = None) -> Iterator[str]:
        prefix = f"run.{commit}." if commit else "run."
        return (t for t in self.client.tags(repo) if t.startswith(prefix))

    def fetch_run(self, repo: str, tag: str) -> dict[str, Any] | None:
        got = self.client.get_manifest(repo, tag)
        if got is None:
            return None
        manifest = _load_json(got[0], "manifest")
        if manifest.get("artifactType") != RUN_ARTIFACT_TYPE:
            return None
        return _load_json(self.client.blob_bytes(repo, manifest["config"]["digest"]), "run record")

    def fetch_run_bundle(self, repo: str, tag: str, dest: Path) -> bool:
        """Write the git bundle of a dirty run's code snapshot to `dest`; False when the record has none."""
        got = self.client.get_manifest(repo, tag)
        if got is None:
            return False
        manifest = _load_json(got[0], "manifest")
        layer = next(
            (d for d in manifest.get("layers") or [] if d.get("mediaType") == BUNDLE_MEDIA_TYPE), None
        )
        if manifest.get("artifactType") != RUN_ARTIFACT_TYPE or layer is None:
            return False
        temp = self.store.temp_path(".bundle")
        try:
            with open(temp, "wb") as out:
                self._download(repo, layer, out)
            os.replace(temp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        return True


class FileBody:
    """A file as an upload body read in 256 KiB blocks (a file object would be sent 16 KiB per read)."""

    def __init__(self, path: Path, size: int) -> None:
        self.path, self.size = path, size

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        with open(self.path, "rb", buffering=0) as f:
            while block := f.read(256 << 10):
                yield block


def _parallel(fn: Callable[[Any], Any], items: Sequence[Any], workers: int = 8) -> list[Any]:
    """Layers move several at once: round trips overlap, hashing and file I/O release the GIL."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(workers, len(items)), thread_name_prefix="mlpipe-layer") as pool:
        return list(pool.map(fn, items))


def fetch_manifest_digest(client: RegistryClient, repo: str, tag: str) -> str | None:
    got = client.get_manifest(repo, tag)
    return got[1] if got is not None else None


def result_config(client: RegistryClient, repo: str, tag: str) -> dict[str, Any] | None:
    """A result artifact's config (its record), or None when absent or not an mlpipe result."""
    got = client.get_manifest(repo, tag)
    if got is None:
        return None
    try:
        manifest = _load_json(got[0], "manifest")
        if manifest.get("artifactType") != ARTIFACT_TYPE:
            return None
        return _load_json(
            client.blob_bytes(repo, manifest["config"]["digest"], max_size=MAX_CONFIG), "config"
        )
    except (Refused, BlobCorrupt, KeyError, TypeError):
        return None


def _manifest(
    artifact_type: str,
    config_type: str,
    config: bytes,
    layers: list[dict[str, Any]],
    annotations: dict[str, str],
) -> bytes:
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "artifactType": artifact_type,
            "config": {"mediaType": config_type, "digest": _digest(config), "size": len(config)},
            "layers": layers,
            "annotations": annotations,
        }
    )


def _file_digest(path: Path) -> tuple[str, int]:
    hasher, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            hasher.update(block)
            size += len(block)
    return "sha256:" + hasher.hexdigest(), size


def _load_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as error:
        raise Refused(f"the {what} is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise Refused(f"the {what} is not a JSON object")
    return value
