"""Hostile registry entries: crafted result artifacts pushed over plain HTTP to the real distribution registry
under the tag a clone's step looks up. Each must be a miss with one warning naming the tag: the step runs and
produces its own result, nothing outside the store is read, linked, changed or deleted, a second run has no
traceback either, and `mlpipe fsck` finds the store whole. Provenance is only informative: odd fields are
dropped without a warning and the entry is reused, never printed.

One crafted project per module (run once without a cache to learn its fingerprint and its genuine entry); each
variant gets its own registry repository and a fresh `.mlpipe`.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import shutil
import tarfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fault_tally
import pytest
from fsck_testing import assert_store_whole

from mlpipe.cache.layers import RAW_MEDIA_TYPE, TAR_MEDIA_TYPE, ObjectKey, write_tar
from mlpipe.cache.local import LocalStore
from mlpipe.cache.oci import CONFIG_TYPE, MAX_CONFIG, OciCache, result_tag
from mlpipe.cache.registry import RegistryClient
from mlpipe_testing import Project, make_repo

PIPELINE = """\
name: hostile
steps:
  a:
    code: a
    run: sh a.sh ${{ outputs.out }} ${{ outputs.scores }}
    outputs:
      out: {}
      scores: {kind: metrics}
"""
A_SH = """\
set -e
mkdir -p "$1/sub"
printf 'one\\n' > "$1/f.txt"
printf 'two\\n' > "$1/sub/g.txt"
printf '#!/bin/sh\\n' > "$1/run.sh"
chmod +x "$1/run.sh"
ln -s f.txt "$1/link"
printf '{"acc": 0.5}' > "$2"
"""
FILES = {".gitignore": ".mlpipe/\n", "mlpipe.yaml": PIPELINE, "a/a.sh": A_SH}
SENTINEL = b"sentinel: must never change\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Origin:
    project: Project
    root: Path
    outside: Path
    fingerprint: str
    outputs: dict[str, str]
    """Step a's output digests as it produces them: what every run here must record."""
    manifest: dict[str, Any]
    config: dict[str, Any]
    blobs: dict[str, bytes]


@dataclass
class Artifact:
    """A result artifact to push as it is: `config` as JSON (NaN allowed) unless it is bytes already."""

    manifest: dict[str, Any]
    config: dict[str, Any] | bytes
    blobs: dict[str, bytes]
    config_descriptor: dict[str, Any] = field(default_factory=dict)
    """Overrides of the manifest's config descriptor, merged after the true one is computed."""


@dataclass
class Context:
    origin: Origin
    work: Path

    @property
    def outside(self) -> Path:
        return self.origin.outside


_ORIGIN: dict[str, Origin] = {}


@pytest.fixture
def origin(registry, tmp_path_factory) -> Origin:
    """Made once per module, by the first test, under that test's clean environment."""
    if "origin" not in _ORIGIN:
        _ORIGIN["origin"] = make_origin(registry, tmp_path_factory.mktemp("hostile"))
    return _ORIGIN["origin"]


def make_origin(registry, root: Path) -> Origin:
    project = Project(make_repo(root / "project", FILES))
    project.run("ci-run").assert_success()
    step = project.record()["steps"]["a"]
    store = LocalStore(project.root / ".mlpipe" / "cache")
    result = store.lookup(step["fingerprint"])
    assert result is not None
    client = RegistryClient(registry.host)
    repo = f"t/hostile-genuine-{uuid.uuid4().hex[:8]}"
    OciCache(client, store).push(repo, result, {"protected": True})
    got = client.get_manifest(repo, result_tag(result.fingerprint))
    assert got is not None
    manifest = json.loads(got[0])
    config = json.loads(client.blob_bytes(repo, manifest["config"]["digest"]))
    blobs = {d["digest"]: client.blob_bytes(repo, d["digest"]) for d in manifest["layers"]}
    shutil.rmtree(project.root / ".mlpipe")
    outside = root / "outside"
    outside.mkdir()
    (outside / "sentinel.txt").write_bytes(SENTINEL)
    (outside / "sentinel.x").write_bytes(SENTINEL)
    (outside / "sentinel.x").chmod(0o755)
    return Origin(project, root, outside, result.fingerprint, step["outputs"], manifest, config, blobs)


