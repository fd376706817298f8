"""A local stand-in for the GitHub REST API's Checks endpoints, strict where GitHub is strict.

Every request's method, path and JSON body is validated against GitHub's own OpenAPI description (the npm
package @octokit/openapi, installed by scripts/test into tests/node/): a path or method GitHub does not have
is a 404, a body its schema rejects is a 422, and both are recorded as `violations` so tests can assert there
were none. Tokens are `write` or `read` (403 on writes, as a fork PR's token gets); faults can be queued
(5xx, secondary rate limits with Retry-After). Check runs keep their final state, annotations appended across
updates as GitHub does.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema

SPEC = (
    Path(__file__).resolve().parents[1]
    / "node/node_modules/@octokit/openapi/generated/api.github.com.deref.json"
)
READ_ONLY_MESSAGE = "Resource not accessible by integration"


def spec_available() -> bool:
    return SPEC.is_file()


@dataclass
class Operation:
    template: str
    method: str
    operation_id: str
    body_schema: dict[str, Any] | None
    pattern: re.Pattern[str]


@dataclass
class Recorded:
    method: str
    path: str
    body: Any
    status: int
    operation: str = ""


@dataclass
class Fault:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    message: str = ""


_OPERATIONS: list[Operation] | None = None


def operations() -> list[Operation]:
    """Every operation in GitHub's OpenAPI description (loaded once: the file is large)."""
    global _OPERATIONS
    if _OPERATIONS is None:
        spec = json.loads(SPEC.read_text())
        found = []
        for template, item in spec["paths"].items():
            regex = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            for method, op in item.items():
                if method not in {"get", "post", "patch", "put", "delete"}:
                    continue
                content = (op.get("requestBody") or {}).get("content") or {}
                schema = (content.get("application/json") or {}).get("schema")
                found.append(
                    Operation(template, method.upper(), op["operationId"], schema, re.compile(regex))
                )
        # Literal segments beat parameters: /repos/{o}/{r}/check-runs before /repos/{o}/{r}/{x}.
        found.sort(key=lambda o: o.template.count("{"))
        _OPERATIONS = found
    return _OPERATIONS


