"""A real CNCF distribution registry (Debian's `docker-registry`) on 127.0.0.1, for the OCI cache tests.

Started once per test session; `stop()`/`start()` keep the storage, so a test can take it down mid-run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from services.processes import stop_process

BINARY = "docker-registry"
HTPASSWD = "htpasswd"
REGISTRY_USER = "mlpipe-test"
REGISTRY_PASSWORD = "s3cret-registry-pass"


class RegistryUnavailable(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing_tools(*, auth: bool) -> list[str]:
    tools = [BINARY, HTPASSWD] if auth else [BINARY]
    return [t for t in tools if shutil.which(t) is None]


class Registry:
    """One registry process: storage under `root`, plain HTTP on 127.0.0.1:`port`."""

    def __init__(self, root: Path, *, username: str | None = None, password: str | None = None) -> None:
        self.root = root
        self.storage = root / "storage"
        self.port = free_port()
        self.username = username
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root / "registry.log"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _config(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(exist_ok=True)
        lines = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
        ]
        if self.username is not None:
            htpasswd = self.root / "htpasswd"
            # bcrypt, the only scheme distribution accepts
            made = subprocess.run(
                [HTPASSWD, "-Bbn", self.username, self.password or ""],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            )
            htpasswd.write_text(made.stdout)
            lines += ["auth:", "  htpasswd:", "    realm: mlpipe-test", f"    path: {htpasswd}"]
        config = self.root / "config.yml"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self, timeout: float = 20.0) -> None:
        config = self._config()
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=2):
                    return
            except urllib.error.HTTPError as error:
                if error.code == 401:  # up, and asking for credentials
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        raise RegistryUnavailable(f"{BINARY} did not answer on {self.url}/v2/ within {timeout}s:\n{tail}")

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def blob_path(self, digest: str) -> Path:
        hexd = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"

    def repositories(self) -> list[str]:
        top = self.storage / "docker/registry/v2/repositories"
        if not top.exists():
            return []
        return sorted(str(p.parent.relative_to(top)) for p in top.rglob("_manifests") if p.is_dir())
