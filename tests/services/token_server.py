"""A token service for the registry's `auth: token`, the flow ghcr.io and Docker Hub use, on 127.0.0.1.

The registry answers 401 with `WWW-Authenticate: Bearer realm=...,service=...,scope=...`; the client GETs the
realm with basic credentials and the scopes, and gets `{"token": JWT}`. Tokens are RS256 JWTs whose header
carries the signing certificate (`x5c`); that self-signed certificate is the registry's `rootcertbundle`.
Keys and signatures come from the `openssl` command, so the tests need no crypto package.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from services.local_http import LocalHTTPServer
from services.registry import Registry

OPENSSL = "openssl"
SERVICE = "mlpipe-test-registry"
ISSUER = "mlpipe-test-token-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Grant:
    user: str
    scopes: tuple[str, ...]
    """The scopes the client asked for."""
    access: tuple[tuple[str, tuple[str, ...]], ...]
    """(repository, actions) granted."""


class TokenServer:
    """Users are name -> (password, the actions they may have on any repository)."""

    def __init__(self, root: Path, users: dict[str, tuple[str, frozenset[str]]]) -> None:
        self.root = root
        self.users = users
        self.grants: list[Grant] = []
        self.refused = 0
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)
        self.key = root / "token-key.pem"
        self.cert = root / "token-cert.pem"
        request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=mlpipe"]
        subprocess.run(
            [OPENSSL, *request, "-keyout", str(self.key), "-out", str(self.cert)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        der = subprocess.run(
            [OPENSSL, "x509", "-in", str(self.cert), "-outform", "DER"],
            check=True,
            capture_output=True,
            timeout=30,
        ).stdout
        self._x5c = base64.b64encode(der).decode()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                status, body = server._answer(self.path, self.headers.get("Authorization", ""))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.http = LocalHTTPServer(Handler)
        self.port = self.http.port

    @property
    def realm(self) -> str:
        return f"http://{self.http.host}/token"

    def __enter__(self) -> Self:
        self.http.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.__exit__(*exc)

    def reset(self) -> None:
        with self._lock:
            self.grants.clear()
            self.refused = 0

    def _answer(self, path: str, authorization: str) -> tuple[int, dict[str, object]]:
        query = parse_qs(urlsplit(path).query)
        user = ""
        allowed: frozenset[str] = frozenset()
        if authorization.startswith("Basic "):
            name, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            known = self.users.get(name)
            if known is None or known[0] != password:
                with self._lock:
                    self.refused += 1
                return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "wrong username or password"}]}
            user, allowed = name, known[1]
        if query.get("service") != [SERVICE]:
            return 400, {"errors": [{"code": "INVALID_SERVICE", "message": str(query.get("service"))}]}
        scopes = tuple(s for value in query.get("scope", []) for s in value.split(" ") if s)
        access = []
        for scope in scopes:
            kind, name, actions = [*scope.split(":"), "", ""][:3]
            if kind == "repository":
                granted = tuple(a for a in actions.split(",") if a in allowed)
                if granted:
                    access.append((name, granted))
        with self._lock:
            self.grants.append(Grant(user, scopes, tuple(access)))
        token = self._sign(user, access)
        return 200, {"token": token, "access_token": token, "expires_in": 300}

    def _sign(self, subject: str, access: list[tuple[str, tuple[str, ...]]]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "iat": now,
            "nbf": now - 10,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            "access": [{"type": "repository", "name": n, "actions": list(a)} for n, a in access],
        }
        signed = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(
            [OPENSSL, "dgst", "-sha256", "-sign", str(self.key)],
            input=signed.encode(),
            check=True,
            capture_output=True,
            timeout=30,
        ).stdout
        return f"{signed}.{_b64url(signature)}"

    def token_requests(self, user: str | None = None) -> int:
        with self._lock:
            return sum(1 for g in self.grants if user is None or g.user == user)


class TokenRegistry(Registry):
    """The distribution registry with `auth: token` pointing at `tokens`."""

    def __init__(self, root: Path, tokens: TokenServer) -> None:
        super().__init__(root)
        self.tokens = tokens

    def _config(self) -> Path:
        config = super()._config()
        auth = [
            "auth:",
            "  token:",
            f"    realm: {self.tokens.realm}",
            f"    service: {SERVICE}",
            f"    issuer: {ISSUER}",
            f"    rootcertbundle: {self.tokens.cert}",
        ]
        config.write_text(config.read_text() + "\n".join(auth) + "\n")
        return config


def missing_tools() -> list[str]:
    return [tool for tool in (OPENSSL, "docker-registry") if shutil.which(tool) is None]


WRITER, WRITER_PASSWORD = "ci-writer", "writer-secret-pass-77"
READER, READER_PASSWORD = "pr-reader", "reader-secret-pass-88"
USERS = {
    WRITER: (WRITER_PASSWORD, frozenset({"pull", "push"})),
    READER: (READER_PASSWORD, frozenset({"pull"})),
}
"""A user whose tokens may push, and one whose tokens only ever grant pull."""


@contextlib.contextmanager
def token_registry(root: Path) -> Iterator[TokenRegistry]:
    """The token service and a registry trusting it; raises RegistryUnavailable when it cannot start."""
    with TokenServer(root / "tokens", USERS) as tokens:
        registry = TokenRegistry(root / "registry", tokens)
        registry.start()
        try:
            yield registry
        finally:
            registry.stop()


def start_for_tests(tmp_path_factory: Any) -> Iterator[TokenRegistry]:
    """A module fixture's body: fails in CI (skips elsewhere) when the tools are missing or it cannot start."""
    import pytest

    from ci_testing import unavailable
    from services.registry import RegistryUnavailable

    missing = missing_tools()
    if missing:
        unavailable(
            f"the token registry cannot start: {', '.join(missing)} not installed "
            "(apt-get install docker-registry openssl)"
        )
    try:
        with token_registry(tmp_path_factory.mktemp("token-registry")) as registry:
            yield registry
    except (RegistryUnavailable, OSError) as error:
        pytest.fail(f"the token registry did not start: {error}", pytrace=False)