def push_artifact(client: RegistryClient, repo: str, tag: str, artifact: Artifact) -> None:
    config = artifact.config
    if not isinstance(config, bytes):
        config = json.dumps(config).encode("utf-8", "surrogatepass")
    client.upload_bytes(repo, "sha256:" + sha(config), config)
    for digest, data in artifact.blobs.items():
        client.upload_bytes(repo, digest, data)
    manifest = copy.deepcopy(artifact.manifest)
    manifest["config"] = {
        "mediaType": CONFIG_TYPE,
        "digest": "sha256:" + sha(config),
        "size": len(config),
        **artifact.config_descriptor,
    }
    client.put_manifest(repo, tag, json.dumps(manifest).encode())


def snapshot(origin: Origin) -> dict[str, tuple[Any, ...]]:
    """Every file outside the store (the module's temp dir but the workspace's .mlpipe and .git): content,
    inode, mode, link count, mtime."""
    seen: dict[str, tuple[Any, ...]] = {}
    skip = {origin.project.root / ".mlpipe", origin.project.root / ".git"}
    for top, dirs, files in os.walk(origin.root):
        dirs[:] = [d for d in dirs if Path(top, d) not in skip]
        for name in files:
            path = Path(top, name)
            st = path.lstat()
            content = os.readlink(path) if path.is_symlink() else path.read_bytes()
            seen[str(path.relative_to(origin.root))] = (
                content,
                st.st_ino,
                st.st_mode,
                st.st_nlink,
                st.st_mtime_ns,
            )
    return seen


# -- building crafted artifacts ----------------------------------------------------------------------------------
def entries(art: Artifact, output: str = "out") -> list[dict[str, Any]]:
    assert isinstance(art.config, dict)
    return art.config["result"]["outputs"][output]["entries"]


def entry(art: Artifact, path: str, output: str = "out") -> dict[str, Any]:
    return next(e for e in entries(art, output) if e["path"] == path)


def result(art: Artifact) -> dict[str, Any]:
    assert isinstance(art.config, dict)
    return art.config["result"]


def set_field(path: str, key: str, value: Any) -> Callable[[Artifact, Context], None]:
    def craft(art: Artifact, ctx: Context) -> None:
        entry(art, path)[key] = value

    return craft


def set_result(key: str, value: Any) -> Callable[[Artifact, Context], None]:
    def craft(art: Artifact, ctx: Context) -> None:
        result(art)[key] = value

    return craft


def add_entry(path: str, like: str = "f.txt") -> Callable[[Artifact, Context], None]:
    def craft(art: Artifact, ctx: Context) -> None:
        entries(art).append({**entry(art, like), "path": path})

    return craft


def replace_objects(
    art: Artifact,
    ctx: Context,
    out: list[dict[str, Any]],
    objects: dict[ObjectKey, bytes],
    tar: bytes | None = None,
) -> None:
    """Output `out` becomes these entries, and one tar layer holds `objects` (or is `tar`, as crafted)."""
    result(art)["outputs"]["out"]["entries"] = out
    scores = entries(art, "scores")[0]
    objects = {**objects, ObjectKey(scores["sha256"], False): _object(ctx.origin, scores["sha256"])}
    if tar is None:
        files = []
        for key, content in objects.items():
            path = ctx.work / key.name
            path.write_bytes(content)
            files.append((key, path))
        buffer = io.BytesIO()
        write_tar(files, buffer)
        tar = buffer.getvalue()
    set_layers(art, [(TAR_MEDIA_TYPE, tar, [k.name for k in objects])])


def set_layers(art: Artifact, layers: list[tuple[str, bytes, list[str]]]) -> None:
    assert isinstance(art.config, dict)
    art.blobs = {"sha256:" + sha(data): data for _, data, _ in layers}
    art.manifest["layers"] = [
        {"mediaType": media, "digest": "sha256:" + sha(data), "size": len(data)} for media, data, _ in layers
    ]
    art.config["layers"] = [{"digest": "sha256:" + sha(data), "objects": names} for _, data, names in layers]


def _object(origin: Origin, sha256: str) -> bytes:
    """An object of the genuine entry, out of its tar layers."""
    for data in origin.blobs.values():
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                if member.name.removesuffix(".x") == sha256:
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    return extracted.read()
    raise AssertionError(f"no object {sha256}")


def file_entry(path: str, content: bytes) -> dict[str, Any]:
    return {"path": path, "kind": "file", "x": False, "size": len(content), "sha256": sha(content)}


