"""The local content-addressed store on real temp dirs: publish, look up, materialize, check out, indexes."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest

from mlpipe.cache import local
from mlpipe.cache.base import Published
from mlpipe.cache.local import DamagedData, LocalStore, UnstorableOutput
from mlpipe.core.results import StepResult
from mlpipe.digest import Entry, FileHasher, Manifest

FP = hashlib.sha256(b"fingerprint").hexdigest()
PARTS = {"schema": 1, "run": ["train"], "code": "1" * 40}
PROVENANCE = {"run_id": "20260101T000000000Z-aaaaaaaaaaaaaaaa", "commit": "c" * 40, "dirty": False}


def stage(top: Path, files: dict[str, bytes]) -> Path:
    for rel, content in files.items():
        path = top / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return top


def pending(fingerprint: str = FP) -> StepResult:
    """A result as the runner hands it to publish: outputs come from the staged paths."""
    return StepResult(
        fingerprint=fingerprint,
        parts=PARTS,
        outputs={},
        metrics={"scores": {"acc": 0.9}},
        provenance=PROVENANCE,
    )


def objects(store: LocalStore) -> list[Path]:
    return sorted(p for p in (store.root / "objects").rglob("*") if not p.is_dir())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "cache")


@pytest.fixture
def staged(tmp_path: Path) -> dict[str, Path]:
    """A dir output (nested, an executable, a link) and a file output."""
    model = stage(
        tmp_path / "staging/model", {"w.bin": b"weights", "sub/run.sh": b"#!/bin/sh\n", "a.txt": b"A"}
    )
    (model / "sub/run.sh").chmod(0o755)
    os.symlink("../w.bin", model / "sub/w-link")
    scores = stage(tmp_path / "staging", {"scores.json": b'{"acc": 0.9}'}) / "scores.json"
    return {"model": model, "scores": scores}


def test_publish_then_lookup_round_trips(store: LocalStore, staged: dict[str, Path]) -> None:
    expected = {name: FileHasher().manifest(path) for name, path in staged.items()}
    published = store.publish(pending(), staged)
    assert published == Published(
        result=StepResult(
            fingerprint=FP,
            parts=PARTS,
            outputs=expected,
            metrics={"scores": {"acc": 0.9}},
            provenance=PROVENANCE,
        ),
        already_stored=False,
        nondeterministic=False,
    )
    assert store.lookup(FP) == published.result
    entry = store.root / "results" / FP[:2] / f"{FP}.json"
    assert json.loads(entry.read_text()) == {"format": "mlpipe.result/1", **published.result.to_json()}
    assert list(store.results()) == [entry]
    assert store.lookup("0" * 64) is None


def test_objects_are_stored_once_read_only_and_by_exec_bit(store: LocalStore, tmp_path: Path) -> None:
    one = stage(tmp_path / "one", {"a": b"same", "b/c": b"same", "d": b"other"})
    two = stage(tmp_path / "two", {"x": b"same", "y": b"run"})
    (two / "y").chmod(0o755)
    three = stage(tmp_path, {"three": b"run"}) / "three"  # same content as y, not executable
    store.publish(pending(), {"one": one, "two": two, "three": three})
    stored = objects(store)
    sha = {data: hashlib.sha256(data).hexdigest() for data in (b"same", b"other", b"run")}
    assert [p.relative_to(store.root / "objects").as_posix() for p in stored] == sorted(
        [
            f"{sha[b'same'][:2]}/{sha[b'same'][2:]}",
            f"{sha[b'other'][:2]}/{sha[b'other'][2:]}",
            f"{sha[b'run'][:2]}/{sha[b'run'][2:]}",
            f"{sha[b'run'][:2]}/{sha[b'run'][2:]}.x",
        ]
    )
    assert {p.name: mode(p) for p in stored} == {
        sha[b"same"][2:]: 0o444,
        sha[b"other"][2:]: 0o444,
        sha[b"run"][2:]: 0o444,
        sha[b"run"][2:] + ".x": 0o555,
    }
    assert [p.read_bytes() for p in stored] == [hashlib_content(p) for p in stored]


def hashlib_content(path: Path) -> bytes:
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == path.parent.name + path.name.removesuffix(".x")
    return data


def test_publish_leaves_no_temp_files(store: LocalStore, staged: dict[str, Path]) -> None:
    store.publish(pending(), staged)
    store.publish(pending(), staged)  # the second one finds the entry already there
    store.set_latest("demo", "train", FP)
    store.save_listing("1" * 40, [["a.py", "100644", "b" * 40]])
    assert list((store.root / "tmp").iterdir()) == []


def test_the_first_complete_entry_wins(store: LocalStore, tmp_path: Path) -> None:
    first = store.publish(pending(), {"o": stage(tmp_path / "a", {"t": b"1"})})
    again = store.publish(pending(), {"o": stage(tmp_path / "b", {"t": b"1"})})
    assert again == Published(result=first.result, already_stored=True, nondeterministic=False)

    other = store.publish(
        StepResult(fingerprint=FP, parts=PARTS, outputs={}, provenance={"run_id": "later"}),
        {"o": stage(tmp_path / "c", {"t": b"2"})},
    )
    assert other == Published(result=first.result, already_stored=True, nondeterministic=True)
    assert store.lookup(FP) == first.result


def test_a_corrupt_entry_is_a_warning_and_a_miss(
    store: LocalStore, staged: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    entry = store.root / "results" / FP[:2] / f"{FP}.json"
    entry.parent.mkdir(parents=True)
    entry.write_text("{not json")
    assert store.lookup(FP) is None
    assert capsys.readouterr().err == (
        f"mlpipe: warning: ignoring corrupt cache entry {entry}: "
        "result: not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))\n"
    )

    entry.write_text('{"format": "mlpipe.result/0"}')
    assert store.lookup(FP) is None
    assert capsys.readouterr().err == (
        f"mlpipe: warning: ignoring corrupt cache entry {entry}: "
        "result.format: expected 'mlpipe.result/1', found 'mlpipe.result/0'\n"
    )

    entry.write_text('{"format": "mlpipe.result/1", "parts": {}}')
    assert store.lookup(FP) is None
    assert (
        capsys.readouterr().err
        == f"mlpipe: warning: ignoring corrupt cache entry {entry}: result: no 'fingerprint'\n"
    )

    # A publish replaces an entry that is not a complete one.
    published = store.publish(pending(), staged)
    assert published.already_stored is False
    assert store.lookup(FP) == published.result


BAD_ENTRY = {"path": "a", "kind": "file", "x": False, "size": 1, "sha256": 7}


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ([], "result: expected a JSON object, found a list"),
        (None, "result: expected a JSON object, found null"),
        (
            {"format": "mlpipe.result/1", "fingerprint": "f", "parts": {}, "outputs": []},
            "result.fingerprint: expected 64 lowercase hex characters, found 'f'",
        ),
        (
            {
                "format": "mlpipe.result/1",
                "fingerprint": FP,
                "parts": {},
                "outputs": {"o": {"type": "dir", "entries": [BAD_ENTRY]}},
            },
            "result.outputs.o.entries[0].sha256: expected 64 lowercase hex characters, found 7",
        ),
    ],
)
def test_valid_json_of_the_wrong_shape_is_a_miss_not_a_crash(
    store: LocalStore, data: object, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = store.root / "results" / FP[:2] / f"{FP}.json"
    entry.parent.mkdir(parents=True)
    entry.write_text(json.dumps(data))
    assert store.lookup(FP) is None
    assert capsys.readouterr().err == f"mlpipe: warning: ignoring corrupt cache entry {entry}: {error}\n"


def test_a_missing_object_makes_lookup_a_miss(
    store: LocalStore, staged: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    published = store.publish(pending(), staged)
    entry = next(e for e in published.result.outputs["model"].entries if e.path == "a.txt")
    store.object_path(entry).unlink()
    assert store.lookup(FP) is None
    assert capsys.readouterr().err == (
        f"mlpipe: warning: ignoring incomplete cache entry {FP[:12]}: object of 'a.txt' is missing\n"
    )
    assert store.latest("demo", "train") is None


def test_materialize_gives_shared_read_only_hard_links(store: LocalStore, staged: dict[str, Path]) -> None:
    result = store.publish(pending(), staged).result
    model = result.outputs["model"]
    path = store.materialize(model, "model")
    assert path == store.root / "materialized" / model.digest.removeprefix("sha256:") / "d"
    assert FileHasher().manifest(path) == model
    for entry in model.entries:
        target = path / entry.path
        if entry.kind == "file":
            assert target.stat().st_ino == store.object_path(entry).stat().st_ino
            assert mode(target) == (0o555 if entry.executable else 0o444)
    assert os.readlink(path / "sub/w-link") == "../w.bin"
    assert store.materialize(model, "model") == path
    assert store.materialize(model, "other-name") == path
    assert list((store.root / "tmp").iterdir()) == []


def test_materialize_a_file_under_its_output_name_and_an_alias_for_another(
    store: LocalStore, staged: dict[str, Path]
) -> None:
    scores = store.publish(pending(), staged).result.outputs["scores"]
    top = store.root / "materialized" / scores.digest.removeprefix("sha256:")
    path = store.materialize(scores, "scores")
    assert path == top / "scores"
    assert path.read_bytes() == b'{"acc": 0.9}'
    assert mode(path) == 0o444
    assert store.materialize(scores, "scores") == path
    alias = store.materialize(scores, "metrics")
    assert alias == top.parent / f"{top.name}-metrics"
    assert alias.read_bytes() == b'{"acc": 0.9}'


def test_checkout_gives_writable_copies_and_replaces_what_was_there(
    store: LocalStore, staged: dict[str, Path], tmp_path: Path
) -> None:
    result = store.publish(pending(), staged).result
    dest = stage(tmp_path / "ws/out", {"stale.txt": b"old", "a.txt": b"old"})
    store.checkout(result.outputs["model"], dest)
    assert FileHasher().manifest(dest) == result.outputs["model"]
    assert not (dest / "stale.txt").exists()
    assert {p: mode(dest / p) for p in ("a.txt", "w.bin", "sub/run.sh")} == {
        "a.txt": 0o644,
        "w.bin": 0o644,
        "sub/run.sh": 0o755,
    }
    (dest / "a.txt").write_bytes(b"edited")  # a copy: the store is untouched
    assert store.lookup(FP) == result
    assert (
        FileHasher().manifest(store.materialize(result.outputs["model"], "model")) == result.outputs["model"]
    )
    assert sorted(p.name for p in dest.parent.iterdir()) == ["out"]

    file_dest = stage(tmp_path / "ws", {"scores.json": b"old"}) / "scores.json"
    store.checkout(result.outputs["scores"], file_dest)
    assert file_dest.read_bytes() == b'{"acc": 0.9}'
    assert mode(file_dest) == 0o644
    store.checkout(result.outputs["scores"], dest)  # a file where a directory was
    assert dest.read_bytes() == b'{"acc": 0.9}'
    assert sorted(p.name for p in dest.parent.iterdir()) == ["out", "scores.json"]


def test_checkout_of_a_directory_replaces_a_file_or_a_link(
    store: LocalStore, staged: dict[str, Path], tmp_path: Path
) -> None:
    model = store.publish(pending(), staged).result.outputs["model"]
    file_dest = stage(tmp_path / "ws", {"out": b"was a file"}) / "out"
    store.checkout(model, file_dest)
    assert FileHasher().manifest(file_dest) == model
    (tmp_path / "elsewhere").mkdir()
    link_dest = tmp_path / "ws" / "linked"
    os.symlink(tmp_path / "elsewhere", link_dest)
    store.checkout(model, link_dest)
    assert not link_dest.is_symlink()
    assert FileHasher().manifest(link_dest) == model
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "ws").iterdir()) == ["linked", "out"]


def test_a_failed_checkout_leaves_the_destination_as_it_was(
    store: LocalStore, staged: dict[str, Path], tmp_path: Path
) -> None:
    model = store.publish(pending(), staged).result.outputs["model"]
    store.object_path(next(e for e in model.entries if e.path == "w.bin")).unlink()
    dest = stage(tmp_path / "ws/out", {"mine.txt": b"keep"})
    with pytest.raises(DamagedData):
        store.checkout(model, dest)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["out"]
    assert [p.name for p in dest.iterdir()] == ["mine.txt"]
    with pytest.raises(DamagedData):
        store.materialize(model, "model")
    assert not (store.root / "materialized").exists()
    assert list((store.root / "tmp").iterdir()) == []


def escaping(path: str) -> Manifest:
    return Manifest(
        type="dir",
        entries=(
            Entry(path="ok", kind="file", executable=False, size=1, sha256=hashlib.sha256(b"x").hexdigest()),
            Entry(path=path, kind="file", executable=False, size=1, sha256=hashlib.sha256(b"x").hexdigest()),
        ),
    )


@pytest.mark.parametrize("path", ["../x", "/tmp/x", "a/../../x", "a//b", "./a", "a/"])
def test_a_manifest_path_that_escapes_is_refused(store: LocalStore, tmp_path: Path, path: str) -> None:
    store.publish(pending(), {"o": stage(tmp_path / "s", {"ok": b"x"})})
    manifest = escaping(path)
    dest = tmp_path / "ws" / "out"
    with pytest.raises(ValueError) as info:
        store.checkout(manifest, dest)
    assert repr(path) in str(info.value)
    with pytest.raises(ValueError):
        store.materialize(manifest, "o")
    assert not (tmp_path / "ws" / "x").exists()
    assert not (tmp_path / "x").exists()
    assert list((tmp_path / "ws").iterdir()) == []  # no half-built checkout left behind
    assert list((store.root / "tmp").iterdir()) == []


def test_a_path_through_a_stored_link_is_refused(store: LocalStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store.publish(pending(), {"o": stage(tmp_path / "s", {"f": b"x"})})
    x = hashlib.sha256(b"x").hexdigest()
    target = hashlib.sha256(str(outside).encode()).hexdigest()
    link = store.new_object(target, False)  # as a registry pull writes it: ingest refuses such a link
    link.write(str(outside).encode())
    link.commit()
    manifest = Manifest(
        type="dir",
        entries=(
            Entry(path="escape", kind="link", executable=False, size=1, sha256=target),
            Entry(path="escape/planted", kind="file", executable=False, size=1, sha256=x),
        ),
    )
    with pytest.raises(ValueError) as info:
        store.checkout(manifest, tmp_path / "ws" / "out")
    assert str(info.value) == f"link 'escape' -> {str(outside)!r} is absolute: it points outside the tree"
    with pytest.raises(ValueError):
        store.materialize(manifest, "o")
    assert list(outside.iterdir()) == []


def test_latest_points_at_the_most_recent_result(store: LocalStore, staged: dict[str, Path]) -> None:
    assert store.latest("demo", "train") is None
    result = store.publish(pending(), staged).result
    store.set_latest("demo", "train", FP)
    assert store.latest("demo", "train") == result
    assert store.latest("demo", "other") is None
    assert store.latest("other", "train") is None
    store.set_latest("demo", "train", "0" * 64)  # overwritten; an entry that is not stored is a miss
    assert store.latest("demo", "train") is None
    pointer = store.root / "latest" / "demo" / "train.json"
    assert json.loads(pointer.read_text()) == {"fingerprint": "0" * 64}
    for corrupt in ("{oops", "[]", '{"fingerprint": 3}'):
        pointer.write_text(corrupt)
        assert store.latest("demo", "train") is None


def test_latest_names_are_made_safe_for_paths(store: LocalStore) -> None:
    store.set_latest("my pipe/../x", "a step", FP)
    assert (store.root / "latest" / "my_pipe_.._x" / "a_step.json").is_file()


def test_listings_are_written_once_and_read_back(store: LocalStore) -> None:
    tree = "ab" + "1" * 38
    assert store.listing(tree) is None
    files = [["a.py", "100644", "b" * 40], ["run.sh", "100755", "c" * 40]]
    store.save_listing(tree, files)
    assert store.listing(tree) == files
    store.save_listing(tree, [])  # a tree's listing never changes: the first is kept
    assert store.listing(tree) == files
    path = store.root / "trees" / "ab" / f"{tree}.json"
    assert json.loads(path.read_text()) == {"tree": tree, "files": files}
    for corrupt in ("{oops", "{}", "[]"):
        path.write_text(corrupt)
        assert store.listing(tree) is None


def test_a_file_reachable_elsewhere_is_copied_into_the_store_not_linked(
    store: LocalStore, tmp_path: Path
) -> None:
    # A step may hard-link a workspace file into its output: the store must not share (and chmod) that
    # inode, or a later edit of the workspace file would change a stored result.
    workspace_file = stage(tmp_path, {"data.csv": b"1,2\n"}) / "data.csv"
    out = tmp_path / "staging/o"
    out.mkdir(parents=True)
    os.link(workspace_file, out / "hard.csv")
    workspace_mode = mode(workspace_file)
    result = store.publish(pending(), {"o": out}).result
    assert mode(workspace_file) == workspace_mode
    assert workspace_file.stat().st_nlink == 2  # the workspace's name and the output's: none in the store
    workspace_file.write_bytes(b"edited")
    assert store.lookup(FP) == result
    assert store.materialize(result.outputs["o"], "o").joinpath("hard.csv").read_bytes() == b"1,2\n"


def test_an_output_that_is_a_link_is_refused_and_not_followed(store: LocalStore, tmp_path: Path) -> None:
    workspace_file = stage(tmp_path, {"data.csv": b"1,2\n"}) / "data.csv"
    (tmp_path / "staging").mkdir()
    os.symlink(workspace_file, tmp_path / "staging/linked.csv")
    workspace_mode = mode(workspace_file)
    with pytest.raises(UnstorableOutput) as info:
        store.publish(pending(), {"f": tmp_path / "staging/linked.csv"})
    assert str(info.value) == (
        f"is a symbolic link (to {str(workspace_file)!r}); write the file or directory itself, not a link to it"
    )
    assert info.value.output == "f"
    assert mode(workspace_file) == workspace_mode
    assert workspace_file.stat().st_nlink == 1
    assert store.lookup(FP) is None
    assert list((store.root / "tmp").glob("*")) == []


def many_entries(count: int) -> tuple[Entry, ...]:
    return tuple(
        Entry(path=f'd{i // 100}/é {i}"q', kind="file", executable=i % 3 == 0, size=i, sha256=f"{i:064x}")
        for i in range(count)
    )


def test_a_result_record_is_written_as_compact_sorted_json(store: LocalStore) -> None:
    # Written a chunk of entries at a time now; the bytes are json.dumps's, as before.
    single = Manifest(
        type="file", entries=(Entry(path="", kind="file", executable=False, size=1, sha256="c" * 64),)
    )
    outputs = {
        "model": single,
        "data": Manifest(type="dir", entries=many_entries(2500)),
        "empty": Manifest(type="dir", entries=()),
    }
    for result in (
        replace(pending(), outputs=outputs),
        replace(pending(hashlib.sha256(b"2").hexdigest()), outputs={}),
    ):
        store.commit_result(result)
        written = (
            store.root / "results" / result.fingerprint[:2] / f"{result.fingerprint}.json"
        ).read_bytes()
        assert written == json.dumps(result.to_json(), sort_keys=True, separators=(",", ":")).encode()
        assert StepResult.from_json(json.loads(written)) == result


def test_writing_a_result_and_taking_its_digests_hold_no_dict_per_entry(store: LocalStore) -> None:
    # Memory flat in data size (issue 18): to_json() made a dict of every entry and the whole text at once
    # (about 450 bytes an entry: 8 MB more for the larger output here), for the record and for each digest.
    # Now 1,024 entries at a time, whatever the size.
    peaks = []
    for count in (2000, 20000):
        result = replace(
            pending(hashlib.sha256(str(count).encode()).hexdigest()),
            outputs={"o": Manifest(type="dir", entries=many_entries(count))},
        )
        tracemalloc.start()
        try:
            store.commit_result(result)
            result.output_digests()
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] - peaks[0] < 300_000, peaks


def test_building_and_checking_a_farm_hold_little_per_file(tmp_path: Path, monkeypatch) -> None:
    # A farm is checked against its manifest before a step reads it, against the stat data last seen (its
    # sidecar). Both were dicts of lists by path (a farm's check 630 bytes a file traced, building one 900): now
    # a table of 5 int64s per manifest entry, the walk read beside the manifest (about 90 and under 10).
    # Files are hashed a batch at a time: batches far smaller than either count keep the batch's own memory,
    # bounded but as large as 4,096 files, out of the growth from 1,000 to 5,000 files.
    monkeypatch.setattr(local, "_HASH_BATCH", 128)
    stores, manifests = {}, {}
    for count in (1000, 5000):
        staged = stage(tmp_path / str(count), {f"{i // 500:02d}/f{i}": str(i).encode() for i in range(count)})
        stores[count] = LocalStore(tmp_path / f"cache-{count}", hasher=FileHasher(workers=1))
        manifests[count] = stores[count].ingest(staged)
    build = traced_per_file({n: lambda n=n: stores[n].materialize(manifests[n], "o") for n in (1000, 5000)})
    again = {n: LocalStore(tmp_path / f"cache-{n}", hasher=FileHasher(workers=1)) for n in (1000, 5000)}
    check = traced_per_file({n: lambda n=n: again[n].materialize(manifests[n], "o") for n in (1000, 5000)})
    assert build < 150, build
    assert check < 150, check


def test_a_farm_stat_sidecar_of_an_earlier_version_is_ignored_and_written_anew(tmp_path: Path) -> None:
    staged = stage(tmp_path / "out", {"a": b"1", "d/b": b"2"})
    store = LocalStore(tmp_path / "cache")
    manifest = store.ingest(staged)
    farm = store.materialize(manifest, "o")
    sidecar = farm.parent.parent / f"{farm.parent.name}-@stat.json"
    ino = os.lstat(farm / "a").st_ino
    # As earlier versions wrote it, with stat data that would vouch for content it does not hold.
    sidecar.write_text(json.dumps({"a": [ino, 1, 0, 0, 0o100444], "d/b": [0, 1, 0, 0, 0o100444]}))
    again = LocalStore(tmp_path / "cache")
    assert again.materialize(manifest, "o") == farm
    assert sidecar.read_bytes().startswith(b"mlpipe.farm-stat/2\n")
    handed = again.handed(farm)
    assert handed is not None and again.check_handed(handed) is None


def traced_per_file(action_for: dict[int, object]) -> float:
    """Bytes a file the traced peak of `action_for[count]()` grows by, from 1,000 to 5,000 files."""
    peaks = []
    for count in (1000, 5000):
        tracemalloc.start()
        try:
            action_for[count]()  # type: ignore[operator]
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    return (peaks[1] - peaks[0]) / 4000


def test_storing_and_reading_an_output_hold_little_per_file(tmp_path: Path) -> None:
    # Issue 18: storing an output listed every file with its temp path (343 bytes a file traced), and reading
    # its result parsed the record's JSON whole (698): now a packed list (about 90) and a stream (about 200).
    stores, staged = {}, {}
    for count in (1000, 5000):
        files = {f"{i // 500:02d}/f{i}": str(i).encode() for i in range(count)}
        staged[count] = stage(tmp_path / str(count), files)
        stores[count] = LocalStore(tmp_path / f"cache-{count}", hasher=FileHasher(workers=1))
    ingest = traced_per_file(
        {n: lambda n=n: stores[n].publish(pending(), {"o": staged[n]}) for n in (1000, 5000)}
    )
    lookup = traced_per_file({n: lambda n=n: stores[n].lookup(FP) for n in (1000, 5000)})
    assert ingest < 150, ingest
    assert lookup < 300, lookup
    assert len(present_lookup(stores[5000]).outputs["o"].entries) == 5000


def present_lookup(store: LocalStore) -> StepResult:
    result = store.lookup(FP)
    assert result is not None
    return result
