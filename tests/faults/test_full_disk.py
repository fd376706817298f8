"""A store on a small tmpfs fills up while a step's outputs are stored: a clear error naming the step, the
store and its file system, no temp file left, no traceback; with space again the next run works."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import fault_tally
import pytest
from crash_testing import assert_no_traceback
from fsck_testing import assert_store_whole

from ci_testing import unavailable

PIPELINE = """\
name: full
steps:
  small:
    run: echo small > ${{ outputs.o }}
    outputs: {o: {type: file}}
  big:
    run: |
      for i in 1 2 3 4 5 6; do head -c 1048576 /dev/urandom > ${{ outputs.o }}/part$i; done
    outputs: {o: {}}
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (root only: under CI=true, which has root, this never skips)."""
    if os.getuid() != 0 or shutil.which("mount") is None:
        unavailable("the full-disk test cannot mount a tmpfs: it needs root")
    top = tmp_path / "disk"
    top.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(top)], check=True)
    try:
        yield top
    finally:
        subprocess.run(["umount", "-l", str(top)], check=False)


def temp_files(store: Path) -> list[Path]:
    found = list((store / "tmp").iterdir()) if (store / "tmp").is_dir() else []
    return found + [p for p in (store / "objects").glob("*/.*") if p.name.endswith(".tmp")]


def test_a_full_store_is_a_clear_error_and_the_next_run_works(project_factory, small_disk):
    project = project_factory({"mlpipe.yaml": PIPELINE})
    store = small_disk / "store"
    done = project.run("ci-run", "--cache", str(store)).assert_code(1)
    assert_no_traceback(done.output)
    record = project.record()
    assert record["steps"]["small"]["status"] == "ran"
    big = record["steps"]["big"]
    assert big["status"] == "failed"
    assert big["error"].startswith(
        "storing the result failed: no space left on device writing the outputs of step 'big' (o) "
        f"into the store {store} (file system {small_disk}: "
    ), big["error"]
    assert big["error"].endswith(
        "its temp files were removed. Free space there (mlpipe gc --keep-last N) or give --cache a larger disk, then rerun"
    )
    assert temp_files(store) == []
    assert_store_whole(store)

    subprocess.run(["mount", "-o", "remount,size=32m", str(small_disk)], check=True)
    project.run("ci-run", "--cache", str(store)).assert_success()
    again = project.record()
    assert {n: s["status"] for n, s in again["steps"].items()} == {"small": "reused", "big": "ran"}
    assert temp_files(store) == []
    assert_store_whole(store)
    fault_tally.record("full disk while storing outputs", runs_completed=2)
