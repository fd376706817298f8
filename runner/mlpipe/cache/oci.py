"""Step results and run records as OCI artifacts, pulled into and pushed from the local store.

A result is one manifest tagged `result-<fingerprint>`: mlpipe's artifactType, a config blob holding the
result record (fingerprint, parts, output file index, metrics, provenance, trust) and each output's name in the
artifact, and deterministic layers laid out as ORAS lays out files and directories (named.py), so `oras pull`
gives the outputs by name. Results pushed by earlier versions (format 1: digest-named objects in tar chunks,
layers.py) are still read. A run record is a manifest tagged `run.<commit>.<run_id>` whose config is the
record. The registry's tags are the index (distribution 2.8 has no referrers API).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from mlpipe import records
from mlpipe.cache.layers import (
    RAW_MEDIA_TYPE,
    TAR_MEDIA_TYPE,
    LayerError,
    ObjectKey,
    TarObjectSink,
    tar_size,
)
from mlpipe.cache.local import LocalStore, check_paths, result_json
from mlpipe.cache.named import (
    CONTENT_DIGEST,
    EMPTY_DIGEST,
    EMPTY_MEDIA_TYPE,
    FILE_MEDIA_TYPE,
    TITLE,
    TREE_MEDIA_TYPE,
    UNPACK,
    Member,
    NamedLayer,
    TreeMembers,
    TreeSink,
    check_member_paths,
    first_of_each,
    plan_named,
    titles_for,
    write_tree,
)
from mlpipe.cache.registry import MANIFEST_TYPE, BlobCorrupt, RegistryClient
from mlpipe.core.results import StepResult
from mlpipe.digest import Entry, canonical_json
from mlpipe.errors import present
from mlpipe.frozen import frozen
from mlpipe.jsonstream import Scanner
from mlpipe.treepaths import UnsafeTree

ARTIFACT_TYPE = "application/vnd.mlpipe.result.v1+json"
CONFIG_TYPE = "application/vnd.mlpipe.result.config.v1+json"
RUN_ARTIFACT_TYPE = "application/vnd.mlpipe.run.v1+json"
RUN_CONFIG_TYPE = "application/vnd.mlpipe.run.config.v1+json"
BUNDLE_MEDIA_TYPE = "application/vnd.mlpipe.git-bundle.v1"
"""A dirty run's code: `git bundle` of its `refs/mlpipe/runs/<id>`, without what the remote already has."""
FANOUT_ARTIFACT_TYPE = "application/vnd.mlpipe.fanout.v1+json"
FANOUT_CONFIG_TYPE = "application/vnd.mlpipe.fanout.config.v1+json"
"""A fan-out run's plan and its jobs' parts (issue 15), tagged `fanout.<run_id>.<name>`."""
CONFIG_FORMAT = "mlpipe.oci-result/2"
"""Format 2: ORAS-named layers (named.py). Format 1, read but no longer written: digest-named tar chunks."""
CONFIG_FORMAT_1 = "mlpipe.oci-result/1"
MAX_CONFIG = 64 << 20
"""The largest result config (or run record) read: the index of about 290,000 files, which json parses in
0.7 s and records.py checks in 2.5 s, in a few hundred MB. A descriptor declaring more is refused unread."""
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


def fanout_tag(run_id: str, name: str) -> str:
    tag = f"fanout.{run_id}.{name}"
    if not _TAG.fullmatch(tag) or not records.RUN_ID.fullmatch(run_id):
        raise ValueError(f"cannot tag {name!r} of fan-out run {run_id!r}")
    return tag


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _key_entry(key: ObjectKey) -> Entry:
    return Entry(path="", kind="file", executable=key.executable, size=0, sha256=key.sha256)


class TooLarge(Exception):
    """A result whose record is larger than any runner would read back: not pushed."""


class Refused(Exception):
    """An artifact that must not be used (wrong type, escaping paths, corrupt): a miss with a warning."""


@frozen
class _Layer:
    descriptor: records.Descriptor
    objects: tuple[ObjectKey, ...]
    sizes: dict[ObjectKey, int]
    """Every object of the layer and its size, as the result's file index declares it."""
    members: Iterable[Member] = ()
    """A tree layer's members, in order (TreeMembers: made as they are iterated)."""
    index: int = -1
    """A format-2 file layer's entry among the result's (named.entry_bases)."""


