"""Steps with `image:` run in containers on a real Docker-compatible engine (podman's API service).

Every test uses the `engine` fixture, which fails the test if any container is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

IMAGE = "mlpipe-test/busybox:1"


def pipeline(steps: str) -> str:
    return f"name: c\nsteps:\n{steps}"


def test_a_container_step_sees_container_paths_its_image_env_and_read_only_code(engine, project_factory):
    project = project_factory(
        {
            "data/raw.txt": "raw data\n",
            "steps/s/tool.sh": "echo tool ran\n",
            "mlpipe.yaml": pipeline(
                "  s:\n"
                f"    image: {IMAGE}\n"
                "    code: steps/s\n"
                "    inputs: {raw: data/raw.txt}\n"
                "    outputs: {o: {}, m: {type: file}}\n"
                "    env: {STEP_VAR: 'from the step'}\n"
                "    run: |\n"
                "      sh tool.sh\n"
                "      echo pwd=$(pwd) raw=${{ inputs.raw }} o=${{ outputs.o }} m=${{ outputs.m }}\n"
                "      cat $MLPIPE_INPUT_RAW > $MLPIPE_OUTPUT_O/copy\n"
                "      env > $MLPIPE_OUTPUT_O/env\n"
                "      pwd > $MLPIPE_OUTPUT_O/pwd\n"
                "      touch /mlpipe/code/new 2>/dev/null && echo code writable || echo code read-only\n"
                "      (echo x >> ${{ inputs.raw }}) 2>/dev/null && echo input writable || echo input read-only\n"
                "      echo done > ${{ outputs.m }}\n"
            ),
        }
    )
    out = project.run("ci-run", env={"HOST_ONLY": "must not leak"}).assert_success().output
    assert "tool ran" in out
    # the log shows the code dir as a repository path, as for host steps
    assert "pwd=steps/s raw=/mlpipe/inputs/raw o=/mlpipe/outputs/o m=/mlpipe/outputs/m" in out, out
    assert "code read-only" in out
    assert "input read-only" in out
    project.run("pull", "s", "--to", "got").assert_success()
    assert (project.root / "got/o/copy").read_text() == "raw data\n"
    assert (project.root / "got/m").read_text() == "done\n"
    assert (project.root / "got/o/pwd").read_text() == "/mlpipe/code\n"
    env = dict(
        line.split("=", 1) for line in (project.root / "got/o/env").read_text().splitlines() if "=" in line
    )
    assert env["IMAGE_SAYS"] == "hello from the image"
    assert env["STEP_VAR"] == "from the step"
    assert env["MLPIPE_STEP"] == "s"
    assert env["MLPIPE_INPUT_RAW"] == "/mlpipe/inputs/raw"
    assert env["MLPIPE_OUTPUT_O"] == "/mlpipe/outputs/o"
    assert "HOST_ONLY" not in env
    assert "PYTHONPYCACHEPREFIX" not in env
    step = project.record()["steps"]["s"]
    assert step["image"] == {
        "ref": IMAGE,
        "id": engine.image_id(IMAGE),
        "digest": step["image"]["digest"],
    }
    assert step["parts"]["image"] == engine.image_id(IMAGE)


def test_env_passthrough_is_the_only_way_in_for_the_callers_variables(engine, project_factory):
    project = project_factory(
        {
            "mlpipe.yaml": pipeline(
                f"  s:\n    image: {IMAGE}\n    env-passthrough: [TOKEN]\n"
                "    run: echo token=$TOKEN other=${OTHER:-unset}\n"
            )
        }
    )
    out = project.run("ci-run", env={"TOKEN": "t0k", "OTHER": "x"}).assert_success().output
    assert "token=t0k other=unset" in out


def test_exit_code_and_log_are_kept(engine, project_factory):
    project = project_factory(
        {
            "mlpipe.yaml": pipeline(
                f"  s:\n    image: {IMAGE}\n    run: |\n      echo to stdout\n      echo to stderr >&2\n"
                "      exit 3\n"
            )
        }
    )
    out = project.run("ci-run").assert_code(1).output
    assert "to stdout" in out and "to stderr" in out
    step = project.record()["steps"]["s"]
    assert (step["status"], step["exit_code"], step["error"]) == ("failed", 3, "exited with code 3")
    log = (project.root / step["log"]).read_text()
    assert "to stdout\n" in log and "to stderr\n" in log


def test_errexit_applies_in_the_container_shell(engine, project_factory):
    project = project_factory(
        {
            "mlpipe.yaml": pipeline(
                f"  s:\n    image: {IMAGE}\n    run: |\n      false\n      echo not reached\n"
            )
        }
    )
    out = project.run("ci-run").assert_code(1).output
    assert "not reached" not in out
    assert project.record()["steps"]["s"]["exit_code"] == 1


def test_logs_stream_while_the_container_runs(engine, project_factory):
    """The first line arrives while the step still sleeps: the test then cancels the run, so the step never ends
    on its own and the line cannot have come from a log read after the container stopped."""
    project = project_factory(
        {
            "mlpipe.yaml": pipeline(
                f"  s:\n    image: {IMAGE}\n    run: echo first line; sleep 300; echo second line\n"
            )
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "mlpipe", "ci-run"],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "CI": "true", "MLPIPE_KILL_GRACE_S": "1"},
    )
    assert process.stdout is not None
    watchdog = threading.Timer(
        180, process.kill
    )  # bounded: a run that never streams is killed, and fails below
    watchdog.start()
    try:
        lines = []
        for raw in process.stdout:
            lines.append(raw)
            if b"first line" in raw:
                process.send_signal(signal.SIGINT)
                break
        rest = process.stdout.read()
        code = process.wait(timeout=120)
    finally:
        watchdog.cancel()
    assert any(b"first line" in line for line in lines), b"".join(lines)
    assert code == 130, (code, rest)
    assert b"second line" not in rest


def test_timeout_kills_the_container_and_fails_the_step(engine, project_factory):
    project = project_factory(
        {
            "mlpipe.yaml": pipeline(
                f"  s:\n    image: {IMAGE}\n    timeout-minutes: 0.05\n"
                "    run: sleep 120; touch $MLPIPE_OUTPUT_O/late\n    outputs: {o: {}}\n"
            )
        }
    )
    started = time.monotonic()
    # The step's shell waits for its `sleep`, which SIGINT and SIGTERM to the shell do not end: a 1 s grace goes
    # through the same escalation to SIGKILL as the default 10 s does, without waiting 20 s for it.
    project.run("ci-run", env={"MLPIPE_KILL_GRACE_S": "1"}).assert_code(1)
    assert time.monotonic() - started < 60
    step = project.record()["steps"]["s"]
    assert (step["status"], step["error"]) == ("failed", "timed out after 0.05 minutes")
    assert project.run("pull", "s").code != 0  # nothing stored


def test_sigint_stops_and_removes_the_container(engine, project_factory):
    project = project_factory(
        {
            "mlpipe.yaml": pipeline(
                f"  s:\n    image: {IMAGE}\n"
                "    run: trap 'echo got INT; exit 130' INT; echo step-is-up; while true; do sleep 0.2; done\n"
            )
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "mlpipe", "ci-run"],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "CI": "true"},
    )
    assert process.stdout is not None
    try:
        for raw in process.stdout:
            if b"step-is-up" in raw:
                break
        assert engine.containers(), "the step's container should be running"
        process.send_signal(signal.SIGINT)
        rest = process.stdout.read().decode()
        assert process.wait(timeout=60) != 0
    finally:
        process.kill()
    assert "got INT" in rest
    assert engine.containers() == []
    record = project.record()
    assert record["status"] == "cancelled"
    assert record["steps"]["s"]["status"] == "cancelled"


def test_a_retagged_image_reruns_the_step(engine, project_factory):
    engine.build_busybox("mlpipe-test/moving:1", env={"VERSION": "one"})
    project = project_factory(
        {
            "mlpipe.yaml": pipeline(
                "  s:\n    image: mlpipe-test/moving:1\n    run: echo $VERSION > $MLPIPE_OUTPUT_O\n"
                "    outputs: {o: {type: file}}\n"
            )
        }
    )
    project.run("ci-run").assert_success()
    first = project.record()["steps"]["s"]
    project.run("ci-run").assert_success()
    assert project.record()["steps"]["s"]["status"] == "reused"

    new_id = engine.build_busybox("mlpipe-test/moving:1", env={"VERSION": "two"})
    plan = project.run("plan").assert_success().output
    assert f"image changed: {first['image']['id']} -> sha256:{new_id.removeprefix('sha256:')}" in plan
    project.run("ci-run").assert_success()
    second = project.record()["steps"]["s"]
    assert second["status"] == "ran"
    assert second["image"]["id"] != first["image"]["id"]
    project.run("pull", "s", "--to", "got").assert_success()
    assert (project.root / "got/o").read_text() == "two\n"


def test_host_and_container_steps_mix_and_pass_outputs(engine, project_factory):
    project = project_factory(
        {
            "mlpipe.yaml": pipeline(
                "  make:\n"
                "    run: printf 'from host\\n' > ${{ outputs.d }}/a\n"
                "    outputs: {d: {}}\n"
                "  boxed:\n"
                f"    image: {IMAGE}\n"
                "    inputs: {d: '${{ steps.make.outputs.d }}'}\n"
                "    run: (cat ${{ inputs.d }}/a; echo from container) > ${{ outputs.f }}\n"
                "    outputs: {f: {type: file}}\n"
                "  back:\n"
                "    run: (cat ${{ steps.boxed.outputs.f }}; echo back on host) > ${{ outputs.f }}\n"
                "    outputs: {f: {type: file, path: result.txt}}\n"
            )
        }
    )
    project.run("ci-run").assert_success()
    assert (project.root / "result.txt").read_text() == "from host\nfrom container\nback on host\n"
    steps = project.record()["steps"]
    assert steps["make"]["image"] is None and steps["back"]["image"] is None
    assert steps["boxed"]["image"]["ref"] == IMAGE


def test_a_missing_image_that_cannot_be_pulled_is_a_clear_error(engine, project_factory):
    project = project_factory(
        {"mlpipe.yaml": pipeline("  s:\n    image: 127.0.0.1:9/nope/missing:1\n    run: 'true'\n")}
    )
    outcome = project.run("ci-run").assert_code(1)
    assert "image '127.0.0.1:9/nope/missing:1' is not on this machine and could not be pulled: " in (
        outcome.stderr
    )
    assert "Traceback" not in outcome.output
    assert not (project.root / ".mlpipe/runs").exists() or not list((project.root / ".mlpipe/runs").iterdir())


def test_an_unreachable_engine_is_a_clear_error(project_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    project = project_factory({"mlpipe.yaml": pipeline(f"  s:\n    image: {IMAGE}\n    run: 'true'\n")})
    outcome = project.run("ci-run").assert_code(1)
    assert f"cannot reach the container engine at unix://{tmp_path}/no-engine.sock: " in outcome.stderr
    assert "Traceback" not in outcome.output


def test_show_json_has_the_image(engine, project_factory):
    project = project_factory({"mlpipe.yaml": pipeline(f"  s:\n    image: {IMAGE}\n    run: 'true'\n")})
    project.run("ci-run").assert_success()
    data = json.loads(project.run("show", "--json").assert_success().stdout)
    assert data["steps"]["s"]["image"]["id"] == engine.image_id(IMAGE)