class GitHubAPI:
    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.check_runs: dict[int, dict[str, Any]] = {}
        self.packages: dict[str, list[dict[str, Any]]] = {}
        """Container package versions by `/orgs/OWNER/packages/container/NAME` (or `/users/...`), for tests to seed."""
        self.faults: list[Fault] = []
        self._ids = itertools.count(1001)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        operations()

    # -- control from tests --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def reset(self) -> None:
        with self._lock:
            self.tokens.clear()
            self.requests.clear()
            self.violations.clear()
            self.check_runs.clear()
            self.packages.clear()
            self.faults.clear()

    def add_token(self, token: str, access: str = "write") -> None:
        self.tokens[token] = access

    def fail_next(
        self, status: int, *, times: int = 1, headers: dict[str, str] | None = None, message: str = ""
    ) -> None:
        self.faults.extend(Fault(status, dict(headers or {}), message) for _ in range(times))

    def only_check_run(self) -> dict[str, Any]:
        assert len(self.check_runs) == 1, f"expected one check run, got {len(self.check_runs)}"
        return next(iter(self.check_runs.values()))

    def start(self) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api._handle(self)

            do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- requests ------------------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        path = handler.path.split("?", 1)[0]
        method = handler.command
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        status, headers, data, op_id = self._respond(
            method, path, body, handler.headers.get("Authorization", "")
        )
        with self._lock:
            self.requests.append(Recorded(method, path, body, status, op_id))
        payload = b"" if status == 204 else json.dumps(data).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def _respond(self, method: str, path: str, body: Any, auth: str) -> tuple[int, dict[str, str], Any, str]:
        op = next((o for o in operations() if o.method == method and o.pattern.match(path)), None)
        if op is None:
            self.violations.append(f"{method} {path}: no such operation in GitHub's OpenAPI description")
            return 404, {}, {"message": "Not Found"}, ""
        token = auth.removeprefix("Bearer ").removeprefix("token ").strip()
        if token not in self.tokens:
            return 401, {}, {"message": "Bad credentials"}, op.operation_id
        if op.body_schema is not None:
            errors = sorted(jsonschema.Draft7Validator(op.body_schema).iter_errors(body), key=str)
            if errors:
                details = "; ".join(
                    f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message[:200]}" for e in errors
                )
                self.violations.append(f"{method} {path} ({op.operation_id}): {details}")
                return 422, {}, {"message": "Invalid request.", "errors": [details]}, op.operation_id
        with self._lock:
            fault = self.faults.pop(0) if self.faults else None
        if fault is not None:
            default = (
                "You have exceeded a secondary rate limit." if fault.status in {403, 429} else "Server Error"
            )
            return fault.status, fault.headers, {"message": fault.message or default}, op.operation_id
        if method != "GET" and self.tokens[token] != "write":
            return 403, {}, {"message": READ_ONLY_MESSAGE}, op.operation_id
        if op.operation_id == "checks/create":
            return self._create(path, body, op)
        if op.operation_id == "checks/update":
            return self._update(path, body, op)
        if op.operation_id == "checks/get":
            run = self.check_runs.get(int(path.rsplit("/", 1)[1]))
            return (
                (200, {}, _public(run), op.operation_id)
                if run
                else (404, {}, {"message": "Not Found"}, op.operation_id)
            )
        if op.operation_id.startswith("packages/"):
            return self._packages(method, path, op)
        self.violations.append(f"{method} {path} ({op.operation_id}): not expected from mlpipe")
        return 404, {}, {"message": "Not Found"}, op.operation_id

    def _packages(self, method: str, path: str, op: Operation) -> tuple[int, dict[str, str], Any, str]:
        """List (one page: seed fewer than 100) and delete container package versions."""
        base, _, version = path.partition("/versions")
        versions = self.packages.get(base)
        if versions is None:
            return 404, {}, {"message": "Package not found."}, op.operation_id
        if method == "GET" and not version:
            return 200, {}, versions, op.operation_id
        if method == "DELETE" and version.count("/") == 1:
            with self._lock:
                kept = [v for v in versions if str(v["id"]) != version[1:]]
                if len(kept) == len(versions):
                    return 404, {}, {"message": "Not Found"}, op.operation_id
                self.packages[base] = kept
            return 204, {}, None, op.operation_id
        self.violations.append(f"{method} {path} ({op.operation_id}): not expected from mlpipe")
        return 404, {}, {"message": "Not Found"}, op.operation_id

    def _create(self, path: str, body: dict[str, Any], op: Operation) -> tuple[int, dict[str, str], Any, str]:
        problem = _completion_problem(body)
        if problem:
            self.violations.append(f"POST {path}: {problem}")
            return 422, {}, {"message": problem}, op.operation_id
        run_id = next(self._ids)
        repo = path.split("/")[2:4]
        run = {
            "id": run_id,
            "repository": "/".join(repo),
            "name": body["name"],
            "head_sha": body["head_sha"],
            "external_id": body.get("external_id"),
            "details_url": body.get("details_url"),
            "status": body.get("status", "queued"),
            "conclusion": body.get("conclusion"),
            "started_at": body.get("started_at"),
            "completed_at": body.get("completed_at"),
            "output": {"title": None, "summary": None, "text": None},
            "annotations": [],
            "updates": 0,
            "html_url": f"https://github.com/{'/'.join(repo)}/runs/{run_id}",
        }
        if body.get("conclusion"):
            run["status"] = "completed"
        self._apply_output(run, body.get("output"))
        with self._lock:
            self.check_runs[run_id] = run
        return 201, {}, _public(run), op.operation_id

    def _update(self, path: str, body: dict[str, Any], op: Operation) -> tuple[int, dict[str, str], Any, str]:
        run = self.check_runs.get(int(path.rsplit("/", 1)[1]))
        if run is None:
            return 404, {}, {"message": "Not Found"}, op.operation_id
        problem = _completion_problem(body)
        if problem:
            self.violations.append(f"PATCH {path}: {problem}")
            return 422, {}, {"message": problem}, op.operation_id
        with self._lock:
            for key in (
                "name",
                "details_url",
                "external_id",
                "started_at",
                "status",
                "conclusion",
                "completed_at",
            ):
                if key in body:
                    run[key] = body[key]
            if body.get("conclusion"):
                run["status"] = "completed"
            run["updates"] += 1
            self._apply_output(run, body.get("output"))
        return 200, {}, _public(run), op.operation_id

    @staticmethod
    def _apply_output(run: dict[str, Any], output: dict[str, Any] | None) -> None:
        if not output:
            return
        for key in ("title", "summary", "text"):
            if key in output:
                run["output"][key] = output[key]
        run["annotations"].extend(output.get("annotations") or [])


def _completion_problem(body: dict[str, Any]) -> str:
    if (body.get("status") == "completed" or body.get("completed_at")) and not body.get("conclusion"):
        return "conclusion is required when status is completed"
    return ""


def _public(run: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in run.items() if k not in {"annotations", "updates", "repository"}}
    data["output"] = {**run["output"], "annotations_count": len(run["annotations"])}
    return data
