"""Layer transfer: tar chunks streamed from the store byte-identical to tarfile's, objects written atomically."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from mlpipe.cache.layers import LayerError, ObjectKey, TarObjectSink, TarStream, tar_size, write_tar
from mlpipe.cache.local import LocalStore


def objects(tmp_path: Path, sizes: list[int]) -> list[tuple[ObjectKey, Path]]:
    found = []
    for i, size in enumerate(sizes):
        data = bytes([i % 251]) * size
        key = ObjectKey(hashlib.sha256(data).hexdigest(), i % 3 == 0)
        path = tmp_path / key.name
        path.write_bytes(data)
        found.append((key, path))
    return found


def tarfile_bytes(items: list[tuple[ObjectKey, Path]]) -> bytes:
    """What layers were built with before TarStream: the chunk digests already in registries."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.USTAR_FORMAT) as tar:
        for key, path in items:
            info = tarfile.TarInfo(key.name)
            info.size = path.stat().st_size
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            info.mode = 0o555 if key.executable else 0o444
            with open(path, "rb") as f:
                tar.addfile(info, f)
    return out.getvalue()


@pytest.mark.parametrize("sizes", [[], [0], [1, 511, 512, 513], [700_000, 3, 1 << 20] + [4000] * 300])
def test_tar_stream_is_byte_identical_to_tarfile(tmp_path, sizes) -> None:
    items = objects(tmp_path, sizes)
    stream = TarStream(items)
    expected = tarfile_bytes(items)
    assert b"".join(stream) == expected
    assert b"".join(stream) == expected  # iterated again for a retried upload
    assert len(stream) == len(expected)
    assert stream.digest() == "sha256:" + hashlib.sha256(expected).hexdigest()
    out = io.BytesIO()
    assert write_tar(items, out) == (stream.digest(), len(expected))
    assert tar_size(sizes) == len(expected)  # what a layer descriptor must declare for these objects


def test_tar_stream_refuses_an_object_that_changed_size(tmp_path) -> None:
    items = objects(tmp_path, [10])
    stream = TarStream(items)
    os.chmod(items[0][1], 0o644)
    items[0][1].write_bytes(b"longer than ten bytes")
    with pytest.raises(LayerError, match="changed size"):
        b"".join(stream)


def test_a_pulled_tar_lands_in_the_store_with_modes_and_nothing_else(tmp_path) -> None:
    (tmp_path / "src").mkdir()
    items = objects(tmp_path / "src", [5, 0, 2000])
    store = LocalStore(tmp_path / "store")
    sink = TarObjectSink([k for k, _ in items], lambda k: store.new_object(k.sha256, k.executable))
    data = tarfile_bytes(items)
    for i in range(0, len(data), 700):  # arbitrary network chunking
        sink.write(data[i : i + 700])
    sink.finish()
    for key, path in items:
        stored = store.root / "objects" / key.sha256[:2] / (key.sha256[2:] + (".x" if key.executable else ""))
        assert stored.read_bytes() == path.read_bytes()
        assert stored.stat().st_mode & 0o777 == (0o555 if key.executable else 0o444)
    assert len(list((store.root / "objects").glob("*/*"))) == len(items)  # no temp file left


def test_a_corrupt_member_leaves_no_object_and_no_temp_file(tmp_path) -> None:
    (tmp_path / "src").mkdir()
    items = objects(tmp_path / "src", [3000])
    key = items[0][0]
    data = bytearray(tarfile_bytes(items))
    data[600] ^= 0xFF  # inside the member's content
    store = LocalStore(tmp_path / "store")
    sink = TarObjectSink([key], lambda k: store.new_object(k.sha256, k.executable))
    with pytest.raises(LayerError, match="does not match its digest"):
        sink.write(bytes(data))
    sink.close()
    assert not list((store.root / "objects").glob("*/*"))  # neither the object nor its temp file


def test_a_temp_file_removed_under_the_sink_is_a_layer_error_not_a_crash(tmp_path) -> None:
    (tmp_path / "src").mkdir()
    items = objects(tmp_path / "src", [100])
    store = LocalStore(tmp_path / "store")

    def open_and_lose(key: ObjectKey):  # as `mlpipe gc` would, removing a name it does not know
        out = store.new_object(key.sha256, key.executable)
        for temp in (store.root / "objects").glob("*/.*.tmp"):
            temp.unlink()
        return out

    sink = TarObjectSink([items[0][0]], open_and_lose)
    with pytest.raises(LayerError, match="was removed while it was written"):
        sink.write(tarfile_bytes(items))
    assert not list((store.root / "objects").glob("*/*"))


def test_a_new_object_is_invisible_until_committed(tmp_path) -> None:
    store = LocalStore(tmp_path / "store")
    sha = hashlib.sha256(b"content").hexdigest()
    out = store.new_object(sha, False)
    out.write(b"content")
    target = tmp_path / "store" / "objects" / sha[:2] / sha[2:]
    assert not target.exists()
    out.commit()
    assert target.read_bytes() == b"content"
    again = store.new_object(sha, False)  # the same content a second time
    again.write(b"content")
    again.commit()
    assert target.read_bytes() == b"content"
    abandoned = store.new_object(hashlib.sha256(b"other").hexdigest(), True)
    abandoned.write(b"oth")
    abandoned.discard()
    assert [p.name for p in (tmp_path / "store" / "objects").glob("*/*")] == [sha[2:]]