@frozen
class ResultEntry:
    """A result artifact whose every field passed its check: what `fetch` may act on."""

    result: StepResult
    trust: dict[str, Any]
    layers: tuple[_Layer, ...]
    first: bytearray | None = None
    """Format 2: a byte per entry of the result, 1 for the first holding its object (named.first_of_each)."""


def read_result_entry(client: RegistryClient, repo: str, tag: str, manifest_bytes: bytes) -> ResultEntry:
    """Check a result artifact's manifest, download its config (refused unread when its descriptor declares
    more than MAX_CONFIG) and check every field of it. Raises Refused, or CacheError when the registry fails."""
    try:
        manifest = records.oci_manifest(manifest_bytes)
        if manifest.artifact_type != ARTIFACT_TYPE:
            raise Refused(f"{repo}:{tag} is not an mlpipe result")
        config = manifest.config
        if config.media_type != CONFIG_TYPE:
            raise Refused(f"its config has media type {config.media_type!r}, not {CONFIG_TYPE!r}")
        if config.size > MAX_CONFIG:
            raise Refused(f"its config declares {config.size} bytes, more than the {MAX_CONFIG} mlpipe reads")
        import tempfile

        # Into a temp file, read back as a stream: the config of 100,000 files is about 13 MB (issue 18).
        with tempfile.TemporaryFile() as temp:
            size = client.download_blob(repo, config.digest, temp, max_size=config.size)
            if size != config.size:
                raise Refused(f"its config is {size} bytes, not the {config.size} its descriptor declares")
            temp.seek(0)
            fields, result = _read_config_from(temp.read)
        return _check_entry(fields, result, manifest, tag)
    except records.BadRecord as error:
        raise Refused(str(error)) from None
    except BlobCorrupt as error:
        raise Refused(str(error)) from None


def _config(result: StepResult, trust: Mapping[str, Any], titles: Mapping[str, str]) -> bytes:
    return b"".join(_config_pieces(result, trust, titles))


def _config_pieces(
    result: StepResult, trust: Mapping[str, Any], titles: Mapping[str, str]
) -> Iterator[bytes]:
    """canonical_json of the result's config in pieces, made without a dict per entry (local.result_json): the
    same bytes."""
    yield b'{"format":' + canonical_json(CONFIG_FORMAT) + b',"result":'
    yield from result_json(result, canonical_json)
    yield b',"titles":' + canonical_json(dict(titles)) + b',"trust":' + canonical_json(dict(trust)) + b"}"


def _read_config(data: bytes) -> tuple[dict[str, Any], StepResult | None]:
    return _read_config_from(io.BytesIO(data).read)


def _read_config_from(read: Callable[[int], bytes]) -> tuple[dict[str, Any], StepResult | None]:
    """A result config's fields, its result read as a stream (StepResult.read: no dict per entry); a config of
    another format is refused before its result is read (keys are sorted: `format` comes first)."""
    scanner = Scanner(read, "config")
    config: dict[str, Any] = {}
    result = None
    for key in scanner.members("config"):
        if key == "result" and config.get("format") in (CONFIG_FORMAT, CONFIG_FORMAT_1):
            result = StepResult.read(scanner)
            continue
        config[key] = scanner.value()
        if key == "format":
            _check_format(config)
    scanner.end()
    return config, result


def _check_format(config: Mapping[str, Any]) -> None:
    if config.get("format") not in (CONFIG_FORMAT, CONFIG_FORMAT_1):
        raise Refused(f"unknown result format {records.shown(config.get('format'))}")


def _check_entry(
    config: dict[str, Any], result: StepResult | None, manifest: records.OciManifest, tag: str
) -> ResultEntry:
    _check_format(config)
    if result is None:
        result = StepResult.from_json(records.field(config, "result", "config"))
    if result_tag(result.fingerprint) != tag:
        raise Refused(f"the artifact holds fingerprint {result.fingerprint[:12]}, not {tag[7:19]}")
    if config["format"] == CONFIG_FORMAT:
        return _check_named(config, manifest, result)
    sizes = _object_sizes(result)
    descriptors: dict[str, records.Descriptor] = {}
    for d in manifest.layers:
        if descriptors.setdefault(d.digest, d) is not d:
            raise Refused(f"layer {d.digest[:19]} is in the manifest twice")
    index = records.layer_index(records.field(config, "layers", "config"), "config.layers")
    if {digest for digest, _ in index} != set(descriptors):
        raise Refused("the manifest's layers are not the layers its config indexes")
    return ResultEntry(
        result=result,
        trust=records.trust(config.get("trust")),
        layers=tuple(_layer(descriptors[digest], names, sizes) for digest, names in index),
    )


