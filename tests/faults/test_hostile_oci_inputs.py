"""`oci://…@sha256:` inputs from a hostile registry: crafted layer titles and digests never reach outside the store.

The manifest an input names is pinned by its digest, but its content is whatever the artifact's author wrote;
a small stand-in registry serves such manifests (distribution itself refuses most of them on push). Each case
must fail the step with one clear message, touch nothing outside the store, and leave the store whole.
"""

from __future__ import annotations

import hashlib
import json
import os
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import fault_tally
import pytest
from fsck_testing import assert_store_whole

from services.local_http import LocalHTTPServer

CONTENT = b"weights\n"
TITLE = "org.opencontainers.image.title"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Artifacts(BaseHTTPRequestHandler):
    """GET /v2/<repo>/manifests/<digest> and /blobs/<digest> from two dicts; everything else 404."""

    manifests: ClassVar[dict[str, bytes]] = {}
    blobs: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        kind, _, ref = self.path.rpartition("/")
        table = self.manifests if kind.endswith("/manifests") else self.blobs
        body = table.get(ref)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def manifest(layers: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha(b"{}"), "size": 2},
            "layers": layers,
        }
    ).encode()


def layer(title: Any, digest: str = sha(CONTENT), **annotations: Any) -> dict[str, Any]:
    return {
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": digest,
        "size": len(CONTENT),
        "annotations": {TITLE: title, **annotations},
    }


def outside_digest(outside: Path, store: Path) -> str:
    """A 'digest' whose object path (objects/<first 2>/<rest>) climbs from the store to the outside file:
    objects/../objects/../REL is REL relative to the store (whose objects/ exists once it was used)."""
    (store / "objects").mkdir(parents=True, exist_ok=True)
    return "sha256:..objects/../" + os.path.relpath(outside, store)


CASES: dict[str, Any] = {
    "title climbs out": lambda o, s: [layer("../../escape.txt")],
    "absolute title": lambda o, s: [layer("/tmp/escape.txt")],
    "title with a newline": lambda o, s: [layer("a\n::error::forged")],
    "title under another title": lambda o, s: [layer("w"), layer("w/x", sha(CONTENT + b"2"))],
    "title not a string": lambda o, s: [layer(["w"])],
    "digest climbs to a file outside": lambda o, s: [layer("w", outside_digest(o, s))],
    "digest not hex": lambda o, s: [layer("w", "sha256:" + "Z" * 64)],
    "digest of another algorithm": lambda o, s: [layer("w", "md5:" + "0" * 32)],
    "layers not a list": lambda o, s: {"w": 1},
    "no layers": lambda o, s: [],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_crafted_oci_input_fails_the_step_and_touches_nothing_outside(project_factory, tmp_path, case):
    outside = tmp_path / "outside" / "secret.txt"
    outside.parent.mkdir()
    outside.write_bytes(b"do not touch\n")
    outside.chmod(0o640)
    before = os.stat(outside)
    project = project_factory({"src/.keep": "", "mlpipe.yaml": "name: x\n"})
    store = project.root / ".mlpipe" / "cache"
    layers = CASES[case](outside, store)
    body = manifest(layers) if isinstance(layers, list) else json.dumps({"layers": layers}).encode()
    digest = sha(body)
    Artifacts.manifests = {digest: body}
    Artifacts.blobs = {sha(CONTENT): CONTENT, sha(CONTENT + b"2"): CONTENT + b"2"}
    with LocalHTTPServer(Artifacts) as server:
        project.write({"mlpipe.yaml": pipeline(f"oci://{server.host}/t/model@{digest}")})
        project.commit()
        outcome = project.run("ci-run")

    assert outcome.code == 1, outcome.output
    assert "Traceback" not in outcome.output
    assert f"input 'model': oci://{server.host}/t/model@{digest}" in outcome.output
    after = os.stat(outside)
    assert (after.st_ino, after.st_mode, after.st_nlink, after.st_mtime_ns) == (
        before.st_ino,
        before.st_mode,
        before.st_nlink,
        before.st_mtime_ns,
    )
    assert outside.read_bytes() == b"do not touch\n"
    assert not (tmp_path / "escape.txt").exists() and not Path("/tmp/escape.txt").exists()
    assert_store_whole(store)
    fault_tally.record("hostile oci:// input artifact", runs_completed=1)


def pipeline(ref: str) -> str:
    step = {
        "code": "src",
        "run": "cat ${{ inputs.model }}/w > ${{ outputs.o }}",
        "inputs": {"model": ref},
        "outputs": {"o": {"type": "file", "path": "o.txt"}},
    }
    return json.dumps({"name": "demo", "steps": {"use": step}})  # JSON is YAML
