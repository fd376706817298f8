"""`inputs: {model: oci://HOST/REPO@sha256:...}`: an artifact's files, fetched once from a real registry."""

from __future__ import annotations

import hashlib
import json

import pytest

from mlpipe.cache.registry import RegistryClient
from services.registry import Registry

FILES = {"weights.txt": b"w=1\n", "sub/vocab.txt": b"a\nb\n"}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_artifact(host: str, repo: str, files: dict[str, bytes]) -> str:
    """What `oras push HOST/REPO:v1 weights.txt sub/vocab.txt` stores; returns the manifest digest."""
    client = RegistryClient(host)
    config = b"{}"
    client.upload_bytes(repo, sha(config), config)
    layers = []
    for title, data in files.items():
        client.upload_bytes(repo, sha(data), data)
        layers.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": sha(data),
                "size": len(data),
                "annotations": {"org.opencontainers.image.title": title},
            }
        )
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.model",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha(config), "size": 2},
        "layers": layers,
    }
    data = json.dumps(manifest).encode()
    client.put_manifest(repo, "v1", data)
    return sha(data)


def pipeline(ref: str) -> str:
    return f"""\
name: demo
steps:
  use:
    code: src
    run: cat ${{{{ inputs.model }}}}/weights.txt ${{{{ inputs.model }}}}/sub/vocab.txt > ${{{{ outputs.o }}}}
    inputs:
      model: {ref}
    outputs:
      o: {{type: file, path: o.txt}}
"""


def test_fetched_once_then_used_from_the_store_without_the_registry(project_factory, tmp_path):
    registry = Registry(tmp_path / "own")
    registry.start()
    try:
        digest = push_artifact(registry.host, "t/model", FILES)
        project = project_factory(
            {"src/.keep": "", "mlpipe.yaml": pipeline(f"oci://{registry.host}/t/model@{digest}")}
        )
        first = project.run("ci-run", "--json").assert_success().json()
    finally:
        registry.stop()

    again = (
        project.run("ci-run", "--no-reuse", "--json").assert_success().json()
    )  # registry gone: from the store

    assert (project.root / "o.txt").read_text() == "w=1\na\nb\n"
    assert first["steps"]["use"]["parts"]["inputs"] == {"model": digest}
    assert again["steps"]["use"]["status"] == "ran"


def test_an_artifact_not_in_the_registry_fails_its_step(project_factory, registry):
    missing = "sha256:" + "0" * 64
    ref = f"oci://{registry.host}/t/none@{missing}"
    project = project_factory({"src/.keep": "", "mlpipe.yaml": pipeline(ref)})

    out = project.run("ci-run").assert_code(1).output

    assert f"use: failed: input 'model': {ref} is not in the registry" in out


@pytest.mark.parametrize("ref", ["oci://ghcr.io/org/model:latest", "oci://ghcr.io/org/model@sha256:abc"])
def test_a_reference_not_pinned_by_digest_is_a_spec_error(project_factory, ref):
    project = project_factory({"src/.keep": "", "mlpipe.yaml": pipeline(ref)})

    out = project.run("validate").assert_code(2).output

    assert out == (
        f"mlpipe.yaml:7:14: steps.use.inputs.model: expected an OCI artifact by digest, found {ref!r}; "
        "pin it by digest, e.g. oci://ghcr.io/org/data@sha256:<64 hex digits> (`oras resolve` prints it)\n"
    )
