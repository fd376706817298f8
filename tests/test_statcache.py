"""The stat cache trusts a digest only for unchanged, non-racy files."""

from __future__ import annotations

import hashlib
import os
import time
import tracemalloc
from pathlib import Path

from mlpipe.digest import FileHasher, file_sha256, tree_signature, walk_files, walk_signature
from mlpipe.statcache import StatCache


def fake_stat(size: int, mtime_ns: int, ctime_ns: int = 1, ino: int = 7) -> os.stat_result:
    # st_mode, st_ino, st_dev, st_nlink, st_uid, st_gid, st_size, st_atime, st_mtime, st_ctime, then the _ns fields
    fields = (0o100644, ino, 1, 1, 0, 0, size, 0, mtime_ns // 10**9, ctime_ns // 10**9)
    extra = {"st_atime_ns": 0, "st_mtime_ns": mtime_ns, "st_ctime_ns": ctime_ns}
    return os.stat_result(fields, extra)


def written_at(cache_file: Path, ns: int, root: Path) -> StatCache:
    os.utime(cache_file, ns=(ns, ns))
    return StatCache(cache_file, root)


def test_entries_older_than_the_cache_write_are_trusted_and_racy_ones_are_not(tmp_path: Path) -> None:
    cache_file = tmp_path / ".mlpipe" / "statcache.json"
    cache = StatCache(cache_file, tmp_path)
    old = fake_stat(10, mtime_ns=1_000_000_000_000)
    racy = fake_stat(10, mtime_ns=2_000_000_000_000)
    cache.put(str(tmp_path / "old"), old, "d-old")
    cache.put(str(tmp_path / "racy"), racy, "d-racy")
    cache.save()

    reloaded = written_at(cache_file, 2_000_000_000_000, tmp_path)  # written in the same tick as `racy`
    assert reloaded.get(str(tmp_path / "old"), old) == "d-old"
    assert reloaded.get(str(tmp_path / "racy"), racy) is None


def test_any_stat_change_is_a_miss(tmp_path: Path) -> None:
    cache_file = tmp_path / "c.json"
    cache = StatCache(cache_file, tmp_path)
    st = fake_stat(10, mtime_ns=1_000, ctime_ns=5, ino=3)
    cache.put(str(tmp_path / "f"), st, "d")
    cache.save()
    reloaded = written_at(cache_file, 10**18, tmp_path)
    assert reloaded.get(str(tmp_path / "f"), st) == "d"
    for changed in (
        fake_stat(11, 1_000, 5, 3),
        fake_stat(10, 1_001, 5, 3),
        fake_stat(10, 1_000, 6, 3),
        fake_stat(10, 1_000, 5, 4),
    ):
        assert reloaded.get(str(tmp_path / "f"), changed) is None


def test_files_outside_the_workspace_or_in_its_state_are_not_cached(tmp_path: Path) -> None:
    cache = StatCache(tmp_path / "c.json", tmp_path / "ws", exclude=tmp_path / "ws" / ".mlpipe")
    st = fake_stat(1, 1)
    cache.put(str(tmp_path / "elsewhere"), st, "d")
    cache.put(str(tmp_path / "ws" / ".mlpipe" / "tmp" / "x"), st, "d")
    cache.save()
    assert not (tmp_path / "c.json").exists()


def test_a_corrupt_cache_file_means_hashing_again(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text("{not json")
    cache = StatCache(tmp_path / "c.json", tmp_path)
    assert cache.get(str(tmp_path / "f"), fake_stat(1, 1)) is None


def test_hasher_reads_a_file_only_when_its_stat_changed(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 1000)
    os.utime(data, ns=(10**9, 10**9))  # well before the cache write: not racy
    cache_file = tmp_path / ".mlpipe" / "statcache.json"
    hasher = FileHasher(StatCache(cache_file, tmp_path))
    assert hasher.hash_file(data, data.stat()) == file_sha256(data)
    hasher.save()

    trusting = FileHasher(StatCache(cache_file, tmp_path))
    assert trusting.stat_cache is not None
    assert trusting.stat_cache.get(str(data), data.stat()) == file_sha256(data)
    st = data.stat()
    trusting.stat_cache.put(str(data), st, "pretend")
    trusting.save()
    again = FileHasher(StatCache(cache_file, tmp_path))
    assert again.hash_file(data, st) == "pretend"  # served from the cache, not from the file


def test_entries_added_from_threads_while_another_saves(tmp_path: Path) -> None:
    """The hasher's pool threads and the runner's step threads add entries while the scheduler may save: the
    tables are locked, so an entry added during a save is never marked saved without being written."""
    import threading

    for round_ in range(100):
        path = tmp_path / f"statcache-{round_}.json"
        cache = StatCache(path, tmp_path)
        stop = threading.Event()
        errors: list[BaseException] = []

        def add(worker: int, cache: StatCache = cache) -> None:
            for i in range(300):
                cache.put_tree(str(tmp_path / f"w{worker}" / f"d{i}"), "sig", f"sha256:{i}")

        def save(
            cache: StatCache = cache, stop: threading.Event = stop, errors: list[BaseException] = errors
        ) -> None:
            try:
                while not stop.is_set():
                    cache.save()
            except BaseException as error:  # noqa: BLE001 - handed to the test thread
                errors.append(error)

        saver = threading.Thread(target=save)
        saver.start()
        workers = [threading.Thread(target=add, args=(n,)) for n in range(4)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join(60)
        stop.set()
        saver.join(60)
        assert errors == []
        cache.save()
        again = StatCache(path, tmp_path)
        found = [again.get_tree(str(tmp_path / f"w{n}" / "d299"), "sig", 0) for n in range(4)]
        assert found == ["sha256:299"] * 4, f"round {round_}"


def test_the_tree_signature_is_the_digest_of_the_joined_lines_as_stored_before(tmp_path: Path) -> None:
    # Fed file by file now; the bytes hashed are unchanged, so trees cached by an earlier version still match.
    for name in ("a", "b", "sub/c"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(name)
    files = list(walk_files(tmp_path))
    joined = "\n".join(
        f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\0{st.st_mode}"
        for rel, st in files
    )
    expected = hashlib.blake2b(joined.encode(), digest_size=20).hexdigest()
    assert tree_signature(iter(files)) == (expected, max(st.st_mtime_ns for _, st in files))
    assert tree_signature([]) == (hashlib.blake2b(b"", digest_size=20).hexdigest(), 0)


def test_the_one_pass_walk_signature_hashes_exactly_the_bytes_of_the_walk_and_its_signature(
    tmp_path: Path,
) -> None:
    # walk_signature batches each directory's files between its subdirectories; the bytes, and so the stored
    # keys, must be those of tree_signature(walk_files(...)): files before and after a subdirectory, nested
    # and empty directories, a link, a FIFO (skipped), a name that is not UTF-8, an empty tree.
    top = tmp_path / "top"
    for name in ("a", "b/x", "b/y/z", "c", "d/e/f", "g"):
        (top / name).parent.mkdir(parents=True, exist_ok=True)
        (top / name).write_text(name)
    (top / "empty").mkdir()
    (top / "d" / "e2").mkdir()
    (top / "link").symlink_to("a")
    os.mkfifo(top / "b" / "fifo")
    (top / os.fsdecode(b"name-\xff")).write_text("latin-1")
    files = list(walk_files(top))
    assert [rel for rel, _ in files][:3] == ["a", "b/x", "b/y/z"] and len(files) == 8
    joined = "\n".join(
        f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\0{st.st_mode}"
        for rel, st in files
    )
    expected = hashlib.blake2b(joined.encode("utf-8", "surrogateescape"), digest_size=20).hexdigest()
    newest = max(st.st_mtime_ns for _, st in files)
    assert walk_signature(str(top)) == tree_signature(walk_files(top)) == (expected, newest)
    assert walk_signature(str(top / "empty")) == tree_signature([])


def test_recognising_an_unchanged_tree_holds_no_list_of_its_files(tmp_path: Path) -> None:
    # Memory flat in data size (issue 18): the hit path streams the walk. Before, it held every path and
    # stat result at once, about 1 kB a file (5 MB here); now well under 1 MB whatever the number of files.
    data = tmp_path / "data"
    for i in range(5000):
        part = data / f"{i // 500:02d}"
        part.mkdir(parents=True, exist_ok=True)
        (part / f"f{i:05d}").write_bytes(b"x")
    cache_file = tmp_path / ".mlpipe" / "statcache.json"
    first = FileHasher(StatCache(cache_file, tmp_path))
    digest = first.digest(data)
    first.save()
    time.sleep(0.05)  # past the racy window: the files are older than the cache file
    second = FileHasher(StatCache(cache_file, tmp_path))
    tracemalloc.start()
    try:
        assert second.digest(data) == digest
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (
        second.stat_cache is not None
        and second.stat_cache.get_tree(str(data), *tree_signature(walk_files(data))) == digest
    )  # it was a hit
    assert peak < 1_000_000, peak