def _object_sizes(result: StepResult) -> dict[ObjectKey, int]:
    sizes: dict[ObjectKey, int] = {}
    for output in result.outputs.values():
        for e in output.entries:
            key = ObjectKey(e.sha256, e.executable)
            if sizes.setdefault(key, e.size) != e.size:
                raise Refused(f"object {e.sha256[:12]} is declared with two sizes")
    return sizes


def _check_named(config: dict[str, Any], manifest: records.OciManifest, result: StepResult) -> ResultEntry:
    """A format-2 entry: the layers are the ones the record and its titles make, in that order. Nothing is
    held per file but a byte (`first_of_each`): trees are planned as indexes into the packed entries."""
    titles = records.obj(records.field(config, "titles", "config"), "config.titles")
    if set(titles) != set(result.outputs) or not all(isinstance(t, str) for t in titles.values()):
        raise Refused("config.titles does not name each output once")
    try:
        if titles_for(result.outputs, titles) != titles:
            raise Refused("config.titles puts two outputs at one path, or one under another")
        plans = plan_named(result.outputs, titles)
        bounds = check_member_paths(plans)
    except UnsafeTree as error:
        raise Refused(f"config.titles: {error}") from None
    try:
        first = first_of_each(result.outputs)
    except LayerError as error:
        raise Refused(str(error)) from None
    if not plans:
        if [(d.media_type, d.digest) for d in manifest.layers] != [(EMPTY_MEDIA_TYPE, EMPTY_DIGEST)]:
            raise Refused("a result without files must have the empty descriptor as its one layer")
        return ResultEntry(result=result, trust=records.trust(config.get("trust")), layers=())
    if len(manifest.layers) != len(plans):
        raise Refused(f"the manifest has {len(manifest.layers)} layers; the result's files make {len(plans)}")
    return ResultEntry(
        result=result,
        trust=records.trust(config.get("trust")),
        layers=tuple(_named(d, plan, bounds) for d, plan in zip(manifest.layers, plans, strict=True)),
        first=first,
    )


def _named(descriptor: records.Descriptor, plan: NamedLayer, bounds: Mapping[str, int]) -> _Layer:
    """`bounds`: each tree layer's largest size (named.max_tree_size)."""
    where = f"layer {plan.title[:80]!r}"
    if plan.kind == "file":
        key = present(plan.key, "a file layer without its object")
        if (descriptor.media_type, descriptor.digest, descriptor.size) != (
            FILE_MEDIA_TYPE,
            "sha256:" + key.sha256,
            plan.size,
        ):
            raise Refused(f"{where} is not the file its record declares")
        return _Layer(descriptor, (key,), {key: plan.size}, index=plan.index)
    if descriptor.media_type != TREE_MEDIA_TYPE:
        raise Refused(f"{where} has media type {descriptor.media_type!r}, not {TREE_MEDIA_TYPE!r}")
    if descriptor.size > bounds[plan.title]:
        raise Refused(f"{where} declares {descriptor.size} bytes, more than its files can make")
    return _Layer(descriptor, (), {}, plan.members)


