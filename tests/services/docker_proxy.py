"""A recording proxy on a unix socket in front of the engine's API socket: the tests read the request bodies
mlpipe sent (what the engine was asked for, e.g. `DeviceRequests`, which podman accepts and ignores)."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
from pathlib import Path
from typing import Any, Self


class DockerProxy:
    def __init__(self, path: Path, upstream: Path) -> None:
        self.path = path
        self.upstream = upstream
        self.requests: list[tuple[str, str, bytes]] = []
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                up = socket.socket(socket.AF_UNIX)
                up.connect(str(proxy.upstream))
                back = threading.Thread(target=_pipe, args=(up, self.connection), daemon=True)
                back.start()
                try:
                    while True:
                        line = self.rfile.readline()
                        if not line:
                            break
                        head = [line]
                        length = 0
                        while True:
                            header = self.rfile.readline()
                            head.append(header)
                            if header in {b"\r\n", b"\n", b""}:
                                break
                            name, _, value = header.decode("latin-1").partition(":")
                            if name.strip().lower() == "content-length":
                                length = int(value.strip())
                        body = self.rfile.read(length) if length else b""
                        method, target = line.decode("latin-1").split()[:2]
                        proxy.requests.append((method, target, body))
                        up.sendall(b"".join(head) + body)
                finally:
                    with_suppress(up.shutdown, socket.SHUT_WR)
                    back.join(timeout=30)
                    up.close()

        self.server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def created(self) -> list[dict[str, Any]]:
        """The bodies of every `POST /containers/create`."""
        return [
            json.loads(body)
            for method, target, body in self.requests
            if method == "POST" and "/containers/create" in target
        ]


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    with_suppress(sink.shutdown, socket.SHUT_WR)


def with_suppress(call: Any, *args: Any) -> None:
    with contextlib.suppress(OSError):
        call(*args)
