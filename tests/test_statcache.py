"""The stat cache trusts a digest only for unchanged, non-racy files."""

from __future__ import annotations

import hashlib
import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mlpipe import digest, statcache
from mlpipe.digest import FileHasher, _Hashing, file_sha256, tree_signature, walk_files, walk_signature
from mlpipe.statcache import StatCache
from mlpipe_testing import count_file_reads, old_files

T = TypeVar("T")


def fake_stat(size: int, mtime_ns: int, ctime_ns: int = 1, ino: int = 7) -> os.stat_result:
    # st_mode, st_ino, st_dev, st_nlink, st_uid, st_gid, st_size, st_atime, st_mtime, st_ctime, then the _ns fields
    fields = (0o100644, ino, 1, 1, 0, 0, size, 0, mtime_ns // 10**9, ctime_ns // 10**9)
    extra = {"st_atime_ns": 0, "st_mtime_ns": mtime_ns, "st_ctime_ns": ctime_ns}
    return os.stat_result(fields, extra)


def traced(action: Callable[[], T]) -> tuple[T, int]:
    """What `action` returns, and the peak of memory traced while it ran."""
    tracemalloc.start()
    try:
        return action(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def opened(cache: StatCache, root: Path) -> int:
    """Open the per-file table (a lookup does) and return its stamp: the file system's clock at that moment."""
    cache.get(str(root / "nothing"), fake_stat(1, 1))
    return os.stat(cache.path.with_suffix(".sqlite")).st_mtime_ns


def test_entries_hashed_after_their_last_change_are_trusted_and_racy_ones_are_not(tmp_path: Path) -> None:
    # git's racy-clean rule: a file whose mtime is not older than a moment before it was hashed could change
    # again within the same clock tick without its stat data changing.
    cache_file = tmp_path / ".mlpipe" / "statcache.json"
    cache = StatCache(cache_file, tmp_path)
    stamp = opened(cache, tmp_path)
    old = fake_stat(10, mtime_ns=stamp - 1)
    racy = fake_stat(10, mtime_ns=stamp)
    cache.put(str(tmp_path / "old"), old, "d-old")
    cache.put(str(tmp_path / "racy"), racy, "d-racy")
    cache.save()

    reloaded = StatCache(cache_file, tmp_path)
    assert reloaded.get(str(tmp_path / "old"), old) == "d-old"
    assert reloaded.get(str(tmp_path / "racy"), racy) is None


def test_a_racy_entry_stays_untrusted_when_another_run_writes_the_table_later(tmp_path: Path) -> None:
    # Each entry keeps the stamp of the run that hashed it: a later write (another run's entries) does not make
    # it trusted, as rewriting a whole JSON table with a newer mtime did; hashing it again does.
    cache_file = tmp_path / "statcache.json"
    first = StatCache(cache_file, tmp_path)
    racy = fake_stat(10, mtime_ns=opened(first, tmp_path))
    first.put(str(tmp_path / "racy"), racy, "d-racy")
    first.save()
    time.sleep(0.05)
    later = StatCache(cache_file, tmp_path)
    assert later.get(str(tmp_path / "racy"), racy) is None
    later.put(str(tmp_path / "other"), fake_stat(1, 1), "d-other")
    later.save()
    assert StatCache(cache_file, tmp_path).get(str(tmp_path / "racy"), racy) is None
    later.put(str(tmp_path / "racy"), racy, "d-racy")  # hashed again by a run that began after its change
    later.save()
    assert StatCache(cache_file, tmp_path).get(str(tmp_path / "racy"), racy) == "d-racy"


def test_any_stat_change_is_a_miss(tmp_path: Path) -> None:
    cache_file = tmp_path / "c.json"
    cache = StatCache(cache_file, tmp_path)
    st = fake_stat(10, mtime_ns=1_000, ctime_ns=5, ino=3)
    cache.put(str(tmp_path / "f"), st, "d")
    cache.save()
    reloaded = StatCache(cache_file, tmp_path)
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
    assert not (tmp_path / "c.json").exists() and not (tmp_path / "c.sqlite").exists()


def test_a_corrupt_cache_file_means_hashing_again(tmp_path: Path) -> None:
    (tmp_path / "c.sqlite").write_bytes(b"{not a database" * 100)
    (tmp_path / "c-trees.json").write_text("{not json")
    cache = StatCache(tmp_path / "c.json", tmp_path)
    assert cache.get(str(tmp_path / "f"), fake_stat(1, 1)) is None
    assert cache.get_tree(str(tmp_path / "d"), "sig", 1) is None
    cache.put(str(tmp_path / "f"), fake_stat(1, 1), "d")  # the corrupt table was replaced by a new one
    cache.save()
    assert StatCache(tmp_path / "c.json", tmp_path).get(str(tmp_path / "f"), fake_stat(1, 1)) == "d"


def test_a_table_another_run_holds_locked_is_a_miss_and_entries_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    cache = StatCache(tmp_path / "c.json", tmp_path)
    cache.put(str(tmp_path / "f"), fake_stat(1, 1), "d")
    cache.save()
    other = sqlite3.connect(tmp_path / "c.sqlite", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(statcache._FileTable, "BUSY_MS", 50)
    try:
        locked = StatCache(tmp_path / "c.json", tmp_path)
        assert locked.get(str(tmp_path / "f"), fake_stat(1, 1)) is None
        locked.put(str(tmp_path / "g"), fake_stat(1, 1), "e")
        locked.save()
    finally:
        other.execute("ROLLBACK")
        other.close()
    after = StatCache(tmp_path / "c.json", tmp_path)
    assert after.get(str(tmp_path / "f"), fake_stat(1, 1)) == "d"


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


def test_a_tree_never_stored_is_walked_once_and_a_stored_one_is_signed_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh clone's data (issue 18): no directory digest is stored, so no signature could match; the signature
    # walk (80-90 ms on 20,000 files) is skipped and the tree is walked once, hashed as it goes, and stored.
    from mlpipe import digest as digest_module

    signed: list[str] = []
    real = digest_module._signed_walk

    def counted(top: str, keep_bytes: int) -> Any:
        signed.append(top)
        return real(top, keep_bytes)

    monkeypatch.setattr(digest_module, "_signed_walk", counted)
    data = old_files(tmp_path / "data", 30, per_dir=10)
    cache_file = tmp_path / ".mlpipe" / "statcache.json"
    first = FileHasher(StatCache(cache_file, tmp_path))
    expected = FileHasher().digest(data)
    assert first.digest(data) == expected
    assert signed == []
    first.save()

    second = FileHasher(StatCache(cache_file, tmp_path))
    assert second.digest(data) == expected
    assert signed == [str(data)]  # the stored digest is checked against a signature walk: a hit, nothing read
    assert second.signature(data) == first.signature(data)


def test_a_new_table_is_not_asked_about_each_file_and_a_filled_one_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh clone's table holds nothing, so the walk asks it nothing; once written, a changed tree is hashed
    # file by file from it again: only the changed file is read.
    read = count_file_reads(monkeypatch)
    data = old_files(tmp_path / "data", 12, per_dir=4)
    cache_file = tmp_path / ".mlpipe" / "statcache.json"
    fresh = StatCache(cache_file, tmp_path)
    assert not fresh.knows_files()
    first = FileHasher(fresh)
    digest = first.digest(data)
    assert len(read) == 12
    first.save()
    assert fresh.knows_files()  # written by this process since

    (data / "d1" / "f05").write_bytes(b"changed")
    os.utime(data / "d1" / "f05", ns=(2 * 10**9, 2 * 10**9))
    read.clear()
    again = FileHasher(StatCache(cache_file, tmp_path))
    assert again.digest(data) == FileHasher().digest(data) != digest
    assert read[0] == "f05" and len(read) == 13  # the hasher read f05; FileHasher() read all 12 to compare


def test_entries_added_from_threads_while_another_saves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hasher's pool threads and the runner's step threads add entries while the scheduler may save: the
    tables are locked, so an entry added during a save is never marked saved without being written (nor lost
    by a pool thread that writes a full batch of per-file entries meanwhile)."""
    import threading

    monkeypatch.setattr(statcache._FileTable, "PENDING", 50)
    for round_ in range(100):
        path = tmp_path / f"statcache-{round_}.json"
        cache = StatCache(path, tmp_path)
        stop = threading.Event()
        errors: list[BaseException] = []

        def add(worker: int, cache: StatCache = cache) -> None:
            for i in range(300):
                cache.put_tree(str(tmp_path / f"w{worker}" / f"d{i}"), "sig", f"sha256:{i}")
                cache.put(str(tmp_path / f"w{worker}" / f"f{i}"), fake_stat(i, 1), f"f{i}")

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
        files = [
            again.get(str(tmp_path / f"w{n}" / f"f{i}"), fake_stat(i, 1))
            for n in range(4)
            for i in range(300)
        ]
        assert files == [f"f{i}" for _n in range(4) for i in range(300)], f"round {round_}"


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


def test_recognising_an_unchanged_tree_holds_no_list_of_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Memory flat in data size (issue 18): the hit path streams the walk. Before, it held every path and
    # stat result at once, about 1 kB a file (5 MB here); now well under 1 MB whatever the number of files,
    # beyond the signature lines a walk keeps for a miss, at most FileHasher.KEEP_BYTES (made small here).
    monkeypatch.setattr(FileHasher, "KEEP_BYTES", 4096)
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
    again, peak = traced(lambda: second.digest(data))
    assert again == digest
    assert (
        second.stat_cache is not None
        and second.stat_cache.get_tree(str(data), *tree_signature(walk_files(data))) == digest
    )  # it was a hit
    assert peak < 1_000_000, peak


def test_hashing_new_files_and_a_tree_with_one_change_hold_no_table_of_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Memory flat in data size (issue 18): the per-file table was a dict loaded whole on the first lookup and
    # grown by every new file until saved, about 200 bytes an entry (0.9 MB more for the larger tree here). Now
    # entries are looked up one at a time and written in bounded batches.
    monkeypatch.setattr(_Hashing, "BATCH_FILES", 16)
    monkeypatch.setattr(statcache._FileTable, "PENDING", 64)
    # A miss keeps the walk's signature lines up to a bound (FileHasher.KEEP_BYTES), so as not to walk twice:
    # a constant, here made small so that both trees pass it and what grows beyond it would show.
    monkeypatch.setattr(FileHasher, "KEEP_BYTES", 4096)

    def digest(data: Path, cache_file: Path) -> str:
        hasher = FileHasher(StatCache(cache_file, data.parent), workers=1)
        found = hasher.digest(data)
        hasher.save()
        return found

    new, changed = [], []
    for count in (500, 5000):
        data = tmp_path / str(count) / "data"
        for i in range(count):
            part = data / f"{i // 100:02d}"  # the rows of the last few directories read are held: a constant
            part.mkdir(parents=True, exist_ok=True)
            (part / f"f{i:05d}").write_bytes(i.to_bytes(2, "big"))
        cache_file = tmp_path / str(count) / ".mlpipe" / "statcache.json"
        first, peak = traced(lambda data=data, cache_file=cache_file: digest(data, cache_file))
        new.append(peak)
        (data / "00" / "f00000").write_bytes(b"changed")
        second, peak = traced(lambda data=data, cache_file=cache_file: digest(data, cache_file))
        changed.append(peak)
        assert second != first and second == FileHasher().digest(data)
    assert new[1] - new[0] < 300_000, new
    assert changed[1] - changed[0] < 300_000, changed


def test_a_no_op_run_never_opens_the_per_file_table(tmp_path: Path) -> None:
    # The no-op stays a stat walk: an unchanged data input is recognised by its tree signature, so the per-file
    # table (and sqlite3) is not even imported. The first run hashes the data and fills the table.
    import subprocess
    import sys

    from mlpipe_testing import make_repo

    pipeline = (
        "name: demo\nsteps:\n  a:\n    code: src\n    run: ls ${{ inputs.d }} > ${{ outputs.o }}\n"
        "    inputs: {d: data}\n    outputs: {o: {type: file}}\n"
    )
    files = {f"data/{i // 50}/f{i}": f"{i}\n" for i in range(200)}
    root = make_repo(
        tmp_path / "repo", {"mlpipe.yaml": pipeline, "src/a.txt": "a\n", ".gitignore": ".mlpipe/\n", **files}
    )
    code = (
        "import os, sys\n"
        f"os.chdir({str(root)!r})\n"
        "from mlpipe.cli.main import main\n"
        "try:\n    main(['ci-run'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print('sqlite3' in sys.modules)"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    assert (root / ".mlpipe" / "statcache.sqlite").exists()
    assert [r.stdout.splitlines()[-1] for r in runs] == ["True", "False"]


WRITER = """
import os, sys
from pathlib import Path
from mlpipe.statcache import StatCache
root, name, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
cache = StatCache(root / "statcache.json", root)
st = os.stat_result((0o100644, 7, 1, 1, 0, 0, 1, 0, 0, 0), {"st_mtime_ns": 1, "st_ctime_ns": 1, "st_atime_ns": 0})
for i in range(count):
    cache.put(str(root / name / f"f{i}"), st, f"{name}{i}")
    if i % 100 == 99:
        cache.save()
        print(i, flush=True)
"""


def test_two_runs_write_the_table_at_once_and_a_killed_one_leaves_what_it_committed(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    def writer(name: str, count: int) -> subprocess.Popen[str]:
        argv = [sys.executable, "-c", WRITER, str(tmp_path), name, str(count)]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    both = [writer("a", 3000), writer("b", 3000)]
    for proc in both:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    killed = writer("k", 10**7)
    assert killed.stdout is not None
    committed = [int(killed.stdout.readline()) for _ in range(20)][-1]  # it goes on writing
    killed.send_signal(signal.SIGKILL)
    killed.wait(60)

    st = fake_stat(1, 1, 1, 7)
    cache = StatCache(tmp_path / "statcache.json", tmp_path)
    for name, count in (("a", 3000), ("b", 3000), ("k", committed + 1)):
        found = [cache.get(str(tmp_path / name / f"f{i}"), st) for i in range(count)]
        assert found == [f"{name}{i}" for i in range(count)], name
    cache.put(str(tmp_path / "after"), st, "after")
    cache.save()
    assert StatCache(tmp_path / "statcache.json", tmp_path).get(str(tmp_path / "after"), st) == "after"


def walks_of(top: Path, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A counter of listings of `top` itself (one a walk of it), from now on."""
    calls = [0]
    real = digest._listing

    def counting(directory: str, flags: int) -> tuple[list[str], list[os.stat_result]]:
        calls[0] += directory == os.fspath(top)
        return real(directory, flags)

    monkeypatch.setattr(digest, "_listing", counting)
    return calls


def odd_tree(top: Path) -> None:
    """Files before and after subdirectories, nested directories, a link, an executable, a name with a
    space and one with non-ASCII letters: every shape a run of a walk can take."""
    for rel, body in {
        "a": "a",
        "b/x": "x",
        "b/y/z": "z",
        "b/y/zz": "zz",
        "b/zzz": "zzz",
        "c d": "cd",
        "é/ü": "ü",
        "z": "z",
    }.items():
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        (top / rel).write_text(body)
    (top / "b" / "run.sh").write_text("#!/bin/sh\n")
    (top / "b" / "run.sh").chmod(0o755)
    (top / "b" / "link").symlink_to("x")


@pytest.mark.parametrize("how", ["kept", "too many to keep", "a name with a newline"])
def test_a_changed_tree_is_digested_from_one_walk_as_a_fresh_hasher_digests_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    # Issue 18: a data change walked the tree twice (the signature, then again to look each file up); now the
    # one walk's stat data is looked up and hashed, a directory at a time. The digest stays the one a hasher
    # without a stat cache takes (and the manifest's); a walk too big to keep, or lines that would not split
    # apart again, fall back to walking again.
    top = tmp_path / "data"
    odd_tree(top)
    if how == "too many to keep":
        monkeypatch.setattr(FileHasher, "KEEP_BYTES", 64)
    if how == "a name with a newline":
        (top / "b" / "new\nline").write_text("nl")
    cache_file = tmp_path / ".mlpipe" / "statcache.json"
    first = FileHasher(StatCache(cache_file, tmp_path))
    before = first.digest(top)
    assert before == FileHasher().digest(top) == FileHasher().manifest(top).digest
    first.save()
    time.sleep(0.05)  # past the racy window: the files are older than the cache
    (top / "b" / "y" / "z").write_text("changed")
    calls = walks_of(top, monkeypatch)
    read = count_file_reads(monkeypatch)
    second = FileHasher(StatCache(cache_file, tmp_path), workers=1)
    changed = second.digest(top)
    assert calls[0] == (1 if how == "kept" else 2)
    assert read == ["z"]  # the unchanged files' digests come from the stat cache
    assert changed == FileHasher().digest(top) == FileHasher().manifest(top).digest != before
    assert second.signature(top) == walk_signature(str(top))[0]


@pytest.mark.parametrize("rows", [2048, 2])
def test_looking_up_a_directory_at_once_trusts_what_looking_up_each_file_trusts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int
) -> None:
    # rows + trusted is get for each file, one query a directory (or a chunk of names, for a directory too big to
    # read whole): the same racy-clean rule, the same stat fields compared, nothing outside the workspace.
    monkeypatch.setattr(statcache._FileTable, "DIR_ROWS", rows)
    monkeypatch.setattr(statcache._FileTable, "NAMES_PER_QUERY", 2)
    cache_file = tmp_path / ".mlpipe" / "statcache.json"
    cache = StatCache(cache_file, tmp_path, exclude=tmp_path / ".mlpipe")
    stamp = opened(cache, tmp_path)
    base = fake_stat(10, mtime_ns=stamp - 1, ctime_ns=5, ino=3)
    for name in ("old", "racy", "grown", "moved", "touched", "relinked"):
        cache.put(str(tmp_path / "d" / name), base, f"digest-{name}")
    cache.put(str(tmp_path / "d" / "racy"), fake_stat(10, mtime_ns=stamp, ctime_ns=5, ino=3), "digest-racy")
    cache.save()
    files = [
        ("old", base),
        ("racy", fake_stat(10, mtime_ns=stamp, ctime_ns=5, ino=3)),
        ("grown", fake_stat(11, mtime_ns=stamp - 1, ctime_ns=5, ino=3)),
        ("moved", fake_stat(10, mtime_ns=stamp - 2, ctime_ns=5, ino=3)),
        ("touched", fake_stat(10, mtime_ns=stamp - 1, ctime_ns=6, ino=3)),
        ("relinked", fake_stat(10, mtime_ns=stamp - 1, ctime_ns=5, ino=4)),
        ("unknown", base),
    ]
    reloaded = StatCache(cache_file, tmp_path, exclude=tmp_path / ".mlpipe")
    each = [reloaded.get(str(tmp_path / "d" / name), st) for name, st in files]
    names = [name for name, _st in files]

    def many(directory: Path) -> list[str | None]:
        rows = reloaded.rows(str(directory), lambda: names)
        return [
            None if (row := rows.get(name)) is None else statcache.trusted(row, *statcache.signature(st))
            for name, st in files
        ]

    assert many(tmp_path / "d") == each == ["digest-old", *[None] * 6]
    assert many(tmp_path / ".mlpipe" / "d") == [None] * 7
    assert many(tmp_path.parent) == [None] * 7


def runs_hashed_file_by_file(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The directories (walk prefixes) whose runs a digest looks up file by file from now on (not taken whole)."""
    seen: list[str] = []
    real = FileHasher._put_run

    def counting(self: FileHasher, pipeline: Any, top: str, prefix: str, joined: bytes) -> None:
        seen.append(prefix)
        real(self, pipeline, top, prefix, joined)

    monkeypatch.setattr(FileHasher, "_put_run", counting)
    return seen


def rewrite_keeping_size_and_mtime(path: Path, body: str) -> None:
    st = path.stat()
    path.write_text(body)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("batch", [256, 2])
def test_a_miss_takes_each_unchanged_run_whole_and_looks_up_the_changed_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    # Issue 18: after one file changed, the other runs of the walk (their files' paths and stat data exactly as
    # when they were kept) are taken as their stored JSON; the digest stays the one a hasher without a cache takes.
    # The runs of odd_tree: '' [a], b/ [link, run.sh, x], b/y/ [z, zz], b/ [zzz], '' [c d, z], é/ [ü].
    monkeypatch.setattr(_Hashing, "BATCH_FILES", batch)  # 2: a run's entries come in several batches
    top = tmp_path / "data"
    odd_tree(top)
    cache_file = tmp_path / ".mlpipe" / "statcache.json"
    rounds: list[tuple[Callable[[], object], list[str]]] = [
        (lambda: None, []),  # never signed: walked and hashed as it goes
        (lambda: (top / "b" / "y" / "z").write_text("changed"), ["", "b/", "b/y/", "b/", "", "é/"]),
        (lambda: (top / "b" / "x").write_text("y"), ["b/"]),  # same size
        (lambda: rewrite_keeping_size_and_mtime(top / "b" / "zzz", "ZZZ"), ["b/"]),  # only ctime shows it
        (lambda: (top / "a").unlink(), []),  # the run is gone; the others are as kept
        (lambda: (top / "b" / "new").write_text("new"), ["b/"]),
        (lambda: (top / "0 first").write_text("first"), [""]),  # a run with a new first file
        (lambda: (top / "é" / "ü").unlink(), []),
    ]
    digests = set()
    for change, expected in rounds:
        change()
        time.sleep(0.05)  # past the racy window: the files are older than the next process's stamp
        hashed = runs_hashed_file_by_file(monkeypatch)
        hasher = FileHasher(StatCache(cache_file, tmp_path), workers=1)
        got = hasher.digest(top)
        hasher.save()
        assert got == FileHasher().digest(top) == FileHasher().manifest(top).digest
        assert hashed == expected
        digests.add(got)
    assert len(digests) == len(rounds)


def test_a_run_with_a_racy_file_is_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A file changed after the process began using the table could change again within the same clock tick
    # without a trace in its stat data: its run is looked up file by file every time until it is not racy.
    top = tmp_path / "data"
    odd_tree(top)
    cache_file = tmp_path / ".mlpipe" / "statcache.json"
    first = FileHasher(StatCache(cache_file, tmp_path))
    first.digest(top)
    first.save()
    future = time.time_ns() + 3600 * 10**9
    (top / "b" / "x").write_text("x2")
    os.utime(top / "b" / "x", ns=(future, future))
    for _ in range(2):  # the second time, nothing changed since the first
        time.sleep(0.05)
        hashed = runs_hashed_file_by_file(monkeypatch)
        hasher = FileHasher(StatCache(cache_file, tmp_path), workers=1)
        assert hasher.digest(top) == FileHasher().digest(top)
        hasher.save()
        assert "b/" in hashed
