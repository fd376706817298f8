"""An OCI push and pull hold little per file (issue 18): a tree layer's members are made from the packed manifest
entries as they are iterated, and a pull's objects still to write are a byte per entry, not sets and dicts of
keys; measured with tracemalloc (the traced peak's growth per file), with wide margins."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

from mlpipe.cache.local import LocalStore
from mlpipe.cache.oci import OciCache
from mlpipe.cache.registry import RegistryClient
from mlpipe.core.results import StepResult
from mlpipe.digest import FileHasher
from mlpipe_testing import traced_peak


def stored(root: Path, count: int) -> tuple[LocalStore, StepResult]:
    """A store holding a result whose one output is `count` small files in directories of 500, each holding its
    path."""
    out = root / "out"
    for i in range(count):
        d = out / f"d{i // 500:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.txt").write_text(f"d{i // 500:02d}/f{i:05d}.txt")
    store = LocalStore(root / "store", hasher=FileHasher(workers=1))
    bare = StepResult(fingerprint=hashlib.sha256(str(count).encode()).hexdigest(), parts={}, outputs={})
    return store, store.publish(bare, {"out": out}).result


def push_and_pull(client: RegistryClient, root: Path, count: int) -> tuple[int, int]:
    """The traced peaks of a push of a `count`-file result into a new repository and of its pull into an empty
    store; the pulled result checked whole."""
    store, result = stored(root, count)
    repo = f"t/memory-{uuid.uuid4().hex[:12]}"
    push = traced_peak(lambda: OciCache(client, store).push(repo, result, {}))
    pulled = LocalStore(root / "pulled")
    got: list[StepResult | None] = []
    pull = traced_peak(lambda: got.append(OciCache(client, pulled).fetch(repo, result.fingerprint)))
    assert got == [result]
    for e in result.outputs["out"].entries:
        assert Path(pulled.object_file(e.sha256, e.executable)).read_bytes() == e.path.encode()
    return push, pull


def test_a_push_and_a_pull_hold_little_per_file(registry, tmp_path) -> None:
    # Before: a Member, path and ObjectKey per file for each tree (push 424 bytes a file traced), and on a pull
    # the tree's members again, a set of missing keys, a dict of sizes per layer and the sink's set (679).
    client = RegistryClient(registry.host)
    (push_1k, pull_1k), (push_5k, pull_5k) = (
        push_and_pull(client, tmp_path / str(n), n) for n in (1000, 5000)
    )
    per_file = {"push": (push_5k - push_1k) / 4000, "pull": (pull_5k - pull_1k) / 4000}
    # The push's config (about 130 bytes a file) was held whole while uploaded: now written to a temp file and
    # uploaded from there (110 bytes a file here before, about 0 now).
    assert per_file["push"] < 60 and per_file["pull"] < 250, per_file
