"""The result store contract: every backend of `cache.base.ResultStore` passes the same tests.

The backends: the local store (cache/local.py) and the store with the real test registry behind it
(cache/tiered.py, plain HTTP on 127.0.0.1, a repository of its own per test). The tests use the protocol's
verbs only (lookup, publish, materialize, checkout, latest, set_latest); what differs between backends (how a
store is opened, waiting for background pushes, losing an object) is in `StoreBackend`; every store is opened
as the commands open theirs, by `run.session.open_store` from the settings, so a new backend is one more entry
there and one more branch in `open_store`.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlpipe.cache.base import ResultStore
from mlpipe.cache.local import LocalStore
from mlpipe.cache.tiered import TieredStore
from mlpipe.config import Settings, settings
from mlpipe.core.results import StepResult
from mlpipe.digest import Entry, FileHasher, Manifest
from mlpipe.run.session import open_store

PARTS = {"schema": 1, "run": ["train"], "code": "1" * 40}


@dataclass
class StoreBackend:
    name: str
    open: Callable[[Path], ResultStore]
    """A store on a fresh local root; every store of one test shares the backend's remote, if any."""
    settle: Callable[[ResultStore], None]
    """Wait for background work (pushes) so another store can see what this one published."""
    lose: Callable[[ResultStore, StepResult, Entry], None]
    """Remove an entry's stored content from everywhere this backend keeps it."""
    shared: bool
    """Whether a second store on another root sees what the first published."""


def _local_lose(store: ResultStore, result: StepResult, entry: Entry) -> None:
    store.local.object_path(entry).unlink()


def _opener(settings: Settings, opened: list[ResultStore]) -> Callable[[Path], ResultStore]:
    """Stores opened as every command opens its store: `run.session.open_store` on a workspace at `root`."""

    def open_at(root: Path) -> ResultStore:
        root.mkdir(parents=True, exist_ok=True)
        store = open_store(root, settings)[1]
        opened.append(store)
        return store

    return open_at


def _settle(store: ResultStore) -> None:
    summary = store.sync({"run_id": "20260101T000000000Z-contractcontract"})
    assert not summary.get("errors"), summary


@pytest.fixture(params=["local", "registry"])
def backend(request: pytest.FixtureRequest) -> Iterator[StoreBackend]:
    opened: list[ResultStore] = []
    if request.param == "local":
        local = _opener(settings(environ={}), opened)
        yield StoreBackend("local", local, lambda store: None, _local_lose, shared=False)
        assert all(isinstance(store, LocalStore) for store in opened)
        return
    registry = request.getfixturevalue("registry")
    repo = f"contract/{uuid.uuid4().hex[:12]}"
    # A push to the protected main branch: this run writes the trusted repository.
    environ = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REF": "refs/heads/main",
        "MLPIPE_PROTECTED_REFS": "refs/heads/main",
    }
    remote = _opener(settings(cli={"cache": f"oci://{registry.host}/{repo}"}, environ=environ), opened)

    def lose(store: ResultStore, result: StepResult, entry: Entry) -> None:
        _local_lose(store, result, entry)
        url = f"{registry.url}/v2/{repo}/manifests/result-{result.fingerprint}"
        accept = "application/vnd.oci.image.manifest.v1+json"
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": accept}), timeout=10) as r:
            layers = json.loads(r.read())["layers"]
        for layer in layers:  # every layer of the result: the object is in one of them
            registry.blob_path(layer["digest"]).unlink(missing_ok=True)

    yield StoreBackend("registry", remote, _settle, lose, shared=True)
    assert all(isinstance(store, TieredStore) for store in opened)
    for store in opened:  # no push left running past the test
        store.sync({"run_id": "20260101T000000000Z-contractcontract"})


def fingerprint(label: str) -> str:
    return hashlib.sha256(f"{label}-{uuid.uuid4()}".encode()).hexdigest()


def pending(fp: str, run_id: str = "20260101T000000000Z-aaaaaaaaaaaaaaaa") -> StepResult:
    """A result as the runner hands it to publish: its outputs come from the staged paths."""
    return StepResult(
        fingerprint=fp,
        parts=PARTS,
        outputs={},
        metrics={"m": {"acc": 0.5}},
        provenance={"run_id": run_id, "step": "train", "commit": "c" * 40, "dirty": False},
    )