def _layer(descriptor: records.Descriptor, names: list[str], sizes: Mapping[ObjectKey, int]) -> _Layer:
    """A layer whose media type, digest and size are what its objects make: nothing else can be downloaded."""
    where = f"layer {descriptor.digest[:19]}"
    keys = tuple(ObjectKey.parse(n) for n in names)
    unknown = next((k for k in keys if k not in sizes), None)
    if unknown is not None:
        raise Refused(f"{where} lists object {unknown.sha256[:12]}, which no output of the result holds")
    layer_sizes = {k: sizes[k] for k in keys}
    if descriptor.media_type == RAW_MEDIA_TYPE:
        if len(keys) != 1 or "sha256:" + keys[0].sha256 != descriptor.digest:
            raise Refused(f"raw {where} must hold exactly the object its digest names")
        expected = sizes[keys[0]]
    elif descriptor.media_type == TAR_MEDIA_TYPE:
        expected = tar_size(layer_sizes.values())
    else:
        raise Refused(f"{where} has unknown media type {descriptor.media_type!r}")
    if descriptor.size != expected:
        raise Refused(f"{where} declares {descriptor.size} bytes; its objects make {expected}")
    return _Layer(descriptor, keys, layer_sizes)


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
        entry = self.read_entry(repo, fingerprint, accept)
        return None if entry is None else self.pull_entry(repo, entry)

    def read_entry(
        self, repo: str, fingerprint: str, accept: Callable[[Mapping[str, Any]], bool] = lambda t: True
    ) -> ResultEntry | None:
        """The result artifact under this fingerprint, its manifest and config checked and its trust accepted,
        without its layers: its record is what a plan needs. None when absent or not accepted.

        Raises Refused for an artifact that is there but unusable, CacheError when the registry fails.
        """
        tag = result_tag(fingerprint)
        try:
            got = self.client.get_manifest(repo, tag)
        except BlobCorrupt as error:  # larger than any manifest mlpipe writes
            raise Refused(str(error)) from None
        if got is None:
            return None
        entry = read_result_entry(self.client, repo, tag, got[0])
        return entry if accept(entry.trust) else None

    def pull_entry(self, repo: str, entry: ResultEntry) -> StepResult:
        """Download what the local store lacks of a checked entry's objects (each verified against its digest),
        then commit the result there; the stored result.

        Raises Refused for layers that are unusable, CacheError when the registry fails.
        """
        result = entry.result
        if entry.first is None:
            _parallel(lambda item: self._pull_layer(repo, item[0], item[1]), self._chunk_work(entry))
        else:
            self._pull_named(repo, entry.layers, bytearray(entry.first))
        for output in result.outputs.values():
            try:
                check_paths(output, self._link_target)
            except (UnsafeTree, OSError) as error:
                raise Refused(str(error)) from None
        return self.store.commit_result(result).result

    def _pull_named(self, repo: str, layers: Sequence[_Layer], want: bytearray) -> None:
        """Format 2: `want` (a byte per entry of the result, 1 for the first holding its object) loses each
        object the store has; the layers holding one still wanted are downloaded, each clearing its own."""
        object_file = self.store.object_file
        work: list[tuple[_Layer, Sequence[ObjectKey]]] = []
        for layer in layers:
            if isinstance(layer.members, TreeMembers):
                wanted = False
                for index, sha256, executable in layer.members.objects():
                    if want[index] and os.path.exists(object_file(sha256, executable)):
                        want[index] = 0
                    wanted = wanted or bool(want[index])
                if wanted:
                    work.append((layer, ()))
            elif want[layer.index]:
                if os.path.exists(object_file(layer.objects[0].sha256, layer.objects[0].executable)):
                    want[layer.index] = 0
                else:
                    work.append((layer, layer.objects))

        def pull(layer: _Layer, keys: Sequence[ObjectKey]) -> None:
            self._pull_layer(repo, layer, keys, want)
            if layer.index >= 0:
                want[layer.index] = 0

        _parallel(lambda item: pull(*item), work)
        if left := want.count(1):
            raise Refused(f"{left} object(s) of the result were not written by its layers")

    def _chunk_work(self, entry: ResultEntry) -> list[tuple[_Layer, list[ObjectKey]]]:
        """Format 1 (tar chunks of objects named by digest): what each layer gives of what the store lacks."""
        missing = {
            ObjectKey(e.sha256, e.executable)
            for m in entry.result.outputs.values()
            for e in m.entries
            if not os.path.exists(self.store.object_file(e.sha256, e.executable))
        }
        work = []
        for layer in entry.layers:
            # A raw layer is the content: it serves the object with either exec bit.
            wanted = [
                k
                for k in missing
                if (
                    k.sha256 == layer.objects[0].sha256
                    if layer.descriptor.media_type == RAW_MEDIA_TYPE
                    else k in layer.sizes
                )
            ]
            if wanted:
                work.append((layer, wanted))
                missing.difference_update(wanted)
        if missing:
            raise Refused(f"{len(missing)} object(s) are in no layer of the artifact")
        return work

    def _link_target(self, entry: Entry) -> str:
        with open(self.store.object_file(entry.sha256, entry.executable), "rb") as f:
            return records.link_target(f.read(records.MAX_LINK_BYTES + 1), entry.path)

    def _pull_layer(
        self, repo: str, layer: _Layer, wanted: Sequence[ObjectKey], want: bytearray | None = None
    ) -> None:
        """`wanted`: the objects a raw or format-1 layer gives; `want`: the entries a tree layer gives."""
        if layer.descriptor.media_type in (TAR_MEDIA_TYPE, TREE_MEDIA_TYPE):
            self._pull_tar(repo, layer, wanted, want)
            return
        temp = self.store.temp_path(".layer")
        try:
            with open(temp, "wb") as out:
                self._download(repo, layer.descriptor, out)
            for i, key in enumerate(wanted):
                self._install(temp, key, copy=i < len(wanted) - 1)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    def _pull_tar(
        self, repo: str, layer: _Layer, wanted: Sequence[ObjectKey], want: bytearray | None = None
    ) -> None:
        """Streamed straight into the store: no temp copy of the layer, no tarfile per member. A retried
        download starts a fresh sink for what is still wanted (objects already committed were checked)."""
        sinks: list[TarObjectSink | TreeSink] = []

        def fresh() -> Callable[[bytes], int]:
            last = sinks[-1] if sinks else None
            if last is not None:
                last.close()
            new_object = lambda k: self.store.new_object(k.sha256, k.executable)
            if layer.descriptor.media_type == TREE_MEDIA_TYPE:  # `want` is cleared as objects are committed
                sinks.append(TreeSink(layer.members, present(want, "a tree without its entries"), new_object))
            else:
                left = last.wanted if isinstance(last, TarObjectSink) else set(wanted)
                sinks.append(TarObjectSink(left, new_object, layer.sizes))
            return sinks[-1].write

        try:
            self.client.download_blob_to(repo, layer.descriptor.digest, fresh, max_size=layer.descriptor.size)
            sinks[-1].finish()
        except (LayerError, BlobCorrupt) as error:
            raise Refused(str(error)) from None
        finally:
            if sinks:
                sinks[-1].close()

    def _download(self, repo: str, descriptor: records.Descriptor, out: Any) -> None:
        try:
            self.client.download_blob(repo, descriptor.digest, out, max_size=descriptor.size)
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

    # -- push ------------------------------------------------------------------------------------------
    def push(
        self, repo: str, result: StepResult, trust: Mapping[str, Any], *, mount_from: Sequence[str] = ()
    ) -> str:
        """Push a stored result unless its tag exists; 'pushed' or 'exists' (a complete entry is kept)."""
        titles = titles_for(result.outputs, result.provenance.get("paths") or {})
        # Made once (the record of 20,000 files takes 0.1 s to encode), into a temp file hashed on the way (that
        # of 100,000 files is about 13 MB); refused unread by every runner when larger than MAX_CONFIG, so such
        # a result shares nothing.
        config = self.store.temp_path(".json")
        try:
            with open(config, "wb") as out:
                digest, size = _write_hashed(_config_pieces(result, trust, titles), out)
            if size > MAX_CONFIG:
                raise TooLarge(
                    f"the record of {result.fingerprint[:12]} is {size} bytes, more than the "
                    f"{MAX_CONFIG} a runner reads from a registry (fewer files per output would fit)"
                )
            return self._push_result(repo, result, titles, (digest, FileBody(config, size)), mount_from)
        finally:
            with contextlib.suppress(FileNotFoundError):
                config.unlink()

    def _push_result(
        self,
        repo: str,
        result: StepResult,
        titles: Mapping[str, str],
        config: tuple[str, FileBody],
        mount_from: Sequence[str],
    ) -> str:
        tag = result_tag(result.fingerprint)
        if self.client.has_manifest(repo, tag, push=True):
            return "exists"
        plans = plan_named(result.outputs, titles)
        # Each blob once: several paths may hold one content, each is a layer of its own (named by its path).
        unique = {(p.kind, p.key if p.kind == "file" else p.title): p for p in plans}
        pushed = dict(
            zip(
                unique,
                _parallel(lambda p: self._push_named(repo, p, mount_from), list(unique.values())),
                strict=True,
            )
        )
        layers = []
        for plan in plans:
            layer = dict(pushed[(plan.kind, plan.key if plan.kind == "file" else plan.title)])
            layer["annotations"] = {TITLE: plan.title, **layer.get("annotations", {})}
            layers.append(layer)
        layers = layers or empty_layer(self.client, repo)
        digest, body = config
        self._ensure_blob(repo, digest, body, ())
        manifest = _manifest(ARTIFACT_TYPE, CONFIG_TYPE, (digest, len(body)), layers, _annotations(result))
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

    def _push_named(self, repo: str, plan: NamedLayer, mount_from: Sequence[str]) -> dict[str, Any]:
        if plan.kind == "file":
            key = present(plan.key, "a file layer without its object")
            digest = "sha256:" + key.sha256
            body = FileBody(self.store.object_path(_key_entry(key)), plan.size)
            self._ensure_blob(repo, digest, body, mount_from)
            return {"mediaType": FILE_MEDIA_TYPE, "digest": digest, "size": plan.size}
        # A tree's digests are remembered by its members, so an unchanged tree is only HEADed, not rebuilt.
        memo = self.store.root / "chunks" / f"{_members_key(plan.members)}.json"
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            known = json.loads(memo.read_bytes())
            if self.client.has_blob(repo, known["digest"]):
                return _tree_descriptor(known["digest"], int(known["size"]), known["tar"])
        temp = self.store.temp_path(".layer")
        try:
            with open(temp, "wb") as out:
                tree = write_tree(plan.members, lambda k: self.store.object_file(k.sha256, k.executable), out)
            digest, size, tar = tree.digest, tree.size, tree.tar_digest
            self._ensure_blob(repo, digest, FileBody(temp, size), mount_from)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        with contextlib.suppress(OSError):
            memo.parent.mkdir(parents=True, exist_ok=True)
            staged = self.store.temp_path(".json")
            staged.write_text(json.dumps({"digest": digest, "size": size, "tar": tar}))
            os.replace(staged, memo)
        return _tree_descriptor(digest, size, tar)

    def _ensure_blob(self, repo: str, digest: str, body: FileBody, mount_from: Sequence[str]) -> None:
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
        # Uploaded without asking first: a record holds its run id and times, so no registry has it yet (and a
        # second upload of the same bytes is harmless). One round trip less at the end of every pushing run.
        self.client.upload_bytes(repo, _digest(config), config)
        layers = []
        if bundle is not None:
            digest, size = _file_digest(bundle)
            self._ensure_blob(repo, digest, FileBody(bundle, size), ())
            layers.append({"mediaType": BUNDLE_MEDIA_TYPE, "digest": digest, "size": size})
        manifest = _manifest(
            RUN_ARTIFACT_TYPE,
            RUN_CONFIG_TYPE,
            config,
            layers or empty_layer(self.client, repo),
            {"org.mlpipe.run": record["run_id"]},
        )
        self.client.put_manifest(repo, tag, manifest)  # a run's own record: later states replace earlier ones
        return tag

    # -- fan-out documents -----------------------------------------------------------------------------
    def push_document(self, repo: str, tag: str, document: Mapping[str, Any]) -> None:
        """A fan-out plan or part: a JSON document as the config of a manifest whose one layer is the empty
        descriptor (OCI 1.1, as every record without files)."""
        config = canonical_json(dict(document))
        self._ensure_bytes(repo, config)
        manifest = _manifest(
            FANOUT_ARTIFACT_TYPE, FANOUT_CONFIG_TYPE, config, empty_layer(self.client, repo), {}
        )
        self.client.put_manifest(repo, tag, manifest)  # a job's rerun replaces its earlier part

    def fetch_document(self, repo: str, tag: str) -> dict[str, Any] | None:
        """A fan-out document; None when absent, not one, or malformed (the caller checks its content)."""
        return self._config_of(repo, tag, FANOUT_ARTIFACT_TYPE, "fan-out document")

    def _config_of(self, repo: str, tag: str, artifact_type: str, what: str) -> dict[str, Any] | None:
        """The JSON config of the manifest `tag` when it is an `artifact_type`; None when absent or malformed."""
        got = self.client.get_manifest(repo, tag)
        if got is None:
            return None
        try:
            manifest = records.oci_manifest(got[0])
            config = manifest.config
            if manifest.artifact_type != artifact_type or config.size > MAX_CONFIG:
                return None
            return records.load_json(self.client.blob_bytes(repo, config.digest, max_size=config.size), what)
        except (records.BadRecord, BlobCorrupt):
            return None

    def run_tags(self, repo: str, commit: str | None = None) -> Iterator[str]:
        prefix = f"run.{commit}." if commit else "run."
        return (t for t in self.client.tags(repo) if t.startswith(prefix))

    def fetch_run(self, repo: str, tag: str) -> dict[str, Any] | None:
        """A pushed run record; None when absent, not a run record, or malformed (too large, too deep)."""
        record = self._config_of(repo, tag, RUN_ARTIFACT_TYPE, "run record")
        if record is None:
            return None
        return (
            record
            if isinstance(record.get("run_id"), str) and records.RUN_ID.fullmatch(record["run_id"])
            else None
        )

    def fetch_run_bundle(self, repo: str, tag: str, dest: Path) -> bool:
        """Write the git bundle of a dirty run's code snapshot to `dest`; False when the record has none."""
        got = self.client.get_manifest(repo, tag)
        if got is None:
            return False
        try:
            manifest = records.oci_manifest(got[0])
        except records.BadRecord:
            return False  # not a run record mlpipe wrote: no bundle to give
        layer = next((d for d in manifest.layers if d.media_type == BUNDLE_MEDIA_TYPE), None)
        if manifest.artifact_type != RUN_ARTIFACT_TYPE or layer is None:
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


