"""The Dockerfile's image as GitHub runs it: a `docker://` step (and a job `container:`) runs as the image's
user, with the workspace, the file-command files (GITHUB_OUTPUT, ...) and HOME bind-mounted from the runner and
owned by the runner's user, and GitHub's own workdir.

The image itself cannot be built here: its base (python:*-slim) comes from Docker Hub and the test machine is
offline. So the final stage's runtime configuration (USER, WORKDIR, ENV) is taken from the Dockerfile and put on
the local busybox test image, which runs as the runner runs a Docker action; and its ARG and LABEL lines are
built on that image with podman to check the OCI labels come out filled in.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from ci_testing import unavailable
from services.podman import TEST_IMAGE, Podman

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
FINAL_STAGE = DOCKERFILE.rsplit("\nFROM ", 1)[-1]
RUNNER_UID = 4242
"""The runner's user on the host: neither root nor the 1001 a non-root image might pick."""
STEP = (
    'set -e; echo "status=succeeded" >> "$GITHUB_OUTPUT"; mkdir -p .mlpipe/runs; echo run > .mlpipe/runs/r; '
    'mkdir -p "$HOME/.cache"; pwd'
)
"""What mlpipe does as a step: writes the workspace's .mlpipe, an output, its HOME's cache; says where it ran."""


def runtime_of(stage: str) -> tuple[str, ...]:
    """The instructions of `stage` that decide how its container runs (who, where, with what environment)."""
    return tuple(f"{m[1]} {m[2]}" for m in re.finditer(r"^(USER|WORKDIR|ENV) +(.+)$", stage, re.MULTILINE))


@pytest.fixture
def runner_dirs(tmp_path: Path) -> dict[str, Path]:
    """The runner's workspace, file-command directory and job HOME, owned by the runner's user (0755/0644)."""
    if os.geteuid() != 0:
        unavailable("these tests need root to give files to the runner's uid")
    dirs = {
        "workspace": tmp_path / "work/repo/repo",
        "file_commands": tmp_path / "_temp/_runner_file_commands",
        "home": tmp_path / "_temp/_github_home",
    }
    for path in dirs.values():
        path.mkdir(parents=True, mode=0o755)
    (dirs["file_commands"] / "set_output_1").write_text("")
    for path in [*dirs.values(), dirs["file_commands"] / "set_output_1"]:
        os.chown(path, RUNNER_UID, RUNNER_UID)
    return dirs


def run_as_a_docker_step(
    podman: Podman, image: str, dirs: dict[str, Path]
) -> subprocess.CompletedProcess[str]:
    """`docker run` as the GitHub runner runs a Docker action: no --user, its workdir, its mounts."""
    argv = podman._argv(
        "run", "--rm", "--workdir", "/github/workspace",
        "-e", "HOME=/github/home", "-e", "GITHUB_OUTPUT=/github/file_commands/set_output_1",
        "-v", f"{dirs['home']}:/github/home",
        "-v", f"{dirs['file_commands']}:/github/file_commands",
        "-v", f"{dirs['workspace']}:/github/workspace",
        "--entrypoint", "/bin/sh", image, "-c", STEP,
    )  # fmt: skip
    return subprocess.run(argv, env=podman._env(), capture_output=True, text=True, check=False, timeout=120)


def test_the_image_writes_the_workspace_outputs_and_home_as_a_docker_step(engine: Podman, runner_dirs):
    image = engine.build_busybox("mlpipe-test/runtime:dockerfile", changes=runtime_of(FINAL_STAGE))
    done = run_as_a_docker_step(engine, image, runner_dirs)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "/github/workspace"
    assert (runner_dirs["file_commands"] / "set_output_1").read_text() == "status=succeeded\n"
    assert (runner_dirs["workspace"] / ".mlpipe/runs/r").read_text() == "run\n"
    assert (runner_dirs["home"] / ".cache").is_dir()


def test_a_fixed_non_root_user_cannot_write_what_the_runner_mounts(engine: Podman, runner_dirs):
    """What `USER 1001:1001` (the image's user until now) breaks: every write a step makes."""
    assert not any(change.startswith("USER") for change in runtime_of(FINAL_STAGE))
    image = engine.build_busybox(
        "mlpipe-test/runtime:user-1001", changes=(*runtime_of(FINAL_STAGE), "USER 1001:1001")
    )
    done = run_as_a_docker_step(engine, image, runner_dirs)
    assert done.returncode != 0
    assert "Permission denied" in done.stderr
    assert (runner_dirs["file_commands"] / "set_output_1").read_text() == ""


def test_the_oci_labels_come_from_build_args(engine: Podman, tmp_path: Path):
    labelling = [
        line for line in FINAL_STAGE.replace("\\\n", " ").splitlines() if line.startswith(("ARG ", "LABEL "))
    ]
    (tmp_path / "Containerfile").write_text(f"FROM {TEST_IMAGE}\n" + "\n".join(labelling) + "\n")
    revision = "0123456789abcdef0123456789abcdef01234567"
    engine.cli(
        "build", "--pull=never", "-t", "mlpipe-test/labels:1",
        "--build-arg", "VERSION=9.8.7", "--build-arg", f"REVISION={revision}",
        "--build-arg", "SOURCE=https://github.com/o/r",
        str(tmp_path),
    )  # fmt: skip
    labels = json.loads(engine.cli("image", "inspect", "mlpipe-test/labels:1"))[0]["Labels"]
    prefix = "org.opencontainers.image."
    assert {k.removeprefix(prefix): v for k, v in labels.items() if k.startswith(prefix)} == {
        "title": "mlpipe",
        "description": "CI-native machine-learning pipeline runner",
        "licenses": "MIT",
        "version": "9.8.7",
        "revision": revision,
        "source": "https://github.com/o/r",
    }


def test_ci_builds_the_image_with_its_labels():
    import yaml

    ci = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    build = next(s for s in ci["jobs"]["image"]["steps"] if "docker/build-push-action" in s.get("uses", ""))
    args = build["with"]["build-args"].splitlines()
    assert {a.split("=", 1)[0] for a in args} == {"VERSION", "REVISION", "SOURCE"}
