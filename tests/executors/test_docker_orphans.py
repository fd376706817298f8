"""Step containers of an mlpipe process that was killed (kill -9) are removed by the next run on that host;
those of a live mlpipe process, or of another host, are left alone.

Every test uses the `engine` fixture, which fails the test if any container is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from mlpipe.executors.orphans import Owner

IMAGE = "mlpipe-test/busybox:1"
NAPPING_STEP = (
    f"name: orphans\nsteps:\n  s:\n    image: {IMAGE}\n    env-passthrough: [NAP]\n    run: sleep $NAP\n"
)


def step_containers(engine, step: str, *filters: str) -> list[str]:
    """Names of the containers of a step, running or not unless a filter says (`status=running`)."""
    wanted = [a for f in (f"label=io.mlpipe.step={step}", *filters) for a in ("--filter", f)]
    return engine.cli("ps", "-a", *wanted, "--format", "{{.Names}}").split()


def wait_for_running(engine, step: str, process: subprocess.Popen[bytes], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = step_containers(engine, step, "status=running")
        if running:
            return running[0]
        assert process.poll() is None, f"mlpipe exited {process.returncode} before its container ran"
        time.sleep(0.2)
    raise AssertionError(f"no running container for step {step} after {timeout}s")


def this_process() -> Owner:
    owner = Owner.current()
    assert owner is not None, "Linux has /proc"
    return owner


def create_container(engine, step: str, owner: Owner) -> str:
    labels = {"io.mlpipe.step": step, **owner.labels()}
    args = [a for key, value in labels.items() for a in ("--label", f"{key}={value}")]
    return engine.cli("create", *args, IMAGE, "sleep", "300").strip()


@pytest.fixture
def kept(engine) -> Iterator[list[str]]:
    """Ids of containers the test creates as someone else's; removed at the end."""
    ids: list[str] = []
    yield ids
    if ids:
        engine.cli("rm", "-f", *ids)


def test_a_killed_runs_container_is_removed_by_the_next_run_and_others_are_kept(
    engine, project_factory, kept
):
    project = project_factory({"mlpipe.yaml": NAPPING_STEP})
    killed = subprocess.Popen(
        [sys.executable, "-m", "mlpipe", "ci-run"],
        cwd=project.root,
        env={**os.environ, "CI": "true", "NAP": "300"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        orphan = wait_for_running(engine, "s", killed)
    finally:
        os.kill(killed.pid, signal.SIGKILL)  # mlpipe only: its container is not in its process group
        killed.wait(timeout=10)
    assert step_containers(engine, "s", "status=running") == [orphan]
    kept.append(create_container(engine, "live", this_process()))
    kept.append(
        create_container(engine, "elsewhere", Owner(place="another-host/boot/pid:[1]", pid=1, started="0"))
    )

    out = project.run("ci-run", env={"NAP": "0"}).assert_success().output

    assert (
        f"mlpipe: removed containers left by mlpipe processes that ended: {orphan} (step s, pid {killed.pid})\n"
        in out
    ), out
    assert step_containers(engine, "s") == []
    assert len(step_containers(engine, "live")) == len(step_containers(engine, "elsewhere")) == 1


def test_a_run_with_no_orphans_says_nothing_about_them(engine, project_factory, kept):
    kept.append(create_container(engine, "live", this_process()))
    project = project_factory({"mlpipe.yaml": NAPPING_STEP})
    out = project.run("ci-run", env={"NAP": "0"}).assert_success().output
    assert "removed containers" not in out
    assert len(step_containers(engine, "live")) == 1