def stage(top: Path, files: dict[str, bytes]) -> Path:
    top.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = top / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return top


def tree(top: Path) -> dict[str, tuple[str, bool, bytes]]:
    """rel path -> (kind, executable, content or link target), of everything under `top` (or `top` itself)."""
    found: dict[str, tuple[str, bool, bytes]] = {}
    paths = [top] if not top.is_dir() or top.is_symlink() else sorted(top.rglob("*"))
    for path in paths:
        rel = "" if path == top else path.relative_to(top).as_posix()
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            found[rel] = ("link", False, os.readlink(path).encode())
        elif stat.S_ISREG(st.st_mode):
            found[rel] = ("file", bool(st.st_mode & 0o100), path.read_bytes())
    return found


@pytest.fixture
def staged(tmp_path: Path) -> dict[str, Path]:
    """A dir output (nested, an executable, an empty file, a link inside, two identical files) and a file."""
    unique = uuid.uuid4().hex.encode()  # this test's bytes: registry blobs are shared by every test
    model = stage(
        tmp_path / "staging/model",
        {
            "w.bin": b"weights " + unique,
            "sub/run.sh": b"#!/bin/sh\necho " + unique + b"\n",
            "empty": b"",
            "same-1": b"same " + unique,
            "deep/same-2": b"same " + unique,
        },
    )
    (model / "sub/run.sh").chmod(0o755)
    os.symlink("../w.bin", model / "sub/w-link")
    scores = (
        stage(tmp_path / "staging", {"scores.json": b'{"acc": 0.5, "u": "' + unique + b'"}'}) / "scores.json"
    )
    return {"model": model, "scores": scores}


