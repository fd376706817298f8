"""GPU scheduling through the real CLI, with a stand-in nvidia-smi (tests/bin) reporting FAKE_GPUS devices."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from services.docker_proxy import DockerProxy

FAKE_BIN = Path(__file__).parents[1] / "bin"
FAKE = {"index": "0", "name": "NVIDIA Fake H100 80GB HBM3", "memory_mib": 81559, "driver": "550.54.15"}


@pytest.fixture
def fake_gpus(monkeypatch):
    monkeypatch.setenv("PATH", f"{FAKE_BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GPUS", "4")


def gpu_step(name: str, gpus: int, extra: str = "") -> str:
    return (
        f"  {name}:\n    resources: {{gpus: {gpus}}}\n"
        f"    run: echo $CUDA_VISIBLE_DEVICES > ${{{{ outputs.seen }}}}; sleep 2; echo {name}\n"
        f"    outputs: {{seen: {{type: file}}}}\n{extra}"
    )


def test_parallel_steps_get_disjoint_gpus_and_wait_when_none_are_free(fake_gpus, project_factory):
    project = project_factory(
        {"mlpipe.yaml": "name: g\nsteps:\n" + gpu_step("a", 2) + gpu_step("b", 2) + gpu_step("c", 3)}
    )
    project.run("ci-run", "-j", "3").assert_success()
    steps = project.record()["steps"]
    seen = {}
    for name in "abc":
        project.run("pull", f"{name}.seen", "--to", name).assert_success()
        seen[name] = (project.root / name / "seen").read_text().strip()
        assert seen[name] == ",".join(g["index"] for g in steps[name]["gpus"])
    assert {seen["a"], seen["b"]} == {"0,1", "2,3"}
    # c needs 3 of the 4: it waits for both a and b to give theirs back
    assert steps["c"]["started_at"] >= max(steps["a"]["ended_at"], steps["b"]["ended_at"])
    assert len(seen["c"].split(",")) == 3
    assert steps["a"]["gpus"][0] == FAKE | {"index": steps["a"]["gpus"][0]["index"]}


def test_mlpipe_gpus_restricts_the_devices(fake_gpus, project_factory, monkeypatch):
    monkeypatch.setenv("MLPIPE_GPUS", "3")
    project = project_factory({"mlpipe.yaml": "name: g\nsteps:\n" + gpu_step("a", 1)})
    project.run("ci-run").assert_success()
    assert project.record()["steps"]["a"]["gpus"] == [FAKE | {"index": "3"}]


def test_a_step_needing_more_gpus_than_the_runner_has_fails_at_plan_time(fake_gpus, project_factory):
    project = project_factory(
        {"mlpipe.yaml": "name: g\nsteps:\n" + gpu_step("small", 1) + gpu_step("huge", 8)}
    )
    message = (
        "step 'huge' needs 8 GPUs, and this runner has 4 (GPU 0: NVIDIA Fake H100 80GB HBM3 81559 MiB; "
        "GPU 1: NVIDIA Fake H100 80GB HBM3 81559 MiB; GPU 2: NVIDIA Fake H100 80GB HBM3 81559 MiB; "
        "GPU 3: NVIDIA Fake H100 80GB HBM3 81559 MiB); run it on a runner with more GPUs, "
        "or lower its resources.gpus"
    )
    for command in ("plan", "ci-run"):
        outcome = project.run(command).assert_code(1)
        assert outcome.stderr == f"error: {message}\n", outcome.output
    assert not (project.root / ".mlpipe/runs").exists()
    project.run("ci-run", "--only", "small").assert_success()  # a selection without it runs


def test_a_runner_without_gpus_fails_at_plan_time(project_factory, tmp_path, monkeypatch):
    project = project_factory({"mlpipe.yaml": "name: g\nsteps:\n" + gpu_step("a", 1)})
    # A PATH with only what mlpipe needs here, so the test runs even where a real nvidia-smi is installed.
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("git", "sh"):
        found = shutil.which(name)
        assert found is not None, f"{name} is needed"
        (tools / name).symlink_to(found)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{Path(sys.executable).parent}")
    assert shutil.which("nvidia-smi") is None
    outcome = project.run("ci-run").assert_code(1)
    assert "step 'a' needs 1 GPU, and this runner has none (no nvidia-smi on PATH)" in outcome.stderr


def test_runs_on_labels_the_runner_lacks_skip_the_step_and_fail_the_run(project_factory, monkeypatch):
    monkeypatch.setenv("MLPIPE_RUNNER_LABELS", "linux,cpu")
    project = project_factory(
        {
            "mlpipe.yaml": "name: g\nsteps:\n"
            "  prep:\n    runs-on: [linux]\n    run: echo p > ${{ outputs.o }}\n    outputs: {o: {type: file}}\n"
            "  train:\n    runs-on: [linux, gpu]\n    run: cat ${{ inputs.p }}\n    inputs: {p: '${{ steps.prep.outputs.o }}'}\n"
            "  report:\n    needs: [train]\n    run: 'true'\n"
        }
    )
    outcome = project.run("ci-run").assert_code(1)
    steps = project.record()["steps"]
    assert steps["prep"]["status"] == "ran"
    assert (steps["train"]["status"], steps["train"]["error"]) == (
        "skipped",
        (
            "runs-on: this runner lacks gpu (its labels: cpu, linux, from MLPIPE_RUNNER_LABELS); run this step "
            "on a runner with those labels, or add them to MLPIPE_RUNNER_LABELS"
        ),
    )
    assert steps["report"]["status"] == "skipped"
    assert "runs-on: this runner lacks gpu" in outcome.output
    # on a runner with the label it runs; back on the CPU runner the stored result is reused, not refused
    project.run("ci-run", env={"MLPIPE_RUNNER_LABELS": "linux,gpu"}).assert_success()
    project.run("ci-run").assert_success()
    assert project.record()["steps"]["train"]["status"] == "reused"


def test_without_known_labels_runs_on_is_not_checked(project_factory):
    project = project_factory({"mlpipe.yaml": "name: g\nsteps:\n  s:\n    runs-on: [gpu]\n    run: 'true'\n"})
    project.run("ci-run").assert_success()


def test_a_container_step_gets_its_gpus_as_device_requests(
    engine, fake_gpus, project_factory, tmp_path, monkeypatch
):
    with DockerProxy(tmp_path / "proxy.sock", engine.socket) as proxy:
        monkeypatch.setenv("DOCKER_HOST", proxy.docker_host)
        project = project_factory(
            {
                "mlpipe.yaml": "name: g\nsteps:\n"
                "  hold:\n    resources: {gpus: 1}\n    run: sleep 3\n"
                "  boxed:\n    image: mlpipe-test/busybox:1\n    resources: {gpus: 2}\n"
                "    run: echo cuda=${CUDA_VISIBLE_DEVICES:-unset}\n"
            }
        )
        out = project.run("ci-run", "-j", "2").assert_success().output
    assert "cuda=unset" in out  # the engine exposes exactly the devices; no renumbering to undo
    (body,) = proxy.created()
    assert body["HostConfig"]["DeviceRequests"] == [
        {"Driver": "", "Count": 0, "DeviceIDs": ["1", "2"], "Capabilities": [["gpu"]], "Options": {}}
    ]
    assert body["User"] == f"{os.getuid()}:{os.getgid()}"
    assert project.record()["steps"]["boxed"]["gpus"] == [FAKE | {"index": "1"}, FAKE | {"index": "2"}]
