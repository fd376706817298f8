"""OciCache against the real registry: manifest size, concurrent pushes, refusing escaping or broken artifacts."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from pathlib import Path

import pytest

from mlpipe.cache.local import LocalStore
from mlpipe.cache.oci import OciCache, Refused, result_tag
from mlpipe.cache.registry import RegistryClient
from mlpipe.core.results import StepResult
from mlpipe.digest import Entry, Manifest, bytes_sha256

FP = "ab" * 32


def make_store(root: Path) -> LocalStore:
    return LocalStore(root)


def run_id(name: str) -> str:
    """A run id of the form runs.new_run_id makes (a registry entry with another is not believed)."""
    return "20260101T000000000Z-" + hashlib.sha256(name.encode()).hexdigest()[:16]


def result_from(
    store: LocalStore, staged: dict[str, Path], *, fingerprint: str = FP, run: str = "r1"
) -> StepResult:
    bare = StepResult(
        fingerprint=fingerprint, parts={"run": "x"}, outputs={}, provenance={"run_id": run_id(run)}
    )
    return store.publish(bare, staged).result


def cache(registry, store: LocalStore) -> OciCache:
    return OciCache(RegistryClient(registry.host), store)


@pytest.fixture
def repo() -> str:
    return f"t/{uuid.uuid4().hex[:12]}"


@pytest.mark.slow
def test_a_20000_file_output_keeps_the_manifest_small_and_round_trips(registry, repo, tmp_path):
    out = tmp_path / "out"
    for i in range(20_000):
        d = out / f"d{i // 1000:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.txt").write_text(f"file {i}\n")
    (out / "big.bin").write_bytes(os.urandom(3 << 20))
    a = make_store(tmp_path / "a")
    result = result_from(a, {"out": out})
    assert cache(registry, a).push(repo, result, {"protected": True}) == "pushed"

    manifest, _ = RegistryClient(registry.host).get_manifest(repo, result_tag(FP))
    assert len(manifest) < 4 << 20
    layers = json.loads(manifest)["layers"]
    # ORAS's layout: the small files in one directory layer named like the output, the big one by its path.
    assert [layer["annotations"]["org.opencontainers.image.title"] for layer in layers] == [
        "out",
        "out/big.bin",
    ]
    assert [layer["mediaType"] for layer in layers] == [
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.mlpipe.object.v1",
    ]

    b = make_store(tmp_path / "b")
    fetched = cache(registry, b).fetch(repo, FP)
    assert fetched is not None and fetched.outputs["out"].digest == result.outputs["out"].digest
    assert b.lookup(FP) is not None
    b.checkout(fetched.outputs["out"], tmp_path / "copy")
    assert (tmp_path / "copy/d19/f19999.txt").read_text() == "file 19999\n"
    assert (tmp_path / "copy/big.bin").read_bytes() == (out / "big.bin").read_bytes()


def test_identical_content_gives_identical_layers_from_any_store(registry, repo, tmp_path):
    for name in ("one", "two"):
        out = tmp_path / name / "out"
        out.mkdir(parents=True)
        (out / "a.txt").write_text("same\n")
        (out / "run.sh").write_text("echo same\n")
        (out / "run.sh").chmod(0o755)
        os.utime(out / "a.txt", (1 if name == "one" else 99999, 1 if name == "one" else 99999))
    digests = []
    for i, name in enumerate(("one", "two")):
        store = make_store(tmp_path / f"store-{name}")
        result = result_from(store, {"out": tmp_path / name / "out"}, fingerprint=f"{i:x}" * 64, run=name)
        cache(registry, store).push(repo, result, {})
        manifest, _ = RegistryClient(registry.host).get_manifest(repo, result_tag(result.fingerprint))
        digests.append([layer["digest"] for layer in json.loads(manifest)["layers"]])
    assert digests[0] == digests[1]


def test_concurrent_pushes_of_one_key_both_succeed_and_the_entry_is_whole(registry, repo, tmp_path):
    stores, results = [], []
    for name in ("x", "y"):
        out = tmp_path / name / "out"
        out.mkdir(parents=True)
        (out / "data.bin").write_bytes(os.urandom(2 << 20))
        (out / "small.txt").write_text(name)
        store = make_store(tmp_path / f"store-{name}")
        stores.append(store)
        results.append(result_from(store, {"out": out}, run=name))
    outcomes: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def push(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes.append(cache(registry, stores[i]).push(repo, results[i], {}))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(outcomes) in (["exists", "pushed"], ["pushed", "pushed"])
    fetched = cache(registry, make_store(tmp_path / "reader")).fetch(repo, FP)
    assert fetched is not None
    assert fetched.output_digests() in ([r.output_digests() for r in results])


def _push_raw(registry, repo: str, store: LocalStore, result: StepResult) -> None:
    cache(registry, store).push(repo, result, {})


def _with_object(store: LocalStore, content: bytes, *, kind: str = "file") -> Entry:
    sha = bytes_sha256(content)
    entry = Entry(path="", kind=kind, executable=False, size=len(content), sha256=sha)
    path = store.object_path(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return entry


@pytest.mark.parametrize(
    ("path", "link_target"),
    [
        ("../escape.txt", None),
        ("/etc/evil", None),
        ("ok/../../x", None),
        ("link", "../../outside"),
        ("l", "/etc/passwd"),
    ],
)
def test_artifacts_whose_paths_escape_the_output_are_refused(registry, repo, tmp_path, path, link_target):
    store = make_store(tmp_path / "evil")
    content = (link_target or "owned").encode()
    obj = _with_object(store, content, kind="link" if link_target else "file")
    entry = Entry(path=path, kind=obj.kind, executable=False, size=obj.size, sha256=obj.sha256)
    evil = StepResult(fingerprint=FP, parts={}, outputs={"out": Manifest(type="dir", entries=(entry,))})
    _push_raw(registry, repo, store, evil)

    reader = make_store(tmp_path / "reader")
    with pytest.raises(Refused, match=r"outside the tree|not a plain relative path"):
        cache(registry, reader).fetch(repo, FP)
    assert reader.lookup(FP) is None
    assert not (tmp_path / "escape.txt").exists()


def test_a_missing_blob_is_refused_and_nothing_is_stored(registry, repo, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "big.bin").write_bytes(os.urandom(2 << 20))
    store = make_store(tmp_path / "a")
    result = result_from(store, {"out": out})
    cache(registry, store).push(repo, result, {})
    sha = result.outputs["out"].entries[0].sha256
    blob = registry.blob_path(f"sha256:{sha}")
    moved = blob.with_name("moved")
    blob.rename(moved)
    try:
        reader = make_store(tmp_path / "reader")
        with pytest.raises(Refused, match="missing"):
            cache(registry, reader).fetch(repo, FP)
        assert reader.lookup(FP) is None
    finally:
        moved.rename(blob)


def test_an_existing_tag_is_never_overwritten(registry, repo, tmp_path):
    outs = []
    for name in ("first", "second"):
        out = tmp_path / name
        out.mkdir()
        (out / "v.txt").write_text(name)
        outs.append(out)
    first = make_store(tmp_path / "s1")
    second = make_store(tmp_path / "s2")
    assert cache(registry, first).push(repo, result_from(first, {"out": outs[0]}), {}) == "pushed"
    assert cache(registry, second).push(repo, result_from(second, {"out": outs[1]}, run="2"), {}) == "exists"
    fetched = cache(registry, make_store(tmp_path / "r")).fetch(repo, FP)
    assert fetched is not None and fetched.provenance["run_id"] == run_id("r1")


def test_a_result_too_large_for_any_reader_is_not_pushed(registry, repo, tmp_path, monkeypatch):
    """A record over the size every fetch refuses unread would be pushed for nothing: nothing is uploaded."""
    from mlpipe.cache import oci

    out = tmp_path / "out"
    out.mkdir()
    for i in range(50):
        (out / f"f{i:02d}.txt").write_text(f"{i}\n")
    store = make_store(tmp_path / "s")
    result = result_from(store, {"out": out})
    monkeypatch.setattr(oci, "MAX_CONFIG", 1024)
    with pytest.raises(oci.TooLarge, match="more than the 1024 a runner reads from a registry"):
        cache(registry, store).push(repo, result, {"protected": True})
    client = RegistryClient(registry.host)
    assert not client.has_manifest(repo, result_tag(FP))
    assert list(client.tags(repo)) == []