def _spoiled(tmp_path: Path, spoil) -> bytes:
    (tmp_path / "src").mkdir()
    items = objects(tmp_path / "src", [100])
    data = bytearray(tarfile_bytes(items))
    spoil(data)
    data[148:156] = b"        "
    data[148:156] = b"%06o\0 " % sum(data[:512])  # a valid checksum for the spoiled header
    return bytes(data)


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda d: d.__setitem__(slice(156, 157), b"2"), "is not a regular file"),  # a symbolic link
        (lambda d: d.__setitem__(slice(156, 157), b"1"), "is not a regular file"),  # a hard link
        (
            lambda d: d.__setitem__(slice(124, 136), b"\x80" + bytes(10) + b"\x01"),
            "size is not an octal number",
        ),
        (lambda d: d.__setitem__(slice(124, 136), b"%011o\0" % 99), "of 99 bytes (the index says 100)"),
        (lambda d: d.__setitem__(slice(0, 3), b"../"), "unexpected tar member '../"),
    ],
)
def test_a_member_that_is_not_an_indexed_object_of_its_size_is_refused_before_a_byte_is_written(
    tmp_path, spoil, message
) -> None:
    data = _spoiled(tmp_path, spoil)
    key = ObjectKey.parse(tarfile_bytes(objects(tmp_path / "src", [100]))[:100].split(b"\0")[0].decode())
    store = LocalStore(tmp_path / "store")
    sink = TarObjectSink([key], lambda k: store.new_object(k.sha256, k.executable), {key: 100})
    with pytest.raises(LayerError) as info:
        sink.write(data)
    assert message in str(info.value)
    sink.close()
    assert not list((store.root / "objects").glob("*/*"))


def test_a_member_the_index_does_not_list_is_refused(tmp_path) -> None:
    (tmp_path / "src").mkdir()
    items = objects(tmp_path / "src", [100, 200])
    store = LocalStore(tmp_path / "store")
    wanted = items[0][0]
    sink = TarObjectSink([wanted], lambda k: store.new_object(k.sha256, k.executable), {wanted: 100})
    with pytest.raises(LayerError, match=r"unexpected tar member [0-9a-f]{12} of 200 bytes$"):
        sink.write(tarfile_bytes([items[1], items[0]]))


def test_a_tar_without_its_end_blocks_is_not_whole(tmp_path) -> None:
    (tmp_path / "src").mkdir()
    items = objects(tmp_path / "src", [100])
    store = LocalStore(tmp_path / "store")
    sink = TarObjectSink([items[0][0]], lambda k: store.new_object(k.sha256, k.executable))
    sink.write(tarfile_bytes(items)[:1024])  # the member, not the zero blocks after it
    with pytest.raises(LayerError, match="before its end blocks"):
        sink.finish()


@pytest.mark.parametrize("umask", [0o022, 0o277])
def test_a_new_object_has_its_mode_whatever_the_umask(tmp_path, umask) -> None:
    """The mode is chmodded only where the umask would take bits of it (read once per process: its own one)."""
    code = (
        "import hashlib, os, sys; from pathlib import Path; from mlpipe.cache.local import LocalStore\n"
        f"os.umask({umask}); store = LocalStore(Path(sys.argv[1]))\n"
        "for data, x in ((b'plain', False), (b'tool', True)):\n"
        "    out = store.new_object(hashlib.sha256(data).hexdigest(), x); out.write(data); out.commit()\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "store")], check=True, timeout=60)
    modes = {
        p.name.endswith(".x"): p.stat().st_mode & 0o777 for p in (tmp_path / "store/objects").glob("*/*")
    }
    assert modes == {False: 0o444, True: 0o555}
    assert not list((tmp_path / "store/objects").glob("*/.*"))  # no temp file left


def test_a_taken_temp_name_is_skipped_not_overwritten(tmp_path, monkeypatch) -> None:
    """Temp names come from a per-process counter; a name another writer holds is passed over (O_EXCL)."""
    import itertools

    from mlpipe.cache import local

    monkeypatch.setattr(local, "_TEMP_COUNTER", itertools.count(7))
    store = LocalStore(tmp_path / "store")
    sha = hashlib.sha256(b"content").hexdigest()
    (tmp_path / "store/objects" / sha[:2]).mkdir(parents=True)
    taken = tmp_path / "store/objects" / sha[:2] / f".{sha[2:]}.{local._TEMP_PREFIX}7.tmp"
    taken.write_bytes(b"another writer's")
    out = store.new_object(sha, False)
    out.write(b"content")
    out.commit()
    assert taken.read_bytes() == b"another writer's"
    assert (tmp_path / "store/objects" / sha[:2] / sha[2:]).read_bytes() == b"content"
