"""How steps execute: substitution is quoting, never evaluation; timeouts; parallelism; needs; the terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time

RECORD_KEYS = {
    "format",
    "run_id",
    "pipeline",
    "pipeline_file",
    "started_at",
    "ended_at",
    "status",
    "git",
    "snapshots",
    "params",
    "options",
    "steps",
    "order",
    "platform",
    "mlpipe_version",
    "ci",
}
STEP_KEYS = {
    "status",
    "fingerprint",
    "parts",
    "reasons",
    "reused_from",
    "started_at",
    "ended_at",
    "duration_s",
    "outputs",
    "metrics",
    "exit_code",
    "log",
    "error",
    "nondeterministic",
    "code",
    "tree",
    "image",
    "gpus",
    "changed_at",
}
PARTS_KEYS = {
    "schema",
    "run",
    "env",
    "params",
    "inputs",
    "upstream",
    "outputs",
    "code",
    "environment",
    "image",
    "platform",
}


def test_substituted_values_are_quoted_never_evaluated(project_factory, tmp_path):
    canary = tmp_path / "pwned"
    project = project_factory(
        {
            "mlpipe.yaml": "name: x\nparams:\n  msg: hi\nsteps:\n  s:\n"
            "    run: printf '%s' ${{ params.msg }} > ${{ outputs.o }}/said\n"
            "    env: {MSG: '${{ params.msg }}'}\n"
            "    outputs: {o: {}}\n",
        }
    )
    evil = f"a b; touch {canary}; $(touch {canary}) `touch {canary}` ${{{{ params.msg }}}}"
    project.run("ci-run", "-p", f"msg={evil}").assert_success()
    assert not canary.exists()
    project.run("pull", "s.o", "--to", "got").assert_success()
    assert (project.root / "got/o/said").read_text() == evil


def test_timeout_minutes_fails_the_step_and_stores_nothing(project_factory):
    project = project_factory(
        {
            "mlpipe.yaml": "name: x\nsteps:\n  s:\n    run: sleep 30; touch $MLPIPE_OUTPUT_O/late\n"
            "    timeout-minutes: 0.01\n    outputs: {o: {}}\n",
        }
    )
    began = time.monotonic()
    project.run("ci-run", env={"MLPIPE_KILL_GRACE_S": "1"}).assert_code(1)
    assert time.monotonic() - began < 20
    step = project.record()["steps"]["s"]
    assert step["status"] == "failed"
    assert step["error"] == "timed out after 0.01 minutes"
    assert not list((project.root / ".mlpipe/cache/results").glob("*/*.json"))


def test_independent_steps_run_in_parallel_and_jobs_limits_them(project_factory, tmp_path):
    # Each step waits for the other to have started: only a parallel run can succeed.
    wait_for_other = (
        'touch "$M/{me}"; for i in $(seq 100); do [ -e "$M/{other}" ] && exit 0; sleep 0.05; done; exit 1'
    )
    project = project_factory(
        {
            "mlpipe.yaml": "name: x\nsteps:\n"
            f"  a:\n    run: '{wait_for_other.format(me='a', other='b')}'\n"
            f"  b:\n    run: '{wait_for_other.format(me='b', other='a')}'\n",
        }
    )
    markers = tmp_path / "m"
    markers.mkdir()
    project.run("ci-run", "--jobs", "2", env={"M": str(markers)}).assert_success()
    for name in ("a", "b"):
        (markers / name).unlink()
    project.run("ci-run", "--jobs", "1", "--no-reuse", env={"M": str(markers)}).assert_code(1)


def test_needs_orders_steps_without_data(project_factory, tmp_path):
    project = project_factory(
        {
            "mlpipe.yaml": "name: x\nsteps:\n"
            '  second:\n    run: test -e "$M/first"\n    needs: first\n'
            '  first:\n    run: sleep 0.3; touch "$M/first"\n',
        }
    )
    markers = tmp_path / "m"
    markers.mkdir()
    project.run("ci-run", env={"M": str(markers)}).assert_success()
    assert list(project.record()["steps"]) == ["first", "second"]


def test_run_record_json_contract(project_factory):
    project = project_factory(
        {
            "mlpipe.yaml": "name: x\nsteps:\n  s:\n    run: echo 1 > $MLPIPE_OUTPUT_O/f\n    outputs: {o: {}}\n",
        }
    )
    project.run("ci-run").assert_success()
    record = project.record()
    assert record["format"] == "mlpipe.run/1"
    assert set(record) == RECORD_KEYS
    assert set(record["steps"]["s"]) == STEP_KEYS
    assert set(record["steps"]["s"]["parts"]) == PARTS_KEYS
    assert {"commit", "branch", "dirty", "dirty_paths", "remote", "snapshot_ref"} <= set(record["git"])
    assert record["steps"]["s"]["outputs"]["o"].startswith("sha256:")
    run_json = project.run("ci-run", "--json").assert_success().json()
    assert run_json["format"] == "mlpipe.run/1"


def test_secret_env_values_never_reach_records_or_the_store(project_factory):
    secret = "s3cr3t-token-value-123"
    project = project_factory(
        {
            "mlpipe.yaml": f"name: x\nsteps:\n  s:\n    env: {{TOKEN: {secret}}}\n"
            '    run: test -n "$TOKEN" && echo ok > $MLPIPE_OUTPUT_O/f\n    outputs: {o: {}}\n',
        }
    )
    project.run("ci-run").assert_success()
    for path in (project.root / ".mlpipe").rglob("*"):
        if path.is_file() and path.suffix == ".json":
            assert secret not in path.read_text(), path


def test_terminal_shows_a_live_status_of_the_dag(project_factory):
    project = project_factory(
        {
            "mlpipe.yaml": "name: x\nsteps:\n  first:\n    run: echo hello; sleep 0.5\n"
            "  second:\n    run: echo world\n    needs: first\n",
        }
    )
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "GITHUB_ACTIONS"}}
    env["TERM"] = "xterm"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlpipe", "ci-run"],
        cwd=project.root,
        env=env,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            data = os.read(primary, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(primary)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, screen
    assert "[first] hello" in screen
    assert "running" in screen  # the live status line of a running step
    assert "pending" in screen  # `second` waits for `first`
    assert "succeeded (2 ran)" in screen


def test_github_actions_groups_each_steps_output(project_factory):
    project = project_factory(
        {
            "mlpipe.yaml": "name: x\nsteps:\n  s:\n    run: echo inside\n  bad:\n    run: echo oops; exit 4\n",
        }
    )
    # One at a time: each step runs alone, so its output streams in its own group (tests/report/test_live_log.py
    # has steps in parallel).
    outcome = project.run("ci-run", "-j", "1", env={"GITHUB_ACTIONS": "true", "CI": "true"}).assert_code(1)
    lines = outcome.stdout.splitlines()
    start = lines.index("::group::s")
    assert lines[start + 1 : start + 3] == ["inside", "::endgroup::"]
    errors = [line for line in lines if line.startswith("::error")]
    assert errors == [
        "::error file=mlpipe.yaml,line=5,title=mlpipe%3A step bad failed::exited with code 4%0A%0Aoops"
    ]
