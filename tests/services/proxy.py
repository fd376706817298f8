"""A small HTTP proxy in front of the test registry: counts requests and injects faults (5xx, 429, drops,
truncated bodies, stalls)."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from services.local_http import LocalHTTPServer


@dataclass
class Fault:
    """The next `times` requests that `match` get `status` (with `headers`) instead of the registry's answer; or,
    with an `action`, the registry's answer spoiled: "truncate" sends the first half of the body as if it were
    all of it, "drop" announces the whole body, sends half and closes the connection, "stall" announces the
    whole body, sends half, then nothing until the proxy stops (or `stall_s` passes)."""

    status: int
    times: int
    match: Callable[[str, str], bool] = lambda method, path: True
    headers: dict[str, str] = field(default_factory=dict)
    action: str = "status"
    stall_s: float = 120.0


class Proxy(LocalHTTPServer):
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.requests: list[tuple[str, str]] = []
        self.uploaded = 0
        """Bytes of every request body received."""
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self.released = threading.Event()
        """Set when the proxy stops: stalled answers end."""
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                body = self._body()
                with proxy._lock:
                    proxy.requests.append((self.command, self.path))
                    proxy.uploaded += len(body)
                    fault = next(
                        (f for f in proxy.faults if f.times > 0 and f.match(self.command, self.path)), None
                    )
                    if fault is not None:
                        fault.times -= 1
                if fault is not None and fault.action == "status":
                    self.send_response(fault.status)
                    for k, v in fault.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                dropped = {"host", "connection", "transfer-encoding", "content-length"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in dropped}
                headers["Host"] = f"127.0.0.1:{proxy.port}"
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                if fault is not None:
                    self._spoil(fault, response, data)
                    conn.close()
                    return
                self.send_response(response.status)
                for k, v in response.getheaders():
                    if k.lower() in {"transfer-encoding", "connection", "content-length"}:
                        continue
                    if k.lower() == "location":
                        v = v.replace(f"127.0.0.1:{proxy.upstream_port}", f"127.0.0.1:{proxy.port}")
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            def _body(self) -> bytes:
                """The request body, sized or chunked (engines upload layers chunked)."""
                if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
                    length = int(self.headers.get("Content-Length") or 0)
                    return self.rfile.read(length) if length else b""
                parts = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in {b"\r\n", b"\n", b""}:
                    pass  # trailers
                return b"".join(parts)

            def _spoil(self, fault: Fault, response: http.client.HTTPResponse, data: bytes) -> None:
                half = data[: len(data) // 2]
                self.send_response(response.status)
                for k, v in response.getheaders():
                    if k.lower() not in {"transfer-encoding", "connection", "content-length"}:
                        self.send_header(k, v)
                self.send_header(
                    "Content-Length", str(len(half) if fault.action == "truncate" else len(data))
                )
                self.end_headers()
                self.wfile.write(half)
                self.wfile.flush()
                if fault.action == "stall":
                    proxy.released.wait(fault.stall_s)
                self.close_connection = True

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        super().__init__(Handler)

    def count(self, method: str, fragment: str = "") -> int:
        with self._lock:
            return sum(1 for m, p in self.requests if m == method and fragment in p)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.uploaded = 0

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        super().__exit__(*exc)
