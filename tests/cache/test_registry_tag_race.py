"""Concurrent pushes of one fingerprint against the real registry: whichever tag wins, it is one whole entry.

Distribution has no conditional tag write, so two complete entries racing may both be written (the later tag
wins); what must hold is that a reader never sees a mix: the tag's manifest has every blob, and its outputs
verify and are exactly one pusher's.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from pathlib import Path

import pytest

from mlpipe.cache.local import LocalStore
from mlpipe.cache.oci import OciCache, result_tag
from mlpipe.cache.registry import RegistryClient
from mlpipe.core.results import StepResult

PUSHERS = 4


def stored_result(root: Path, fingerprint: str, name: str) -> tuple[LocalStore, StepResult, Path]:
    out = root / name / "out"
    out.mkdir(parents=True)
    (out / "data.bin").write_bytes(os.urandom(1 << 20) + name.encode())  # a layer of its own
    (out / "small.txt").write_text(f"written by {name}\n")  # a tar chunk
    store = LocalStore(root / f"store-{name}")
    bare = StepResult(fingerprint=fingerprint, parts={"run": "x"}, outputs={}, provenance={"run_id": name})
    return store, store.publish(bare, {"out": out}).result, out


def race(registry, repo: str, pushers: list[tuple[LocalStore, StepResult, Path]]) -> list[str]:
    outcomes: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(pushers))

    def push(store: LocalStore, result: StepResult) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes.append(OciCache(RegistryClient(registry.host), store).push(repo, result, {}))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=push, args=(s, r)) for s, r, _ in pushers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(outcomes) == len(pushers)
    return outcomes


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("round_", range(3))
def test_racing_pushes_of_one_fingerprint_leave_one_whole_verifiable_entry(registry, tmp_path, round_):
    repo = f"t/race-{uuid.uuid4().hex[:10]}"
    fingerprint = hashlib.sha256(repo.encode()).hexdigest()
    pushers = [stored_result(tmp_path, fingerprint, f"p{i}") for i in range(PUSHERS)]
    outcomes = race(registry, repo, pushers)
    assert set(outcomes) <= {"pushed", "exists"} and "pushed" in outcomes

    client = RegistryClient(registry.host)
    got = client.get_manifest(repo, result_tag(fingerprint))
    assert got is not None
    manifest = json.loads(got[0])
    for descriptor in [manifest["config"], *manifest["layers"]]:
        assert client.has_blob(repo, descriptor["digest"]), descriptor

    reader = LocalStore(tmp_path / "reader")
    fetched = OciCache(client, reader).fetch(repo, fingerprint)  # verifies every blob against its digest
    assert fetched is not None
    winners = [(r, out) for _, r, out in pushers if r.output_digests() == fetched.output_digests()]
    assert len(winners) == 1, "the tag's entry is not exactly one pusher's"
    reader.checkout(fetched.outputs["out"], tmp_path / "checked-out")
    assert tree_digest(tmp_path / "checked-out") == tree_digest(winners[0][1])


def test_a_later_push_of_an_existing_fingerprint_keeps_the_tag(registry, tmp_path):
    repo = f"t/keep-{uuid.uuid4().hex[:10]}"
    fingerprint = hashlib.sha256(repo.encode()).hexdigest()
    first, second = (stored_result(tmp_path, fingerprint, name) for name in ("first", "second"))
    client = RegistryClient(registry.host)
    assert OciCache(client, first[0]).push(repo, first[1], {}) == "pushed"
    before = client.get_manifest(repo, result_tag(fingerprint))
    assert OciCache(client, second[0]).push(repo, second[1], {}) == "exists"
    assert client.get_manifest(repo, result_tag(fingerprint)) == before
