"""Content digests: files streamed through sha256, trees as manifests that ignore location and mtimes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mlpipe.digest import (
    Entry,
    FileHasher,
    Manifest,
    _Hashing,
    bytes_sha256,
    canonical_json,
    file_sha256,
    json_digest,
    walk_files,
)
from mlpipe.statcache import StatCache
from mlpipe_testing import count_file_reads, traced_peak

TREE = {"README": b"hello\n", "src/train.py": b"print('x')\n", "src/lib/util.py": b"", "data/a.csv": b"1,2\n"}


def make_tree(root: Path, files: dict[str, bytes] = TREE) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def digest_of(path: Path) -> str:
    return FileHasher().manifest(path).digest


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_canonical_json_sorts_keys_without_spaces_and_keeps_unicode() -> None:
    assert canonical_json({"b": [1, 2.5, None], "a": "é"}) == '{"a":"é","b":[1,2.5,null]}'.encode()
    assert json_digest({"a": 1}) == "sha256:" + sha(b'{"a":1}')
    assert bytes_sha256(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_file_sha256_matches_hashlib_on_a_file_larger_than_one_chunk(tmp_path: Path) -> None:
    data = os.urandom(5 * 2**20 + 17)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert file_sha256(path) == sha(data)
    assert file_sha256(str(path)) == sha(data)


def test_manifest_of_a_tree_lists_files_with_sizes_digests_and_exec_bits(tmp_path: Path) -> None:
    top = make_tree(tmp_path / "t")
    (top / "src/train.py").chmod(0o755)
    os.symlink("../README", top / "src/readme-link")
    manifest = FileHasher().manifest(top)
    assert manifest == Manifest(
        type="dir",
        entries=(
            Entry(path="README", kind="file", executable=False, size=6, sha256=sha(b"hello\n")),
            Entry(path="data/a.csv", kind="file", executable=False, size=4, sha256=sha(b"1,2\n")),
            Entry(path="src/lib/util.py", kind="file", executable=False, size=0, sha256=sha(b"")),
            Entry(path="src/readme-link", kind="link", executable=False, size=9, sha256=sha(b"../README")),
            Entry(path="src/train.py", kind="file", executable=True, size=11, sha256=sha(b"print('x')\n")),
        ),
    )
    assert manifest.size == 6 + 4 + 0 + 9 + 11
    assert manifest.digest == json_digest(manifest.to_json())
    assert Manifest.from_json(manifest.to_json()) == manifest


def test_manifest_of_a_single_file_has_one_entry_without_a_path(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights")
    assert FileHasher().manifest(path) == Manifest(
        type="file",
        entries=(Entry(path="", kind="file", executable=False, size=7, sha256=sha(b"weights")),),
    )


def test_entry_json_uses_short_keys() -> None:
    entry = Entry(path="a", kind="file", executable=True, size=1, sha256=sha(b"a"))
    assert entry.to_json() == {"path": "a", "kind": "file", "x": True, "size": 1, "sha256": sha(b"a")}
    assert Entry.from_json(entry.to_json()) == entry


def test_digest_does_not_depend_on_location_or_mtimes(tmp_path: Path) -> None:
    one = make_tree(tmp_path / "one")
    two = make_tree(tmp_path / "elsewhere" / "two")
    for path in two.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))
    (two / "src").chmod(0o700)  # directory modes are not content
    assert digest_of(one) == digest_of(two)
    single_one, single_two = one / "README", two / "README"
    assert digest_of(single_one) == digest_of(single_two)


@pytest.mark.parametrize(
    "change",
    [
        "content",
        "one byte appended",
        "exec bit",
        "renamed file",
        "moved to another dir",
        "added empty file",
        "removed file",
        "symlink target",
        "file replaced by a symlink to the same content",
    ],
)
def test_digest_changes_with_content_mode_links_and_paths(tmp_path: Path, change: str) -> None:
    base = make_tree(tmp_path / "base")
    os.symlink("README", base / "link")
    other = make_tree(tmp_path / "other")
    os.symlink("README", other / "link")
    assert digest_of(base) == digest_of(other)
    if change == "content":
        (other / "README").write_bytes(b"hellO\n")
    elif change == "one byte appended":
        (other / "data/a.csv").write_bytes(b"1,2\n\n")
    elif change == "exec bit":
        (other / "README").chmod(0o755)
    elif change == "renamed file":
        (other / "README").rename(other / "README.md")
    elif change == "moved to another dir":
        (other / "data/a.csv").rename(other / "src/a.csv")
    elif change == "added empty file":
        (other / "data/.keep").write_bytes(b"")
    elif change == "removed file":
        (other / "src/lib/util.py").unlink()
    elif change == "symlink target":
        (other / "link").unlink()
        os.symlink("./README", other / "link")
    else:
        (other / "src/lib/util.py").unlink()
        os.symlink("../../data/empty", other / "src/lib/util.py")
    assert digest_of(base) != digest_of(other)


def test_a_file_and_a_dir_holding_it_differ(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x")
    (tmp_path / "f").write_bytes(b"x")
    assert digest_of(tmp_path / "d") != digest_of(tmp_path / "f")


def test_walk_files_sorts_each_directory_by_name_and_does_not_follow_links(tmp_path: Path) -> None:
    top = make_tree(tmp_path / "t", {"b/c/d": b"", "a.txt": b"", "a-b": b"", "a/x": b"", "B": b""})
    (top / "empty").mkdir()
    os.symlink("b", top / "link-to-dir")
    os.mkfifo(top / "fifo")
    assert [rel for rel, _ in walk_files(top)] == ["B", "a/x", "a-b", "a.txt", "b/c/d", "link-to-dir"]
    stats = dict(walk_files(top))
    assert stats["link-to-dir"].st_mode & 0o170000 == 0o120000


def test_a_directory_given_through_a_symlink_is_hashed_as_the_directory(tmp_path: Path) -> None:
    top = make_tree(tmp_path / "t")
    os.symlink(top, tmp_path / "alias")
    assert digest_of(tmp_path / "alias") == digest_of(top)


def test_a_file_given_through_a_symlink_is_hashed_by_content(tmp_path: Path) -> None:
    (tmp_path / "real.csv").write_bytes(b"1,2\n")
    os.symlink(tmp_path / "real.csv", tmp_path / "input.csv")
    assert digest_of(tmp_path / "input.csv") == digest_of(tmp_path / "real.csv")
    (tmp_path / "real.csv").write_bytes(b"3,4\n")
    assert digest_of(tmp_path / "input.csv") == digest_of(tmp_path / "real.csv")
    assert FileHasher().manifest(tmp_path / "input.csv").entries[0].sha256 == sha(b"3,4\n")


def test_every_regular_file_is_read_once_and_links_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = count_file_reads(monkeypatch)
    top = make_tree(tmp_path / "t")
    os.symlink("README", top / "link")
    FileHasher().manifest(top)
    assert sorted(read) == ["README", "a.csv", "train.py", "util.py"]
    read.clear()
    FileHasher(StatCache(tmp_path / ".mlpipe" / "statcache.json", tmp_path)).digest(top)
    assert sorted(read) == ["README", "a.csv", "train.py", "util.py"]  # a new stat cache: no second lookup


def test_parallel_hashing_gives_the_same_manifest_as_one_thread(tmp_path: Path) -> None:
    top = tmp_path / "many"
    for i in range(40):
        (top / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (top / f"d{i % 3}" / f"f{i:02d}").write_bytes(bytes([i]) * (1000 + i))
    serial = FileHasher(workers=1).manifest(top)
    threaded = FileHasher(workers=3)
    threaded.PARALLEL_BYTES = 1  # force the threaded path on small data
    assert threaded.manifest(top) == serial
    assert [e.path for e in serial.entries] == sorted(e.path for e in serial.entries)


def spread_files(top: Path, count: int, per_dir: int = 500) -> Path:
    for i in range(count):
        part = top / f"{i // per_dir:03d}"
        part.mkdir(parents=True, exist_ok=True)
        (part / f"f{i:06d}").write_bytes(i.to_bytes(3, "big"))
    return top


def test_a_directory_digest_taken_as_it_is_walked_is_the_manifest_digest(tmp_path: Path) -> None:
    # digest() no longer builds the manifest: the same canonical JSON is hashed entry by entry, through batches
    # that cross directories, on one thread and on a pool.
    top = spread_files(tmp_path / "t", 700, per_dir=300)
    (top / "000" / "f000001").chmod(0o755)
    os.symlink("../001/f000300", top / "000" / "link")
    (top / "é ü").mkdir()
    (top / "é ü" / '"quoted"\\name').write_bytes(b"\x00\xff")
    expected = FileHasher(workers=1).manifest(top).digest
    assert FileHasher(workers=1).digest(top) == expected
    threaded = FileHasher(workers=3)
    threaded.PARALLEL_BYTES = 1  # the pool from the first batch on
    assert threaded.digest(top) == expected
    assert threaded.manifest(top).digest == expected
    (top / "single").write_bytes(b"one file")
    assert FileHasher().digest(top / "single") == FileHasher().manifest(top / "single").digest


@pytest.mark.parametrize("workers", [1, 2])
def test_hashing_a_new_directory_holds_no_list_of_its_files(
    tmp_path: Path, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Memory flat in data size (issue 18): before, the files were listed whole and then hashed, about 1 kB a
    # file held at once (4.5 MB more for the larger tree here); now a few batches are in flight whatever the size.
    # The bound leaves room for the thread pool's own allocations, which vary with scheduling (321 kB seen once
    # under load), and is still a fifth of what listing the files costs.
    monkeypatch.setattr(_Hashing, "BATCH_FILES", 16)
    peaks = []
    for count in (500, 5000):
        top = spread_files(tmp_path / str(count), count)
        hasher = FileHasher(workers=workers)
        hasher.PARALLEL_BYTES = 1 if workers > 1 else hasher.PARALLEL_BYTES
        peaks.append(traced_peak(lambda hasher=hasher, top=top: hasher.digest(top)))
    assert peaks[1] - peaks[0] < 900_000, peaks


def test_a_manifest_digest_hashes_exactly_the_canonical_json_of_the_manifest() -> None:
    # ManifestDigest writes each entry's JSON itself (issue 18: no dict and encoder walk per file); the bytes
    # must stay canonical_json's: quotes, backslashes, control and non-ASCII characters, line separators.
    paths = ["plain", 'q"uote', "back\\slash", "tab\tnew\nline\x01\x1f", "é ü 日本", "\u2028\u2029", "a/b/c"]
    entries = tuple(
        Entry(path=path, kind=kind, executable=x, size=size, sha256=hashlib.sha256(path.encode()).hexdigest())
        for path, kind, x, size in zip(
            paths,
            ["file", "link"] * 4,
            [True, False, False, True] * 2,
            [0, 1, 2**40, 7, 99, 3, 12],
            strict=False,
        )
    )
    for manifest in (Manifest(type="dir", entries=entries), Manifest(type="file", entries=entries[:1])):
        assert manifest.digest == json_digest(manifest.to_json())
    assert Manifest(type="dir", entries=()).digest == json_digest({"type": "dir", "entries": []})
