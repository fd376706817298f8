"""Deterministic layers: tar chunks byte-identical from any store, chunk boundaries stable under edits."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

from mlpipe.cache.layers import RAW_THRESHOLD, ObjectKey, plan_layers, write_tar
from mlpipe.cache.oci import result_tag, run_tag
from mlpipe.digest import Entry


def entry(i: int, size: int = 10, *, x: bool = False) -> Entry:
    sha = hashlib.sha256(f"content {i}".encode()).hexdigest()
    return Entry(path=f"f{i:05d}", kind="file", executable=x, size=size, sha256=sha)


def test_tar_chunks_do_not_depend_on_file_times_owners_or_modes(tmp_path) -> None:
    digests = []
    for n, (mtime, mode) in enumerate([(1, 0o600), (10**9, 0o644)]):
        path = tmp_path / f"obj{n}"
        path.write_bytes(b"hello\n")
        path.chmod(mode)
        os.utime(path, (mtime, mtime))
        key = ObjectKey(hashlib.sha256(b"hello\n").hexdigest(), False)
        out = io.BytesIO()
        digest, size = write_tar([(key, path)], out)
        assert size == len(out.getvalue())
        digests.append(digest)
        with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
            (member,) = tar.getmembers()
            assert (member.name, member.mtime, member.uid, member.uname, member.mode) == (
                key.name,
                0,
                0,
                "",
                0o444,
            )
    assert digests[0] == digests[1]


def test_large_files_are_raw_layers_named_by_their_content_and_stored_once() -> None:
    big = entry(1, RAW_THRESHOLD + 1)
    same_big_elsewhere = Entry(path="other", kind="file", executable=True, size=big.size, sha256=big.sha256)
    layers = plan_layers([big, entry(2), same_big_elsewhere])
    raw = [layer for layer in layers if layer.kind == "raw"]
    assert len(raw) == 1 and raw[0].objects[0].sha256 == big.sha256
    assert [layer.kind for layer in layers] == ["tar", "raw"]


def test_editing_one_file_changes_only_its_own_chunk() -> None:
    entries = [entry(i) for i in range(3000)]
    before = plan_layers(entries)
    edited = list(entries)
    edited[1500] = Entry(path="f01500", kind="file", executable=False, size=10, sha256="0" * 63 + "1")
    after = plan_layers(edited)
    changed = set(before) ^ set(after)
    assert 1 <= len(changed) <= 4  # the chunk holding it (and at most a neighbour when a cut point moves)
    assert 5 < len(before) < 60


def test_each_object_once_even_when_several_paths_hold_it() -> None:
    dup = [entry(1), Entry(path="copy", kind="file", executable=False, size=10, sha256=entry(1).sha256)]
    (layer,) = plan_layers(dup)
    assert len(layer.objects) == 1


def test_tags_follow_the_oci_tag_rules() -> None:
    fp = "ab" * 32
    assert result_tag(fp) == f"result-{fp}"
    tag = run_tag("c" * 40, "20261125T131009838Z-78f8cce766503084")
    assert len(tag) <= 128 and tag.startswith("run.cccc")
