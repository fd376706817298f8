"""`mlpipe fsck`: a store that runs left whole passes; each kind of damage is found and named."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

PIPELINE = """\
name: fsck
steps:
  make:
    run: |
      mkdir -p ${{ outputs.out }}/sub
      echo one > ${{ outputs.out }}/a
      echo two > ${{ outputs.out }}/sub/b
      printf '#!/bin/sh\\n' > ${{ outputs.out }}/tool && chmod +x ${{ outputs.out }}/tool
      ln -s a ${{ outputs.out }}/link
    outputs: {out: {}}
  use:
    run: cat ${{ inputs.x }}/a ${{ inputs.x }}/sub/b > ${{ outputs.f }}
    inputs: {x: "${{ steps.make.outputs.out }}"}
    outputs: {f: {type: file}}
"""


@pytest.fixture
def stored(project_factory):
    project = project_factory({"mlpipe.yaml": PIPELINE})
    project.run("ci-run").assert_success()
    return project, project.root / ".mlpipe/cache"


def fsck(project, store: Path):
    return project.run("fsck", "--cache", str(store))


def objects(store: Path) -> list[Path]:
    return sorted(p for p in (store / "objects").glob("*/*") if not p.name.startswith("."))


def test_a_store_left_by_runs_is_whole(stored):
    project, store = stored
    done = fsck(project, store).assert_success()
    assert done.stdout.strip().splitlines()[-1] == f"store is whole: {len(objects(store))} objects, 2 results"
    assert project.run("fsck").assert_success().stdout == done.stdout  # the workspace's store by default


def test_a_corrupted_object_is_found(stored):
    project, store = stored
    target = next(p for p in objects(store) if p.read_bytes() == b"one\n")
    target.chmod(0o644)
    target.write_bytes(b"One\n")
    target.chmod(0o444)
    done = fsck(project, store).assert_code(1)
    rel = target.relative_to(store)
    assert f"bad object {rel}: content hashes to " in done.stdout
    assert "Traceback" not in done.output
    assert f"error: store {store} is not whole: 2 problems (5 objects, 2 results)\n" == done.stderr
    assert "bad materialized tree materialized/" in done.stdout  # the hard link in the farm is the same file


def test_a_writable_or_wrongly_executable_object_is_found(stored):
    project, store = stored
    plain = next(p for p in objects(store) if p.read_bytes() == b"one\n")
    tool = next(p for p in objects(store) if p.name.endswith(".x"))
    plain.chmod(0o644)
    tool.chmod(0o444)
    done = fsck(project, store).assert_code(1)
    assert (
        f"bad object {plain.relative_to(store)}: writable (mode 0644); objects are read-only" in done.stdout
    )
    assert (
        f"bad object {tool.relative_to(store)}: mode 0444, but its name says an executable (mode 0555)"
        in done.stdout
    )


def test_a_deleted_object_is_found_with_the_result_that_needs_it(stored):
    project, store = stored
    target = next(p for p in objects(store) if p.read_bytes() == b"two\n")
    target.unlink()
    done = fsck(project, store).assert_code(1)
    assert f"missing object {target.relative_to(store)} of result results/" in done.stdout
    assert "(output 'out', file 'sub/b')" in done.stdout


def test_stray_temp_files_are_found(stored):
    project, store = stored
    (store / "tmp").mkdir(exist_ok=True)
    (store / "tmp/0123abcd.json").write_text("{}")
    some = objects(store)[0].parent
    (some / ".deadbeef.1234.tmp").write_bytes(b"half")
    done = fsck(project, store).assert_code(1)
    assert "stray temp tmp/0123abcd.json: left by a run that ended (mlpipe gc removes it)" in done.stdout
    assert (
        f"stray temp {some.relative_to(store)}/.deadbeef.1234.tmp: left by a write that never finished"
        in done.stdout
    )


def test_a_result_that_does_not_parse_is_found(stored):
    project, store = stored
    entry = next((store / "results").glob("*/*.json"))
    data = json.loads(entry.read_text())
    del data["outputs"]
    entry.write_text(json.dumps(data))
    done = fsck(project, store).assert_code(1)
    assert (
        f"bad result {entry.relative_to(store)}: does not parse: BadRecord(\"result: no 'outputs'\")"
        in done.stdout
    )


def test_a_materialized_file_that_is_not_its_object_is_found(stored):
    project, store = stored
    farm = next(p for p in (store / "materialized").iterdir() if (p / "d/a").exists())
    a = farm / "d/a"
    os.chmod(a.parent, stat.S_IRWXU)
    a.unlink()
    a.write_text("ONE\n")
    done = fsck(project, store).assert_code(1)
    assert (
        f"bad materialized tree {farm.relative_to(store)}: 'a' is neither its object nor of the same content"
        in done.stdout
    )


def test_a_latest_pointer_to_a_missing_result_is_only_a_warning(stored):
    project, store = stored
    pointer = next((store / "latest").glob("*/*.json"))
    pointer.write_text(json.dumps({"fingerprint": "f" * 64}))
    done = fsck(project, store).assert_success()
    assert (
        f"warning: {pointer.relative_to(store)} points to result {'f' * 64}, which is not stored"
        in done.stdout
    )


def test_no_store_is_a_usage_error(project_factory, tmp_path):
    project = project_factory({"mlpipe.yaml": PIPELINE})
    done = project.run("fsck", "--cache", str(tmp_path / "none")).assert_code(2)
    assert (
        done.stderr
        == f"error: no store at {tmp_path / 'none'}; give --cache DIR, or run where a workspace's store is\n"
    )
