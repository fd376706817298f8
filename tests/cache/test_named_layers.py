"""ORAS-named layers (cache/named.py): the layout of a result, reproducible trees that gzip and tarfile read
as ORAS clients do, and a streaming extraction that takes nothing but what the record declares."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from mlpipe.cache.layers import RAW_THRESHOLD, LayerError, ObjectKey
from mlpipe.cache.local import LocalStore
from mlpipe.cache.named import (
    NamedLayer,
    TreeSink,
    WrittenTree,
    first_of_each,
    gzip_size,
    plan_named,
    stored_gzip,
    titles_for,
    write_tree,
)
from mlpipe.digest import Entry, Manifest


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_entry(path: str, data: bytes, x: bool = False) -> Entry:
    return Entry(path=path, kind="file", executable=x, size=len(data), sha256=sha(data))


def link_entry(path: str, target: str) -> Entry:
    return Entry(path=path, kind="link", executable=False, size=len(target), sha256=sha(target.encode()))


CONTENT = {
    "a.txt": b"a\n",
    "sub/b.txt": b"b\n",
    "sub/same.txt": b"a\n",
    "run.sh": b"#!/bin/sh\n",
    "long/" + "n" * 150 + ".txt": b"long\n",
    "caf\u00e9.txt": b"accent\n",
}


def outputs() -> dict[str, Manifest]:
    entries = [file_entry(p, d, x=p == "run.sh") for p, d in CONTENT.items()]
    entries.append(link_entry("link", "sub/b.txt"))
    entries.append(
        Entry(path="big.bin", kind="file", executable=False, size=RAW_THRESHOLD + 1, sha256="e" * 64)
    )
    return {
        "data": Manifest(type="dir", entries=tuple(sorted(entries, key=lambda e: e.path))),
        "model": Manifest(type="file", entries=(file_entry("", b"weights"),)),
        "empty": Manifest(type="dir", entries=()),
    }


def test_a_result_is_one_directory_layer_per_top_level_name_and_a_layer_per_big_or_file_output() -> None:
    titles = titles_for(outputs(), {"data": "out/data", "empty": "out/empty"})
    assert titles == {"data": "out/data", "empty": "out/empty", "model": "model"}
    layers = plan_named(outputs(), titles)
    assert [(layer.kind, layer.title) for layer in layers] == [
        ("tree", "out"),
        ("file", "model"),
        ("file", "out/data/big.bin"),
    ]
    tree = layers[0]
    assert [m.path for m in tree.members if m.kind == "dir"] == [
        "out",
        "out/data",
        "out/data/long",
        "out/data/sub",
        "out/empty",
    ]
    assert {m.path for m in tree.members if m.kind != "dir"} == {f"out/data/{p}" for p in [*CONTENT, "link"]}


def test_titles_that_would_clash_fall_back_to_the_output_names() -> None:
    assert titles_for(outputs(), {"data": "model/x"}) == {"data": "data", "empty": "empty", "model": "model"}
    assert titles_for(outputs(), {"data": "x", "empty": "x"})["empty"] == "empty"


def store_with(tmp_path: Path, content: dict[str, bytes], mode: int = 0o444) -> dict[ObjectKey, Path]:
    paths = {}
    for data in [*content.values(), b"sub/b.txt"]:
        for x in (False, True):
            path = tmp_path / f"{sha(data)}{'.x' if x else ''}"
            path.write_bytes(data)
            os.chmod(path, mode)
            os.utime(path, (1, 1))
            paths[ObjectKey(sha(data), x)] = path
    return paths


def written(tree: NamedLayer, objects: dict[ObjectKey, Path]) -> tuple[bytes, WrittenTree]:
    out = io.BytesIO()
    made = write_tree(tree.members, objects.__getitem__, out)
    return out.getvalue(), made


def tree_of(tmp_path: Path, name: str, mode: int = 0o444) -> tuple[NamedLayer, bytes, WrittenTree]:
    (tmp_path / name).mkdir()
    objects = store_with(tmp_path / name, CONTENT, mode)
    (tree, *_) = plan_named(outputs(), {"data": "data", "model": "model", "empty": "empty"})
    return tree, *written(tree, objects)


def test_a_tree_layer_is_reproducible_and_reads_as_oras_clients_read_it(tmp_path) -> None:
    _, data, one = tree_of(tmp_path, "one")
    _, again, two = tree_of(tmp_path, "two", mode=0o644)  # another store: other modes and times
    assert data == again and one == two and len(data) == one.size
    digest, tar_digest = one.digest, one.tar_digest
    assert digest == "sha256:" + sha(data)
    tar = gzip.decompress(data)
    assert tar_digest == "sha256:" + sha(tar)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = {m.name: m for m in archive.getmembers()}
        assert archive.extractfile(members["data/sub/same.txt"]).read() == b"a\n"  # type: ignore[union-attr]
        assert archive.extractfile(members["data/long/" + "n" * 150 + ".txt"]).read() == b"long\n"  # type: ignore[union-attr]
        assert members["data/link"].issym() and members["data/link"].linkname == "sub/b.txt"
        assert members["data/run.sh"].mode == 0o755 and members["data/a.txt"].mode == 0o644
        assert members["data/caf\u00e9.txt"].isfile() and members["data/sub"].isdir()
        assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in members.values())


@pytest.mark.parametrize("size", [0, 1, 65534, 65535, 65536, 3 * 65535, 200_000])
def test_the_stored_gzip_is_a_gzip_of_the_declared_size(size) -> None:
    data = os.urandom(size)
    blocks = [data[i : i + 7000] for i in range(0, size, 7000)]
    made = b"".join(stored_gzip(blocks))
    assert gzip.decompress(made) == data
    assert len(made) == gzip_size(size)


def pull(tree: NamedLayer, data: bytes, store: LocalStore, step: int = 4093) -> TreeSink:
    sink = TreeSink(
        tree.members, first_of_each(outputs()), lambda k: store.new_object(k.sha256, k.executable)
    )
    for i in range(0, len(data), step):
        sink.write(data[i : i + step])
    sink.finish()
    return sink


def test_a_pulled_tree_lands_in_the_store_each_object_once(tmp_path) -> None:
    tree, data, _ = tree_of(tmp_path, "src")
    store = LocalStore(tmp_path / "store")
    pull(tree, data, store, step=1)
    for path, content in CONTENT.items():
        x = path == "run.sh"
        assert Path(store.object_file(sha(content), x)).read_bytes() == content
    assert Path(store.object_file(sha(b"sub/b.txt"), False)).read_bytes() == b"sub/b.txt"


def spoiled(data: bytes, old: bytes, new: bytes) -> bytes:
    """The tree with one part of its tar replaced, as a (real, compressed) gzip."""
    tar = gzip.decompress(data)
    assert old in tar
    return gzip.compress(tar.replace(old, new, 1))


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda d: spoiled(d, b"a\n\0", b"z\n\0"), "does not match its digest"),
        (lambda d: spoiled(d, b"data/a.txt", b"data/../xx"), "differs from its record at 'data/a.txt'"),
        (lambda d: spoiled(d, b"sub/b.txt\0", b"/etc/passw"), "differs from its record at 'data/link'"),
        (lambda d: d[: len(d) // 2], "ends before its tar does"),
        (lambda d: gzip.compress(gzip.decompress(d) + b"x"), "bytes after the end of the layer's tar"),
        (lambda d: d + b"\0", "ends before its tar does, or has bytes after its gzip stream"),
        (lambda d: gzip.decompress(d), "not a gzip stream"),
    ],
)
def test_anything_but_the_recorded_tree_is_refused_and_nothing_half_written_stays(
    tmp_path, spoil, message
) -> None:
    tree, data, _ = tree_of(tmp_path, "src")
    store = LocalStore(tmp_path / "store")
    wanted = {m.key for m in tree.members if m.key is not None}
    sink = TreeSink(
        tree.members, first_of_each(outputs()), lambda k: store.new_object(k.sha256, k.executable)
    )
    data = spoil(data)
    with pytest.raises(LayerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        try:
            for i in range(0, len(data), 4093):
                sink.write(data[i : i + 4093])
            sink.finish()
        finally:
            sink.close()
    committed = {p.parent.name + p.name for p in (tmp_path / "store/objects").rglob("*") if p.is_file()}
    assert committed <= {k.name for k in wanted}  # only whole, verified objects
    temps = [
        p
        for p in (tmp_path / "store").rglob("*")
        if p.is_file() and "objects" not in p.relative_to(tmp_path).parts
    ]
    assert temps == []


def pseudo_random(seed: str, size: int) -> bytes:
    blocks = (hashlib.sha256(f"{seed}{i}".encode()).digest() for i in range(-(-size // 32)))
    return b"".join(blocks)[:size]


GOLDEN_CONTENT = {
    "empty.bin": b"",
    "one.bin": b"1",
    "511.bin": pseudo_random("a", 511),
    "512.bin": pseudo_random("b", 512),
    "sub/70000.bin": pseudo_random("c", 70_000),
    "sub/deeper/300000.bin": pseudo_random("d", 300_000),
    "d/" + "x" * 120 + ".bin": pseudo_random("e", 1000),
}


def test_a_tree_layers_digests_are_pinned_so_every_version_makes_the_same_layer(tmp_path) -> None:
    """The same files must give the same layer on every runner and every mlpipe version (an unchanged output is
    only HEADed, and a registry holding it already is never sent it again): a change here is a format bump."""
    objects = store_with(tmp_path, GOLDEN_CONTENT)
    entries = [file_entry(p, d, x=p.startswith("sub/")) for p, d in GOLDEN_CONTENT.items()]
    entries.append(link_entry("link", "sub/70000.bin"))
    objects[ObjectKey(sha(b"sub/70000.bin"), False)] = tmp_path / "link-target"
    (tmp_path / "link-target").write_bytes(b"sub/70000.bin")
    manifest = Manifest(type="dir", entries=tuple(sorted(entries, key=lambda e: e.path)))
    (tree,) = plan_named({"out": manifest}, {"out": "out"})
    data, made = written(tree, objects)
    assert made == WrittenTree(
        digest="sha256:f267e2cd4c727b703041d825df47869a88ef26bda16559b620f0349253a1e88f",
        tar_digest="sha256:078ea5ae755e3f5212216a0286e38733aec2c48600ac87e46304b6326bffd0f6",
        size=380_981,
    )
    assert len(data) == made.size == gzip_size(len(gzip.decompress(data)))


@pytest.mark.parametrize(("path", "grow"), [("511.bin", 1), ("512.bin", -1), ("sub/deeper/300000.bin", 1)])
def test_a_file_that_changed_size_since_it_was_stored_stops_the_tree(tmp_path, path, grow) -> None:
    objects = store_with(tmp_path, GOLDEN_CONTENT)
    entries = [file_entry(p, d) for p, d in GOLDEN_CONTENT.items()]
    (tree,) = plan_named({"out": Manifest(type="dir", entries=tuple(entries))}, {"out": "out"})
    changed = objects[ObjectKey(sha(GOLDEN_CONTENT[path]), False)]
    os.chmod(changed, 0o644)
    changed.write_bytes(GOLDEN_CONTENT[path] + b"x" if grow > 0 else GOLDEN_CONTENT[path][:-1])
    with pytest.raises(LayerError, match=f"'out/{path}' changed size while it was read"):
        write_tree(tree.members, objects.__getitem__, io.BytesIO())


def members_as_sorted(
    outputs: dict[str, Manifest], titles: dict[str, str]
) -> dict[str, list[tuple[Any, ...]]]:
    """Each tree's members as the layout defines them (what plan_named held before issue 18): every entry's path
    and every directory above one, sorted as a walk gives them ('/' below every other character)."""
    trees: dict[str, dict[str, tuple[Any, ...]]] = {}
    for name, manifest in outputs.items():
        if manifest.type == "file":
            continue
        members = trees.setdefault(titles[name].split("/")[0], {})
        for path in [titles[name], *(f"{titles[name]}/{e.path}" for e in manifest.entries)]:
            parent = path.rpartition("/")[0] if path != titles[name] else path
            while parent:
                members.setdefault(parent, (parent, "dir", None, 0))
                parent = parent.rpartition("/")[0]
        for e in manifest.entries:
            if e.kind == "link" or e.size <= RAW_THRESHOLD:
                path = f"{titles[name]}/{e.path}"
                members[path] = (path, "link" if e.kind == "link" else "file", e.sha256, e.size)
    return {
        top: sorted(m.values(), key=lambda m: m[0].replace("/", "\0")) for top, m in sorted(trees.items())
    }


def test_tree_members_made_from_the_packed_entries_are_the_sorted_layout() -> None:
    # Members are now made as they are iterated, a directory as the walk enters it, instead of a dict of every
    # path sorted once: the same members, in the same order, for outputs sharing a top, directories that hold
    # only a big file, names that sort around '/', an empty output and a manifest out of walk order.
    paths = ["a-b", "a/b", "a/c/d", "a.txt", "big/only.bin", "z/y/x/w", "z/y-", "z0", "link"]
    entries = [
        Entry(
            path=p,
            kind="link" if p == "link" else "file",
            executable=False,
            size=RAW_THRESHOLD + 1 if p.endswith(".bin") else len(p),
            sha256=sha(p.encode()),
        )
        for p in paths
    ]
    walk = sorted(entries, key=lambda e: e.path.replace("/", "\0"))
    outs = {
        "a": Manifest(type="dir", entries=tuple(walk)),
        "b": Manifest(type="dir", entries=tuple(reversed(walk))),
        "c": Manifest(type="dir", entries=()),
        "d": Manifest(type="dir", entries=tuple(entries)),
        "m": Manifest(type="file", entries=(file_entry("", b"m"),)),
    }
    titles = {"a": "out/a", "b": "out/b-c/deep", "c": "out/c", "d": "data", "m": "out/m"}
    layers = plan_named(outs, titles)
    trees = {
        layer.title: [(m.path, m.kind, m.key and m.key.sha256, m.size) for m in layer.members]
        for layer in layers
        if layer.kind == "tree"
    }
    assert trees == members_as_sorted(outs, titles)
    assert list(layers[0].members) == list(layers[0].members)  # made again, the same, each time


def test_each_object_is_written_once_and_one_sha256_has_one_size() -> None:
    one, two = file_entry("a", b"1"), file_entry("b", b"2")
    outs = {
        "p": Manifest(
            type="dir", entries=(one, two, one._replace(path="c"), one._replace(path="d", executable=True))
        ),
        "q": Manifest(type="file", entries=(two._replace(path=""),)),
    }
    assert first_of_each(outs) == bytearray([1, 1, 0, 1, 0])  # p's four, then q's
    outs["q"] = Manifest(type="file", entries=(one._replace(path="", size=7),))
    with pytest.raises(LayerError, match=f"object {one.sha256[:12]} is declared with two sizes"):
        first_of_each(outs)