def link_entry(path: str, target: str) -> dict[str, Any]:
    data = target.encode("utf-8", "surrogateescape")
    return {"path": path, "kind": "link", "x": False, "size": len(data), "sha256": sha(data)}


def links(*pairs: tuple[str, str]) -> Callable[[Artifact, Context], None]:
    """Output `out` holds a file and these links (path, target), their objects in a tar layer."""

    def craft(art: Artifact, ctx: Context) -> None:
        out = [file_entry("sub/file", b"x\n"), *(link_entry(p, t) for p, t in pairs)]
        objects = {ObjectKey(sha(b"x\n"), False): b"x\n"}
        objects.update(
            {
                ObjectKey(sha(t.encode("utf-8", "surrogateescape")), False): t.encode(
                    "utf-8", "surrogateescape"
                )
                for _, t in pairs
            }
        )
        replace_objects(art, ctx, out, objects)

    return craft


def link_not_utf8(art: Artifact, ctx: Context) -> None:
    target = b"\xff\xfe"
    out = [{"path": "l", "kind": "link", "x": False, "size": 2, "sha256": sha(target)}]
    replace_objects(art, ctx, out, {ObjectKey(sha(target), False): target})


def tar_member(kind: bytes, linkname: str) -> Callable[[Artifact, Context], None]:
    """An empty file whose tar member is a symbolic or hard link instead (same tar size as the real one)."""

    def craft(art: Artifact, ctx: Context) -> None:
        key = ObjectKey(sha(b""), False)
        scores = entries(art, "scores")[0]
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            info = tarfile.TarInfo(key.name)
            info.type, info.linkname = kind, linkname
            tar.addfile(info)
            content = _object(ctx.origin, scores["sha256"])
            info = tarfile.TarInfo(scores["sha256"])
            info.size, info.mode = len(content), 0o444
            tar.addfile(info, io.BytesIO(content))
        replace_objects(art, ctx, [file_entry("e", b"")], {key: b""}, tar=buffer.getvalue())

    return craft


def tar_member_other_object(art: Artifact, ctx: Context) -> None:
    """The layer holds an object of the right size under another (valid) name."""
    content = b"one\n"
    other = b"evi\n"
    files = []
    for name, data in ((ObjectKey(sha(other), False), other),):
        (ctx.work / "o").write_bytes(data)
        files.append((name, ctx.work / "o"))
    scores = entries(art, "scores")[0]
    (ctx.work / "s").write_bytes(_object(ctx.origin, scores["sha256"]))
    files.append((ObjectKey(scores["sha256"], False), ctx.work / "s"))
    buffer = io.BytesIO()
    write_tar(files, buffer)
    replace_objects(
        art,
        ctx,
        [file_entry("f.txt", content)],
        {ObjectKey(sha(content), False): content},
        tar=buffer.getvalue(),
    )


def tar_member_wrong_content(art: Artifact, ctx: Context) -> None:
    """The member has the object's name and size, but other bytes."""
    content = b"one\n"
    key = ObjectKey(sha(content), False)
    (ctx.work / "evil").write_bytes(b"evi\n")
    scores = entries(art, "scores")[0]
    (ctx.work / "s").write_bytes(_object(ctx.origin, scores["sha256"]))
    buffer = io.BytesIO()
    write_tar([(key, ctx.work / "evil"), (ObjectKey(scores["sha256"], False), ctx.work / "s")], buffer)
    replace_objects(art, ctx, [file_entry("f.txt", content)], {key: content}, tar=buffer.getvalue())


