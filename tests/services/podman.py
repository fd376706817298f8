"""podman's Docker-compatible API service, for the container executor tests.

Started once per test session with its own storage, run root and containers.conf (nothing system-wide is
read or written), serving the Docker Engine API on a unix socket: `DOCKER_HOST=unix://<socket>`.
The test image is built locally from Debian's busybox-static (no image is ever pulled).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from services.processes import stop_process

BUSYBOX = Path("/bin/busybox")
TEST_IMAGE = "mlpipe-test/busybox:1"
APPLETS = (
    "sh", "ls", "cat", "id", "echo", "env", "sleep", "mkdir", "touch", "printf", "test", "true", "false",
    "stat", "wc", "head", "tr", "kill", "trap", "seq", "grep", "rm", "cp", "ulimit", "df", "readlink",
)  # fmt: skip
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:4096", "nproc=1024:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


REGISTRIES_CONF = """\
unqualified-search-registries = []

# The test registries listen on 127.0.0.1 (any port) over plain HTTP; podman refuses that unless told.
[[registry]]
location = "127.0.0.1"
insecure = true
"""


class PodmanUnavailable(Exception):
    pass


def missing_tools() -> list[str]:
    missing = [tool for tool in ("podman", "runc") if shutil.which(tool) is None]
    if not BUSYBOX.is_file():
        missing.append("busybox-static")
    return missing


class Podman:
    """One `podman system service` with private storage under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "podman.sock"
        self.conf = root / "containers.conf"
        self.registries = root / "registries.conf"
        self.log = root / "service.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "CONTAINER"))}
        env["CONTAINERS_CONF"] = str(self.conf)
        env["CONTAINERS_REGISTRIES_CONF"] = str(self.registries)
        env["TMPDIR"] = str(self.root / "tmp")
        return env

    def _argv(self, *args: str) -> list[str]:
        return [
            "podman",
            "--root", str(self.root / "storage"),
            "--runroot", str(self.root / "run"),
            "--storage-driver", "vfs",  # works nested in any container; the images are tiny
            *args,
        ]  # fmt: skip

    def cli(self, *args: str, input: bytes | None = None, timeout: float = 120) -> str:
        """Run the podman CLI on the service's storage; its stdout."""
        done = subprocess.run(
            self._argv(*args), input=input, capture_output=True, env=self._env(), timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise PodmanUnavailable(
                f"podman {' '.join(args)} exited {done.returncode}: {done.stderr.decode()}"
            )
        return done.stdout.decode()

    def start(self, timeout: float = 30.0) -> None:
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        self.conf.write_text(CONTAINERS_CONF)
        self.registries.write_text(REGISTRIES_CONF)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self._argv("system", "service", "--time=0", self.docker_host),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self.socket.exists() and self._ping():
                os.chmod(self.socket, 0o666)  # the ownership test runs mlpipe as another user
                return
            time.sleep(0.05)
        self.stop()
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        raise PodmanUnavailable(f"podman system service did not answer on {self.docker_host}:\n{tail}")

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(5)
                sock.connect(str(self.socket))
                sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
                reply = sock.recv(4096)
        except OSError:
            return False
        return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def build_busybox(
        self, ref: str = TEST_IMAGE, *, env: dict[str, str] | None = None, changes: tuple[str, ...] = ()
    ) -> str:
        """An image holding busybox and its applets, imported from a rootfs, with Dockerfile instructions
        `changes` (USER, WORKDIR, ...) applied to its configuration; its id."""
        rootfs = self.root / f"rootfs-{len(list(self.root.glob('rootfs-*')))}"
        (rootfs / "bin").mkdir(parents=True)
        (rootfs / "tmp").mkdir(mode=0o1777)
        os.chmod(rootfs / "tmp", 0o1777)
        shutil.copy2(BUSYBOX, rootfs / "bin/busybox")
        for applet in APPLETS:
            (rootfs / "bin" / applet).symlink_to("busybox")
        tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True)
        image_env = {"PATH": "/bin", "IMAGE_SAYS": "hello from the image", **(env or {})}
        changes = (*(f"ENV {k}={v}" for k, v in image_env.items()), *changes)
        args = [a for change in changes for a in ("--change", change)]
        return self.cli("import", *args, "-", ref, input=tar.stdout).strip()

    def image_id(self, ref: str) -> str:
        """`sha256:<config digest>`, as the Docker API says it."""
        found = str(json.loads(self.cli("image", "inspect", ref))[0]["Id"])
        return found if found.startswith("sha256:") else f"sha256:{found}"

    def containers(self) -> list[str]:
        """Every container, running or not: names and labels, for the no-container-left-behind checks."""
        out = self.cli("ps", "-a", "--format", "{{.Names}} {{.Labels}}")
        return [line for line in out.splitlines() if line.strip()]

    def remove_all_containers(self) -> None:
        self.cli("rm", "-af")
