"""What a person at a terminal sees: the real `mlpipe` under a pseudo-terminal (a pty), as a shell runs it."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

SLOW = """\
name: slow
steps:
  slow:
    run: |
      echo go > "$MARKER_DIR/started"
      sleep 60
"""


def on_terminal(
    cwd: Path,
    args: list[str],
    *,
    env: Mapping[str, str] | None = None,
    until: Callable[[str], bool] | None = None,
    then: Callable[[subprocess.Popen[bytes]], None] | None = None,
    timeout: float = 90,
) -> tuple[int, str]:
    """Run mlpipe with a pty as its terminal (stdin, stdout, stderr); once `until(screen so far)` holds, call
    `then(process)`. The exit code and everything the terminal received."""
    primary, secondary = pty.openpty()
    full_env = {k: v for k, v in os.environ.items() if k not in {"CI", "GITHUB_ACTIONS"}}
    full_env |= {"TERM": "xterm", "COLUMNS": "200", **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlpipe", *args],
        cwd=cwd,
        env=full_env,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        start_new_session=True,  # its own process group, as a shell's foreground job
    )
    os.close(secondary)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    acted = then is None
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.2)
            if ready:
                try:
                    data = os.read(primary, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
            if not acted and until is not None and until(b"".join(chunks).decode("utf-8", "replace")):
                acted = True
                assert then is not None
                then(proc)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(primary)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_ctrl_c_says_cancelled_once_per_line(project_factory, tmp_path):
    project = project_factory({"mlpipe.yaml": SLOW})
    markers = tmp_path / "markers"
    markers.mkdir()

    code, screen = on_terminal(
        project.root,
        ["ci-run"],
        env={"MARKER_DIR": str(markers), "MLPIPE_KILL_GRACE_S": "2"},
        until=lambda _: (markers / "started").exists(),
        then=lambda proc: os.killpg(proc.pid, signal.SIGINT),  # what Ctrl-C does: the whole foreground group
    )

    assert code == 130, screen
    assert "mlpipe: slow: cancelled: stopped by SIGINT" in screen
    assert "cancelled: cancelled" not in screen
    summary = screen[screen.index(": cancelled (1 cancelled)") :]
    assert "slow  cancelled" in summary and "stopped by SIGINT" in summary
    assert project.record()["steps"]["slow"]["error"] == "stopped by SIGINT"


BIG = """\
name: big
steps:
  make:
    run: head -c 6291456 /dev/urandom > ${{ outputs.blob }}
    outputs:
      blob: {type: file}
  after:
    run: sleep 1; cat ${{ inputs.blob }} | wc -c
    inputs:
      blob: ${{ steps.make.outputs.blob }}
    reuse: false
"""


def test_registry_pushes_and_pulls_show_a_byte_meter_on_a_terminal_and_one_line_in_ci(
    project_factory, registry
):
    env = {"MLPIPE_CACHE": f"oci://{registry.host}/t/{uuid.uuid4().hex[:12]}"}
    pusher = project_factory({"mlpipe.yaml": BIG}, name="pusher")
    code, pushed = on_terminal(pusher.root, ["ci-run"], env=env)
    assert code == 0, pushed
    assert max(float(m) for m in re.findall(r"network: ↑ ([0-9.]+) MiB", pushed)) >= 6.0, pushed
    puller = project_factory({"mlpipe.yaml": BIG}, name="puller")

    code, screen = on_terminal(puller.root, ["ci-run"], env=env)

    assert code == 0, screen
    assert puller.record()["steps"]["make"]["status"] == "reused"
    meters = re.findall(r"network: ↓ ([0-9.]+) MiB", screen)
    assert meters, screen
    assert max(float(m) for m in meters) >= 6.0  # the whole 6 MiB blob, counted as it arrived
    assert re.search(r"mlpipe: cache: fetched make result \w{12} from \S+ \(1 files, 6\.0 MiB\) in", screen)

    planner = project_factory({"mlpipe.yaml": BIG}, name="planner")
    code, planned = on_terminal(planner.root, ["plan"], env=env)  # a plan's lookups fetch the result too
    assert code == 0, planned
    assert max(float(m) for m in re.findall(r"network: ↓ ([0-9.]+) MiB", planned)) >= 6.0, planned

    in_ci = project_factory({"mlpipe.yaml": BIG}, name="ci").run("ci-run", env={**env, "CI": "true"})
    assert "network:" not in in_ci.assert_success().output
    assert len(re.findall(r"mlpipe: cache: fetched make result", in_ci.stderr)) == 1
