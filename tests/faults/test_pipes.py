"""`mlpipe ci-run | head -1` and Ctrl-C of `mlpipe ci-run | tee log`: a closed or slow stdout never gives a
traceback, and the run still ends as its record says (succeeded, or cancelled with exit 130)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import fault_tally
import pytest
from crash_testing import MARKER, assert_no_traceback, wait_gone
from fsck_testing import assert_store_whole

PIPELINE = """\
name: pipes
steps:
  chatty:
    run: |
      for i in $(seq 1 3000); do echo "line $i of some output that fills a pipe quickly"; done
      touch "$MARKER_DIR/printed"
      [ -n "$STOP_AFTER_PRINTING" ] || exit 0
      sleep 60
    outputs: {o: {type: file}}
    env: {O: "${{ outputs.o }}"}
  after:
    run: echo done > ${{ outputs.o }}
    inputs: {x: "${{ steps.chatty.outputs.o }}"}
    outputs: {o: {type: file}}
"""
PIPELINE = PIPELINE.replace("      [ -n", '      echo ok > "$O"\n      [ -n')


def start(project, markers: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    token = uuid.uuid4().hex
    full = {**os.environ, "MARKER_DIR": str(markers), MARKER: token, "MLPIPE_KILL_GRACE_S": "1", **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlpipe", "ci-run", "-j", "1"],
        cwd=project.root,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return proc, token


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


@pytest.fixture
def piped(project_factory, tmp_path):
    project = project_factory({"mlpipe.yaml": PIPELINE})
    markers = tmp_path / "markers"
    markers.mkdir()
    return project, markers


def test_head_1_closes_stdout_early_and_the_run_completes_without_a_traceback(piped):
    project, markers = piped
    proc, token = start(project, markers)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `| head -1` does after its line
    stderr = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert first.startswith(b"mlpipe: run ")
    assert_no_traceback(stderr)
    assert (
        "the output was closed (its reader exited): no more progress is printed, but that alone does not "
        "stop the run; `mlpipe show` gives its summary"
    ) in stderr
    assert code == 0, stderr
    record = project.record()
    assert record["status"] == "succeeded"
    assert {n: s["status"] for n, s in record["steps"].items()} == {"chatty": "ran", "after": "ran"}
    log = project.root / record["steps"]["chatty"]["log"]
    assert log.read_text().count("\n") == 3000  # the step's log has everything the display dropped
    assert not wait_gone(token, timeout=10)
    assert_store_whole(project.root / ".mlpipe/cache")
    fault_tally.record("stdout closed or Ctrl-C while piped", runs_completed=1)


def test_sigint_to_a_run_whose_stdout_is_read_slowly_cancels_it(piped):
    project, markers = piped
    proc, token = start(project, markers, STOP_AFTER_PRINTING="1")
    assert proc.stdout is not None and proc.stderr is not None
    got: list[bytes] = []

    def slow_reader() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            got.append(line)
            time.sleep(0.002)

    reader = threading.Thread(target=slow_reader, daemon=True)
    reader.start()
    wait_for(markers / "printed")
    proc.send_signal(signal.SIGINT)
    stderr = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    reader.join(timeout=60)
    assert_no_traceback(stderr + b"".join(got).decode())
    assert code == 130, stderr
    record = project.record()
    assert record["status"] == "cancelled"
    assert record["steps"]["chatty"]["status"] == "cancelled"
    assert not wait_gone(token, timeout=10)
    assert_store_whole(project.root / ".mlpipe/cache")
    fault_tally.record("stdout closed or Ctrl-C while piped", runs_completed=1)


def test_ctrl_c_of_a_tee_pipeline_cancels_the_run_although_the_reader_is_gone(piped):
    project, markers = piped
    proc, token = start(project, markers, STOP_AFTER_PRINTING="1")
    assert proc.stdout is not None and proc.stderr is not None
    with open(markers / "log", "wb") as log:
        tee = subprocess.Popen(["tee", "/dev/null"], stdin=proc.stdout, stdout=log)
    proc.stdout.close()  # only tee reads it now
    wait_for(markers / "printed")
    # The terminal sends SIGINT to the whole foreground group: tee dies, and mlpipe's stdout with it.
    tee.send_signal(signal.SIGINT)
    tee.wait(timeout=30)
    proc.send_signal(signal.SIGINT)
    stderr = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert_no_traceback(stderr)
    assert code == 130, stderr
    assert project.record()["status"] == "cancelled"
    assert not wait_gone(token, timeout=10)
    assert_store_whole(project.root / ".mlpipe/cache")
    fault_tally.record("stdout closed or Ctrl-C while piped", runs_completed=1)