def _members_key(members: Iterable[Member]) -> str:
    """sha256 of canonical_json([[path, kind, object name], ...]) of a tree's members, made 1,024 at a time (the
    same bytes, without a list per member all at once)."""
    h = hashlib.sha256(b"[")
    it, start = iter(members), True
    while chunk := [[m.path, m.kind, m.key and m.key.name] for m in itertools.islice(it, 1024)]:
        h.update((b"" if start else b",") + canonical_json(chunk)[1:-1])
        start = False
    h.update(b"]")
    return h.hexdigest()


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
    """A result artifact's config (its record, checked), or None when absent or not a usable mlpipe result."""
    got = client.get_manifest(repo, tag)
    if got is None:
        return None
    try:
        entry = read_result_entry(client, repo, tag, got[0])
    except Refused:
        return None
    return {"format": CONFIG_FORMAT, "result": entry.result.to_json(), "trust": entry.trust}


def _manifest(
    artifact_type: str,
    config_type: str,
    config: bytes | tuple[str, int],
    layers: list[dict[str, Any]],
    annotations: dict[str, str],
) -> bytes:
    """`config`: its bytes, or its digest and size."""
    digest, size = (_digest(config), len(config)) if isinstance(config, bytes) else config
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "artifactType": artifact_type,
            "config": {"mediaType": config_type, "digest": digest, "size": size},
            "layers": layers,
            "annotations": annotations,
        }
    )