def tar_truncated(art: Artifact, ctx: Context) -> None:
    """A layer cut short whose descriptor still declares the whole tar's size."""
    replace_objects(
        art,
        ctx,
        entries(art),
        {ObjectKey(e["sha256"], e["x"]): _object(ctx.origin, e["sha256"]) for e in entries(art)},
    )
    layer = art.manifest["layers"][0]
    full = art.blobs.pop(layer["digest"])
    cut = full[: len(full) // 3]
    art.blobs["sha256:" + sha(cut)] = cut
    layer["digest"] = "sha256:" + sha(cut)  # the size stays the whole tar's
    assert isinstance(art.config, dict)
    art.config["layers"][0]["digest"] = layer["digest"]


def raw_layer_other_object(art: Artifact, ctx: Context) -> None:
    other = b"not the object\n"
    content = b"one\n"
    replace_objects(art, ctx, [file_entry("f.txt", content)], {ObjectKey(sha(content), False): content})
    art.manifest["layers"].append(
        {"mediaType": RAW_MEDIA_TYPE, "digest": "sha256:" + sha(other), "size": len(content)}
    )
    art.blobs["sha256:" + sha(other)] = other
    assert isinstance(art.config, dict)
    art.config["layers"].append({"digest": "sha256:" + sha(other), "objects": [sha(content)]})


def first_tar(art: Artifact) -> dict[str, Any]:
    return next(d for d in art.manifest["layers"] if d["mediaType"] == TAR_MEDIA_TYPE)


def layer_field(key: str, value: Any) -> Callable[[Artifact, Context], None]:
    def craft(art: Artifact, ctx: Context) -> None:
        first_tar(art)[key] = value

    return craft


def index_object(name: str) -> Callable[[Artifact, Context], None]:
    def craft(art: Artifact, ctx: Context) -> None:
        assert isinstance(art.config, dict)
        art.config["layers"][0]["objects"].append(name)

    return craft


def index_other_digest(art: Artifact, ctx: Context) -> None:
    assert isinstance(art.config, dict)
    art.config["layers"][0]["digest"] = "sha256:" + sha(b"no such layer")


def config_bytes(data: bytes) -> Callable[[Artifact, Context], None]:
    def craft(art: Artifact, ctx: Context) -> None:
        art.config = data

    return craft


def config_descriptor(**values: Any) -> Callable[[Artifact, Context], None]:
    def craft(art: Artifact, ctx: Context) -> None:
        art.config_descriptor.update(values)

    return craft


def sha_outside(art: Artifact, ctx: Context) -> None:
    # objects/<sha[:2]>/<sha[2:]> with sha = ".." + an absolute path is that path.
    entry(art, "f.txt")["sha256"] = ".." + str(ctx.outside / "sentinel.txt")


def metric(name: Any, value: Any) -> Callable[[Artifact, Context], None]:
    def craft(art: Artifact, ctx: Context) -> None:
        result(art)["metrics"] = {"scores": {name: value}}

    return craft


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


def output_named(name: str) -> Callable[[Artifact, Context], None]:
    def craft(art: Artifact, ctx: Context) -> None:
        outputs = result(art)["outputs"]
        outputs[name] = outputs.pop("out")

    return craft


def file_output(mutate: Callable[[list[dict[str, Any]]], None]) -> Callable[[Artifact, Context], None]:
    def craft(art: Artifact, ctx: Context) -> None:
        mutate(entries(art, "scores"))

    return craft


def manifest_field(key: str, value: Any) -> Callable[[Artifact, Context], None]:
    def craft(art: Artifact, ctx: Context) -> None:
        art.manifest[key] = value

    return craft


def output_type(value: Any) -> Callable[[Artifact, Context], None]:
    def craft(art: Artifact, ctx: Context) -> None:
        result(art)["outputs"]["out"]["type"] = value

    return craft


DEEP_JSON = b'{"format": "mlpipe.oci-result/1", "result": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

MISSES: dict[str, Callable[[Artifact, Context], None]] = {
    # digests
    "sha256-is-a-path-outside": sha_outside,
    "sha256-relative-traversal": set_field("f.txt", "sha256", "../../../outside/sentinel.txt"),
    "sha256-uppercase": lambda art, ctx: entry(art, "f.txt").update(
        sha256=entry(art, "f.txt")["sha256"].upper()
    ),
    "sha256-63-chars": lambda art, ctx: entry(art, "f.txt").update(sha256=entry(art, "f.txt")["sha256"][:63]),
    "sha256-a-number": set_field("f.txt", "sha256", 12345),
    "fingerprint-another": set_result("fingerprint", "0" * 64),
    "fingerprint-traversal": set_result("fingerprint", "../../results/x"),
    # kinds, bits, sizes
    "kind-fifo": set_field("f.txt", "kind", "fifo"),
    "x-a-string": set_field("run.sh", "x", "yes"),
    "size-negative": set_field("f.txt", "size", -1),
    "size-2**62": set_field("f.txt", "size", 2**62),
    "size-2**64": set_field("f.txt", "size", 2**64),
    "size-a-float": set_field("f.txt", "size", 4.0),
    "link-size-5000": set_field("link", "size", 5000),
    # names
    "path-twice": add_entry("f.txt"),
    "path-under-a-file": add_entry("f.txt/planted"),
    "path-under-a-link": add_entry("link/planted"),
    "path-absolute": lambda art, ctx: add_entry(str(ctx.outside / "planted"))(art, ctx),
    "path-dotdot": add_entry("../planted"),
    "path-dotdot-inside": add_entry("sub/../../planted"),
    "path-newline": add_entry("a\nmlpipe: warning: forged"),
    "path-escape-sequence": add_entry("\x1b[2Jx"),
    "path-not-utf8": add_entry("bad\udcff"),
    "path-empty-in-a-dir": add_entry(""),
    "path-a-list": set_field("f.txt", "path", ["f.txt"]),
    "output-name-a-path": output_named("../x"),
    "output-type-socket": output_type("socket"),
    "file-output-two-entries": file_output(lambda es: es.append(dict(es[0]))),
    "file-output-a-link": file_output(lambda es: es[0].update(kind="link")),
    # links, followed as the kernel would
    "link-chain-escapes": links(("sub/up", ".."), ("esc", "sub/up/..")),
    "link-loop": links(("l1", "l2"), ("l2", "l1")),
    "link-absolute": lambda art, ctx: links(("l", str(ctx.outside / "sentinel.txt")))(art, ctx),
    "link-target-not-utf8": link_not_utf8,
    # metrics and parts
    "metric-nan": metric("acc", float("nan")),
    "metric-a-bool": metric("acc", True),
    "metric-nested-deep": metric("acc", nested(200)),
    "metric-name-long": metric("m" * 10_000, 1.0),
    "metric-name-newline": metric("acc\n::error::forged", 1.0),
    "parts-nested-deep": set_result("parts", nested(100)),
    "parts-a-list": set_result("parts", []),
    # the config blob
    "config-deeply-nested": config_bytes(DEEP_JSON),
    "config-not-utf8": config_bytes(b'{"format": "mlpipe.oci-result/1", "result": "\xff\xfe"}'),
    "config-not-json": config_bytes(b"{not json"),
    "config-declares-more-than-the-limit": config_descriptor(size=MAX_CONFIG + 1),
    "config-declares-2**62": config_descriptor(size=2**62),
    "config-media-type": config_descriptor(mediaType="application/x-evil"),
    "manifest-not-an-mlpipe-result": manifest_field("artifactType", "application/x-evil"),
    # layers and their index
    "index-object-traversal": index_object("../../../outside/sentinel.txt"),
    "index-object-not-in-the-result": index_object(sha(b"other")),
    "index-digest-not-in-the-manifest": index_other_digest,
    "layer-media-type-unknown": layer_field("mediaType", "application/x-evil"),
    "layer-size-off-by-one": lambda art, ctx: first_tar(art).update(size=first_tar(art)["size"] + 1),
    "layer-size-2**62": layer_field("size", 2**62),
    "tar-member-another-object": tar_member_other_object,
    "tar-member-wrong-content": tar_member_wrong_content,
    "tar-symlink-member": lambda art, ctx: tar_member(tarfile.SYMTYPE, str(ctx.outside / "sentinel.txt"))(
        art, ctx
    ),
    "tar-hardlink-member": lambda art, ctx: tar_member(tarfile.LNKTYPE, str(ctx.outside / "sentinel.txt"))(
        art, ctx
    ),
    "tar-truncated": tar_truncated,
    "raw-layer-another-object": raw_layer_other_object,
}

ODD_PROVENANCE: dict[str, Any] = {
    "run-id-newline": {"run_id": "20260101T000000000Z-aaaaaaaaaaaaaaaa\n::error::forged"},
    "step-escape-sequence": {"step": "\x1b[2J::error::forged", "commit": "c" * 40},
    "commit-a-path": {"commit": "../../../::error::forged", "dirty": "yes"},
    "not-an-object": "::error::forged",
    "run-url-a-markdown-link": {
        "run_url": "https://github.com/o/r/actions/runs/1)[forged](https://evil.example"
    },
    "run-url-javascript": {"run_url": "javascript:alert('forged')//github.com/o/r/actions/runs/1"},
}


def craft(origin: Origin, mutate: Callable[[Artifact, Context], None], work: Path) -> Artifact:
    art = Artifact(copy.deepcopy(origin.manifest), copy.deepcopy(origin.config), dict(origin.blobs))
    mutate(art, Context(origin, work))
    return art


def run_against(origin: Origin, registry, art: Artifact) -> tuple[str, Any, Any, Any]:
    """Push `art` under the fingerprint's tag in a fresh repository; two ci-runs of a fresh workspace state.
    Returns the repository, both outcomes and both runs' records."""
    repo = f"t/hostile-{uuid.uuid4().hex[:12]}"
    push_artifact(RegistryClient(registry.host), repo, result_tag(origin.fingerprint), art)
    shutil.rmtree(origin.project.root / ".mlpipe", ignore_errors=True)
    env = {"MLPIPE_CACHE": f"oci://{registry.host}/{repo}", "MLPIPE_REGISTRY_RETRY_BUDGET_S": "5"}
    first = origin.project.run("ci-run", env=env, timeout=60)
    second = origin.project.run("ci-run", env=env, timeout=60)
    records = run_records(origin.project)
    assert len(records) == 2, first.output + second.output
    return repo, first, second, records


def run_records(project: Project) -> list[Any]:
    """The workspace's run records, oldest first (read as files: a `show` process per run costs more than the
    run it shows, and this module runs two per variant)."""
    runs = project.root / ".mlpipe" / "runs"
    return [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))]


