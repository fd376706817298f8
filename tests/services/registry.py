"""A real CNCF distribution registry (Debian's `docker-registry`) on 127.0.0.1, for the OCI cache tests.

Started once per test session; `stop()`/`start()` keep the storage, so a test can take it down mid-run.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
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
    """One registry process: storage under `root`, plain HTTP on 127.0.0.1:`port` (HTTPS with `tls`)."""

    def __init__(
        self,
        root: Path,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: TestCA | None = None,
    ) -> None:
        self.root = root
        self.tls = tls
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
        return f"{'https' if self.tls else 'http'}://{self.host}"

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
        if self.tls is not None:
            lines += ["  tls:", f"    certificate: {self.tls.server_cert}", f"    key: {self.tls.server_key}"]
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
                context = ssl.create_default_context(cafile=str(self.tls.cert)) if self.tls else None
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=2, context=context):
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


class TestCA:
    """A private certificate authority (openssl) and a server certificate it signed for 127.0.0.1 and localhost,
    as a company CA signs an internal registry's certificate."""

    __test__ = False  # not a test class

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.cert, self.key = root / "ca.pem", root / "ca.key"
        self.server_cert, self.server_key = root / "server.pem", root / "server.key"
        extensions = root / "server.ext"
        extensions.write_text(
            "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
            "basicConstraints = critical, CA:FALSE\n"
            "keyUsage = critical, digitalSignature, keyEncipherment\n"
            "extendedKeyUsage = serverAuth\n"
            "subjectKeyIdentifier = hash\n"
            "authorityKeyIdentifier = keyid, issuer\n"
        )
        csr = root / "server.csr"
        for argv in (
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key, "-out", self.cert, "-days",
             "2", "-subj", "/CN=mlpipe test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", self.server_key, "-out", csr, "-subj",
             "/CN=127.0.0.1"],
            ["x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key, "-CAcreateserial", "-out",
             self.server_cert, "-days", "2", "-extfile", extensions],
        ):  # fmt: skip
            subprocess.run(["openssl", *map(str, argv)], capture_output=True, check=True, timeout=60)
