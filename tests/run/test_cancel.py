"""Ctrl-C, SIGTERM and kill -9 during a step: nothing half-done is ever reused, and a rerun resumes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PIPELINE = """\
name: cancel
steps:
  fast:
    run: echo quick > ${{ outputs.o }}/f
    outputs: {o: {}}
  slow:
    run: |
      echo $$ > "$MARKER_DIR/slow.pid"
      echo partial > ${{ outputs.o }}/part
      [ -e "$MARKER_DIR/go" ] || sleep 60
      echo done > ${{ outputs.o }}/rest
    inputs: {x: "${{ steps.fast.outputs.o }}"}
    outputs: {o: {}}
"""

STUBBORN = """\
name: stubborn
steps:
  slow:
    run: |
      trap '' INT TERM
      echo $$ > "$MARKER_DIR/slow.pid"
      sleep 60 & wait; sleep 60 & wait
    outputs: {o: {}}
"""


def wait_for(path: Path, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear within {timeout}s")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not running any more.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def start(project, markers: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "MARKER_DIR": str(markers), "MLPIPE_KILL_GRACE_S": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "mlpipe", "ci-run", *args],
        cwd=project.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def results(project) -> list[Path]:
    return sorted((project.root / ".mlpipe/cache/results").glob("*/*.json"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_the_step_records_cancelled_and_rerun_resumes(project_factory, tmp_path, sig):
    project = project_factory({"mlpipe.yaml": PIPELINE})
    markers = tmp_path / "markers"
    markers.mkdir()
    proc = start(project, markers)
    step_pid = int(wait_for(markers / "slow.pid"))
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "stopping running steps" in output
    assert not alive(step_pid)

    record = project.record()
    assert record["status"] == "cancelled"
    assert record["steps"]["fast"]["status"] == "ran"
    assert record["steps"]["slow"]["status"] == "cancelled"
    assert len(results(project)) == 1  # only `fast`: the partial output of `slow` was not stored

    (markers / "go").touch()
    project.run("ci-run", env={"MARKER_DIR": str(markers)}).assert_success()
    again = project.record()
    assert again["steps"]["fast"]["status"] == "reused"
    assert again["steps"]["slow"]["status"] == "ran"


def test_a_step_that_ignores_sigint_and_sigterm_is_killed_after_bounded_waits(project_factory, tmp_path):
    project = project_factory({"mlpipe.yaml": STUBBORN})
    markers = tmp_path / "markers"
    markers.mkdir()
    proc = start(project, markers)
    env_pid = int(wait_for(markers / "slow.pid"))
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert time.monotonic() - began < 30  # two grace periods of 1 s, then SIGKILL; far below the sleeps
    assert not alive(env_pid)
    assert project.record()["steps"]["slow"]["status"] == "cancelled"


def test_kill_9_leaves_no_half_entry_and_a_rerun_reuses_finished_steps(project_factory, tmp_path):
    project = project_factory({"mlpipe.yaml": PIPELINE})
    markers = tmp_path / "markers"
    markers.mkdir()
    proc = start(project, markers)
    step_pid = int(wait_for(markers / "slow.pid"))
    assert project.record()["status"] == "running"  # the live run holds its lock
    proc.kill()
    proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(step_pid, signal.SIGKILL)  # the orphaned step, as a CI runner would clean up

    assert len(results(project)) == 1
    killed = project.record()
    assert killed["status"] == "interrupted"  # recorded as running, but no process holds the run any more
    assert killed["steps"]["slow"]["status"] == "running"

    (markers / "go").touch()
    project.run("ci-run", env={"MARKER_DIR": str(markers)}).assert_success()
    again = project.record()
    assert again["steps"]["fast"]["status"] == "reused"
    assert again["steps"]["slow"]["status"] == "ran"
    assert sorted(p.name for p in (project.root / ".mlpipe/cache/objects").rglob("*") if p.is_file())