@pytest.mark.parametrize("variant", sorted(MISSES))
def test_a_crafted_entry_is_a_miss_with_one_warning(origin, registry, tmp_path, variant):
    before = snapshot(origin)
    art = craft(origin, MISSES[variant], tmp_path)
    repo, first, second, (first_record, record) = run_against(origin, registry, art)
    touched = sum(1 for k, v in snapshot(origin).items() if before.get(k) != v) + len(
        set(before) - set(snapshot(origin))
    )
    wrong = sum(r["steps"]["a"]["outputs"] != origin.outputs for r in (first_record, record))
    fault_tally.record(
        "hostile registry entry",
        runs_completed=(first.code == 0) + (second.code == 0),
        wrong_results=wrong,
        touched_outside=touched,
    )

    first.assert_success()
    second.assert_success()
    assert "Traceback" not in first.output + second.output
    warnings = [line for line in first.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, first.stderr
    assert f"ignoring registry entry {repo}:{result_tag(origin.fingerprint)[:19]}" in warnings[0]
    # A crafted name is shown escaped, inside the one warning: it never starts a line of its own.
    assert not any("forged" in line.split(":", 1)[0] for line in (first.output + second.output).splitlines())
    assert "forged" not in first.stdout + second.stdout
    assert record["steps"]["a"]["status"] == "reused"  # the second run: its own result, from the local store
    assert first_record["steps"]["a"]["status"] == "ran"
    assert wrong == 0
    assert touched == 0, "a file outside the store changed"
    assert_store_whole(origin.project.root / ".mlpipe" / "cache")


@pytest.mark.parametrize("variant", sorted(ODD_PROVENANCE))
def test_odd_provenance_is_dropped_and_the_entry_reused_without_printing_it(
    origin, registry, tmp_path, variant
):
    art = craft(origin, lambda a, ctx: result(a).update(provenance=ODD_PROVENANCE[variant]), tmp_path)
    _, first, second, (first_record, _) = run_against(origin, registry, art)
    fault_tally.record("hostile registry entry", runs_completed=(first.code == 0) + (second.code == 0))
    first.assert_success()
    second.assert_success()
    assert "forged" not in first.output + second.output
    assert "\x1b" not in first.output
    assert "warning" not in first.stderr
    assert first_record["steps"]["a"]["status"] == "reused"
    assert first_record["steps"]["a"]["outputs"] == origin.outputs
    assert "forged" not in json.dumps(first_record)
    assert_store_whole(origin.project.root / ".mlpipe" / "cache")


def test_the_genuine_entry_is_reused(origin, registry, tmp_path):
    """The harness itself: the unaltered artifact is a hit, so every miss above is the crafted field's doing."""
    _, first, _, (record, _) = run_against(origin, registry, craft(origin, lambda a, ctx: None, tmp_path))
    first.assert_success()
    assert "warning" not in first.stderr
    assert record["steps"]["a"]["status"] == "reused", first.output
    assert record["steps"]["a"]["outputs"] == origin.outputs
