"""`inputs: {raw: {url: ..., sha256: ...}}` against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

DATA = b"a,b\n1,2\n" * 1000
SHA = hashlib.sha256(DATA).hexdigest()


class Server:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server({"/d/raw.csv": DATA})
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def pipeline(url: str, sha: str = SHA) -> str:
    return f"""\
name: demo
steps:
  count:
    code: src
    run: wc -l < ${{{{ inputs.raw }}}} > ${{{{ outputs.n }}}}; basename ${{{{ inputs.raw }}}} >> ${{{{ outputs.n }}}}
    inputs:
      raw: {{url: '{url}', sha256: '{sha}'}}
    outputs:
      n: {{type: file, path: n.txt}}
"""


def objects(root: Path) -> set[str]:
    return {p.parent.name + p.name for p in (root / ".mlpipe/cache/objects").glob("*/*")}


def test_downloaded_once_verified_stored_and_reused_without_a_request(project_factory, server):
    project = project_factory({"src/.keep": "", "mlpipe.yaml": pipeline(server.url("/d/raw.csv"))})

    project.run("ci-run").assert_success()
    assert (project.root / "n.txt").read_text() == "2000\nraw.csv\n"
    assert server.requests == ["/d/raw.csv"]
    assert SHA in objects(project.root)

    second = project.run("ci-run", "--json").assert_success().json()
    project.run("ci-run", "--no-reuse").assert_success()  # runs again, from the stored file
    project.run("plan").assert_success()

    assert second["steps"]["count"]["status"] == "reused"
    assert second["steps"]["count"]["parts"]["inputs"] == {"raw": f"sha256:{SHA}"}
    assert server.requests == ["/d/raw.csv"]


def test_a_download_says_what_it_moved_in_one_line_and_only_when_it_downloads(project_factory, server):
    project = project_factory({"src/.keep": "", "mlpipe.yaml": pipeline(server.url("/d/raw.csv"))})

    first = project.run("ci-run", env={"CI": "true"}).assert_success().stderr
    again = project.run("ci-run", "--no-reuse", env={"CI": "true"}).assert_success().stderr

    lines = [line for line in first.splitlines() if "downloaded" in line]
    assert len(lines) == 1, first
    assert re.fullmatch(
        rf"mlpipe: cache: downloaded input 'raw' from {re.escape(server.url('/d/raw.csv'))} \(7\.8 KiB\) "
        r"in \d+\.\ds",
        lines[0],
    )
    assert "downloaded" not in again


def test_the_declared_sha256_is_the_identity_the_url_is_not(project_factory, server):
    server.files["/mirror/raw.csv"] = DATA
    project = project_factory({"src/.keep": "", "mlpipe.yaml": pipeline(server.url("/d/raw.csv"))})
    project.run("ci-run").assert_success()

    project.write({"mlpipe.yaml": pipeline(server.url("/mirror/raw.csv"))})
    project.commit()
    again = project.run("ci-run", "--json").assert_success().json()

    assert again["steps"]["count"]["status"] == "reused"
    assert server.requests == ["/d/raw.csv"]


def test_a_wrong_digest_names_the_input_and_both_digests_and_stores_nothing(project_factory, server):
    wrong = "0" * 64
    project = project_factory({"src/.keep": "", "mlpipe.yaml": pipeline(server.url("/d/raw.csv"), wrong)})

    out = project.run("ci-run").assert_code(1).output

    assert (
        f"input 'raw': {server.url('/d/raw.csv')} has sha256 {SHA}, the pipeline file declares {wrong}; "
        "nothing was stored (update the sha256 if the file was meant to change)"
    ) in out
    assert "Traceback" not in out
    assert objects(project.root) == set()
    assert not list((project.root / ".mlpipe/cache/tmp").glob("*.download"))


def test_a_server_that_is_down_is_a_clear_error(project_factory):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/raw.csv"
    project = project_factory({"src/.keep": "", "mlpipe.yaml": pipeline(url)})

    out = project.run("ci-run").assert_code(1).output

    assert f"input 'raw': cannot download {url} (Connection refused, 3 attempts)" in out
    assert "Traceback" not in out


def test_a_missing_file_is_not_retried(project_factory, server):
    url = server.url("/gone.csv")
    project = project_factory({"src/.keep": "", "mlpipe.yaml": pipeline(url)})

    out = project.run("ci-run").assert_code(1).output

    assert f"input 'raw': cannot download {url} (HTTP 404 Not Found, 1 attempt)" in out
    assert server.requests == ["/gone.csv"]