class TestResultStoreContract:
    def test_publish_then_lookup_gives_the_same_digests(
        self, backend: StoreBackend, staged: dict[str, Path], tmp_path: Path
    ) -> None:
        store = backend.open(tmp_path / "store")
        fp = fingerprint("roundtrip")
        expected = {name: FileHasher().manifest(path).digest for name, path in staged.items()}
        assert store.lookup(fp) is None
        published = store.publish(pending(fp), staged)
        assert (published.already_stored, published.nondeterministic) == (False, False)
        assert published.result.output_digests() == expected
        assert store.lookup(fp) == published.result
        assert store.lookup(fingerprint("never published")) is None

    def test_a_second_store_sees_only_what_its_backend_shares(
        self, backend: StoreBackend, staged: dict[str, Path], tmp_path: Path
    ) -> None:
        first = backend.open(tmp_path / "first")
        fp = fingerprint("shared")
        published = first.publish(pending(fp), staged)
        backend.settle(first)
        second = backend.open(tmp_path / "second")
        found = second.lookup(fp)
        if not backend.shared:
            assert found is None
            return
        assert found is not None and found.output_digests() == published.result.output_digests()
        assert tree(second.materialize(found.outputs["model"], "model")) == tree(staged["model"])
        # a fresh root with nothing in the remote for it: a miss there too
        assert backend.open(tmp_path / "third").lookup(fingerprint("local only")) is None

    def test_the_first_complete_entry_wins_over_other_bytes(
        self, backend: StoreBackend, tmp_path: Path
    ) -> None:
        store = backend.open(tmp_path / "store")
        fp = fingerprint("race")
        unique = uuid.uuid4().hex.encode()
        first = store.publish(pending(fp), {"o": stage(tmp_path / "a", {"t": b"1" + unique})})
        same = store.publish(pending(fp), {"o": stage(tmp_path / "b", {"t": b"1" + unique})})
        assert (same.result, same.already_stored, same.nondeterministic) == (first.result, True, False)
        other = store.publish(
            pending(fp, "20260102T000000000Z-bbbbbbbbbbbbbbbb"), {"o": stage(tmp_path / "c", {"t": b"2"})}
        )
        assert (other.result, other.already_stored, other.nondeterministic) == (first.result, True, True)
        assert store.lookup(fp) == first.result
        backend.settle(store)
        if backend.shared:
            seen = backend.open(tmp_path / "elsewhere").lookup(fp)
            assert seen is not None and seen.output_digests() == first.result.output_digests()

    def test_materialize_is_read_only_shared_and_stores_identical_files_once(
        self, backend: StoreBackend, staged: dict[str, Path], tmp_path: Path
    ) -> None:
        store = backend.open(tmp_path / "store")
        result = store.publish(pending(fingerprint("farm")), staged).result
        path = store.materialize(result.outputs["model"], "model")
        assert store.materialize(result.outputs["model"], "model") == path
        assert tree(path) == tree(staged["model"])
        for item in [path, *path.rglob("*")]:
            st = item.lstat()
            if not stat.S_ISLNK(st.st_mode):
                assert st.st_mode & 0o222 == 0, f"{item} is writable: {oct(st.st_mode)}"
        assert (path / "same-1").stat().st_ino == (path / "deep/same-2").stat().st_ino
        file_output = store.materialize(result.outputs["scores"], "scores")
        assert file_output.read_bytes() == staged["scores"].read_bytes()
        assert file_output.stat().st_mode & 0o222 == 0

    def test_checkout_is_writable_and_replaces_what_was_there(
        self, backend: StoreBackend, staged: dict[str, Path], tmp_path: Path
    ) -> None:
        store = backend.open(tmp_path / "store")
        fp = fingerprint("checkout")
        store.publish(pending(fp), staged)
        backend.settle(store)
        reader = backend.open(tmp_path / "reader") if backend.shared else store
        result = reader.lookup(fp)
        assert result is not None
        dest = stage(tmp_path / "work/model", {"stale.txt": b"old", "w.bin": b"old weights"})
        reader.checkout(result.outputs["model"], dest)
        assert tree(dest) == tree(staged["model"])
        assert all(p.stat().st_mode & 0o200 for p in dest.rglob("*") if not p.is_symlink())
        (dest / "w.bin").write_bytes(b"changed")  # the copy is the caller's: the store keeps its own
        assert (
            tree(reader.materialize(result.outputs["model"], "model"))["w.bin"]
            == tree(staged["model"])["w.bin"]
        )
        file_dest = stage(tmp_path / "work", {"scores.json": b"old"}) / "scores.json"
        reader.checkout(result.outputs["scores"], file_dest)
        assert file_dest.read_bytes() == staged["scores"].read_bytes()

    def test_a_missing_object_is_a_miss(
        self, backend: StoreBackend, staged: dict[str, Path], tmp_path: Path
    ) -> None:
        store = backend.open(tmp_path / "store")
        fp = fingerprint("lost")
        result = store.publish(pending(fp), staged).result
        backend.settle(store)
        entry = next(e for e in result.outputs["model"].entries if e.path == "w.bin")
        backend.lose(store, result, entry)
        assert store.lookup(fp) is None

    def test_an_empty_dir_output_is_stored_as_every_backend_stores_it(
        self, backend: StoreBackend, tmp_path: Path
    ) -> None:
        store = backend.open(tmp_path / "store")
        fp = fingerprint("empty")
        empty = tmp_path / "staging/empty"
        empty.mkdir(parents=True)
        published = store.publish(pending(fp), {"o": empty})
        assert published.result.outputs["o"] == Manifest(type="dir", entries=())
        backend.settle(store)
        reader = backend.open(tmp_path / "reader") if backend.shared else store
        found = reader.lookup(fp)
        assert found is not None and found.outputs["o"] == Manifest(type="dir", entries=())
        dest = tmp_path / "out/o"
        reader.checkout(found.outputs["o"], dest)
        assert dest.is_dir() and list(dest.iterdir()) == []

    def test_latest_follows_set_latest_in_this_store(
        self, backend: StoreBackend, staged: dict[str, Path], tmp_path: Path
    ) -> None:
        store = backend.open(tmp_path / "store")
        assert store.latest("demo", "train") is None
        one = store.publish(pending(fingerprint("one")), staged).result
        store.set_latest("demo", "train", one.fingerprint)
        assert store.latest("demo", "train") == one
        assert store.latest("demo", "other") is None
        assert store.latest("other", "train") is None