def empty_layer(client: RegistryClient, repo: str) -> list[dict[str, Any]]:
    """The layers of an artifact without blobs, as OCI 1.1 recommends: the empty descriptor (`{}`)."""
    if not client.has_blob(repo, EMPTY_DIGEST):
        client.upload_bytes(repo, EMPTY_DIGEST, b"{}")
    return [{"mediaType": EMPTY_MEDIA_TYPE, "digest": EMPTY_DIGEST, "size": 2}]


def _tree_descriptor(digest: str, size: int, tar: str) -> dict[str, Any]:
    """A tree layer as `oras push DIR` describes a directory: unpacked on pull, its tar's digest given."""
    return {
        "mediaType": TREE_MEDIA_TYPE,
        "digest": digest,
        "size": size,
        "annotations": {UNPACK: "true", CONTENT_DIGEST: tar},
    }


def _annotations(result: StepResult) -> dict[str, str]:
    """The manifest's: the fingerprint, and the OCI keys that link a package to its repository and commit."""
    prov = result.provenance
    found = {
        "org.opencontainers.image.created": prov.get("created_at"),
        "org.opencontainers.image.source": prov.get("source"),
        "org.opencontainers.image.revision": prov.get("commit"),
    }
    return {"org.mlpipe.fingerprint": result.fingerprint, **{k: v for k, v in found.items() if v}}


def _write_hashed(pieces: Iterable[bytes], out: BinaryIO) -> tuple[str, int]:
    hasher, size = hashlib.sha256(), 0
    for piece in pieces:
        hasher.update(piece)
        out.write(piece)
        size += len(piece)
    return "sha256:" + hasher.hexdigest(), size


def _file_digest(path: Path) -> tuple[str, int]:
    hasher, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            hasher.update(block)
            size += len(block)
    return "sha256:" + hasher.hexdigest(), size


def _load_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        return records.load_json(data, what)
    except records.BadRecord as error:
        raise Refused(str(error)) from None
