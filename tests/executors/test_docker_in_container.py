"""mlpipe itself in a container, given the engine's socket, as on a CI runner that runs its jobs in containers.

The engine resolves bind-mount sources on its own host, so mlpipe maps the paths it sees to the host's through
its own container's mounts. Here the project sits at another path inside than on the host: a step whose
mounts were not mapped would see empty directories the engine made up.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mlpipe

IMAGE = "mlpipe-test/busybox:1"
PROJECT_INSIDE = "/ws/project"
LOGS_INSIDE = "/ws/logs"
SOCKET_INSIDE = "/run/engine.sock"


def python_mounts() -> list[tuple[Path, str]]:
    """(host path, path inside) of what this interpreter and mlpipe need, at the same paths."""
    runner = Path(mlpipe.__file__).resolve().parents[1]
    shared = [Path("/usr"), Path("/etc"), Path(sys.prefix), Path(sys.base_prefix).resolve(), runner]
    # /lib and /lib64 hold the dynamic loader; they are links into /usr on merged-/usr systems.
    libs = [(Path(top).resolve(), top) for top in ("/lib", "/lib64") if Path(top).exists()]
    return [(path, str(path)) for path in shared] + libs


def volume_args(mounts: list[tuple[Path, str, str]]) -> list[str]:
    return [arg for source, target, mode in mounts for arg in ("-v", f"{source}:{target}:{mode}")]


def run_mlpipe_inside(engine, project: Path, logs: Path) -> str:
    """`mlpipe ci-run` in a container of the engine; its exit code and output, from the logs directory."""
    mounts = [(source, target, "ro") for source, target in python_mounts()]
    mounts += [
        (project, PROJECT_INSIDE, "rw"),
        (logs, LOGS_INSIDE, "rw"),
        (engine.socket, SOCKET_INSIDE, "rw"),
    ]
    env = {
        "DOCKER_HOST": f"unix://{SOCKET_INSIDE}",
        "PYTHONPATH": str(Path(mlpipe.__file__).resolve().parents[1]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "CI": "true",
    }
    script = f'"$0" -m mlpipe ci-run > {LOGS_INSIDE}/out 2>&1; echo $? > {LOGS_INSIDE}/rc'
    engine.cli(
        "run", "--rm", "--network", "none", "--workdir", PROJECT_INSIDE,
        *volume_args(mounts), *(a for k, v in env.items() for a in ("-e", f"{k}={v}")),
        IMAGE, "/bin/sh", "-c", script, sys.executable,
        timeout=180,
    )  # fmt: skip
    return f"exit {(logs / 'rc').read_text().strip()}\n{(logs / 'out').read_text()}"


def test_mlpipe_in_a_container_mounts_host_paths_into_its_steps(engine, project_factory, tmp_path):
    project = project_factory(
        {
            "data/raw.txt": "raw data\n",
            "mlpipe.yaml": f"name: inside\nsteps:\n  s:\n    image: {IMAGE}\n"
            "    inputs: {raw: data/raw.txt}\n    outputs: {o: {}}\n"
            "    run: |\n      tr a-z A-Z < ${{ inputs.raw }} > ${{ outputs.o }}/upper\n"
            "      head -1 mlpipe.yaml > ${{ outputs.o }}/code\n",
        }
    )
    assert str(project.root) != PROJECT_INSIDE
    logs = tmp_path / "logs"
    logs.mkdir()

    out = run_mlpipe_inside(engine, project.root, logs)

    assert out.startswith("exit 0\n"), out
    project.run("pull", "s", "--to", "got").assert_success()
    assert (project.root / "got/o/upper").read_text() == "RAW DATA\n"
    assert (project.root / "got/o/code").read_text() == "name: inside\n"
    assert project.record()["steps"]["s"]["status"] == "ran"
    assert not Path(PROJECT_INSIDE).exists()  # the engine was never asked for the inside path
