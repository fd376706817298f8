"""mlpipe's result artifacts as ORAS clients see them, against the real registry: `oras pull` (oras-py's
client) recreates the outputs by name, the manifest links the package to its repository and commit."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from ci_testing import unavailable
from mlpipe.cache.local import LocalStore
from mlpipe.cache.oci import OciCache, result_tag
from mlpipe.cache.registry import RegistryClient
from mlpipe.core.results import StepResult
from registry_testing import cache_env

FP = "cd" * 32
RUN_ID = "20260101T000000000Z-" + "0" * 16
EMPTY = {
    "mediaType": "application/vnd.oci.empty.v1+json",
    "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest(),
    "size": 2,
}


@pytest.fixture
def repo() -> str:
    return f"t/{uuid.uuid4().hex[:12]}"


def oras_pull(registry, ref: str, outdir: Path) -> list[str]:
    import oras.client

    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    return client.pull(target=f"{registry.host}/{ref}", outdir=str(outdir))


def tree(root: Path) -> dict[str, bytes | str]:
    """Every file (content) and symlink (target) under root, by relative path."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[rel] = os.readlink(path)
        elif path.is_file():
            found[rel] = path.read_bytes()
    return found


def push(tmp_path: Path, registry, repo: str, staged: dict[str, Path], **provenance) -> StepResult:
    store = LocalStore(tmp_path / "store")
    bare = StepResult(
        fingerprint=FP,
        parts={"run": "x"},
        outputs={},
        provenance={"run_id": RUN_ID, "created_at": "2026-01-01T00:00:00.000Z", **provenance},
    )
    result = store.publish(bare, staged).result
    assert OciCache(RegistryClient(registry.host), store).push(repo, result, {}) == "pushed"
    return result


def test_oras_pull_of_a_result_gives_its_outputs_by_name(registry, repo, tmp_path):
    model = tmp_path / "work/model.bin"
    model.parent.mkdir()
    model.write_bytes(os.urandom(3 << 20))  # over the threshold: a file layer of its own
    data = tmp_path / "work/data"
    (data / "sub/deeper").mkdir(parents=True)
    (data / "a.txt").write_text("a\n")
    (data / "sub/b.txt").write_text("b\n")
    (data / "sub/same.txt").write_text("a\n")  # the same content at two paths
    (data / "sub/deeper/big.bin").write_bytes(os.urandom(2 << 20))
    (data / "run.sh").write_text("#!/bin/sh\n")
    (data / "run.sh").chmod(0o755)
    (data / "link").symlink_to("sub/b.txt")
    (data / ("long-" + "n" * 120 + ".txt")).write_text("a long name\n")
    metrics = tmp_path / "work/metrics.json"
    metrics.write_text('{"acc": 1}')
    push(
        tmp_path,
        registry,
        repo,
        {"model": model, "data": data, "metrics": metrics},
        paths={"data": "out/data", "metrics": "reports/metrics.json"},
        source="https://github.com/org/repo",
        commit="ab" * 20,
    )

    pulled = tmp_path / "pulled"
    oras_pull(registry, f"{repo}:{result_tag(FP)}", pulled)
    expected = {
        "model": model.read_bytes(),
        "reports/metrics.json": b'{"acc": 1}',
        **{f"out/data/{k}": v for k, v in tree(data).items()},
    }
    assert tree(pulled) == expected
    assert os.access(pulled / "out/data/run.sh", os.X_OK)

    manifest = json.loads(RegistryClient(registry.host).get_manifest(repo, result_tag(FP))[0])
    assert manifest["annotations"] == {
        "org.mlpipe.fingerprint": FP,
        "org.opencontainers.image.created": "2026-01-01T00:00:00.000Z",
        "org.opencontainers.image.source": "https://github.com/org/repo",
        "org.opencontainers.image.revision": "ab" * 20,
    }
    titles = [layer["annotations"]["org.opencontainers.image.title"] for layer in manifest["layers"]]
    assert titles == ["out", "model", "out/data/sub/deeper/big.bin", "reports/metrics.json"]
    (tree_layer,) = [
        layer for layer in manifest["layers"] if layer["annotations"].get("io.deis.oras.content.unpack")
    ]
    assert tree_layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"


def test_a_result_without_files_has_the_empty_descriptor_as_its_layer(registry, repo, tmp_path):
    push(tmp_path, registry, repo, {})
    manifest = json.loads(RegistryClient(registry.host).get_manifest(repo, result_tag(FP))[0])
    assert manifest["layers"] == [EMPTY]
    fetched = OciCache(RegistryClient(registry.host), LocalStore(tmp_path / "b")).fetch(repo, FP)
    assert fetched is not None and fetched.outputs == {}


TRAIN = """\
mkdir -p "$1/w"
echo w > "$1/w/x.txt"
echo '{"acc": 1}' > "$2"
"""


def test_a_pushed_step_result_names_its_outputs_by_repository_path_and_links_its_repository(
    project_factory, registry, repo, tmp_path
):
    pipeline = """\
name: demo
steps:
  train:
    code: src
    run: sh train.sh ${{ outputs.model }} ${{ outputs.scores }}
    outputs:
      model: {path: out/model}
      scores: {kind: metrics, path: reports/scores.json}
"""
    project = project_factory({"ml/mlpipe.yaml": pipeline, "ml/src/train.sh": TRAIN})
    project.git("remote", "add", "origin", "git@github.com:org/demo.git")
    env = cache_env(registry.host, repo, tmp_path)
    done = project.run("ci-run", "-f", "ml/mlpipe.yaml", "--json", env=env).assert_success()
    fingerprint = done.json()["steps"]["train"]["fingerprint"]

    client = RegistryClient(registry.host)
    manifest = json.loads(client.get_manifest(repo, result_tag(fingerprint))[0])
    pulled = tmp_path / "pulled"
    oras_pull(registry, f"{repo}:{result_tag(fingerprint)}", pulled)

    assert tree(pulled) == {"ml/out/model/w/x.txt": b"w\n", "ml/reports/scores.json": b'{"acc": 1}\n'}
    (run_tag,) = [t for t in client.tags(repo) if t.startswith("run.")]
    run_manifest = json.loads(client.get_manifest(repo, run_tag)[0])
    assert run_manifest["layers"] == [EMPTY]  # a run record has no files: OCI 1.1's empty descriptor
    annotations = manifest["annotations"]
    assert annotations["org.opencontainers.image.source"] == "https://github.com/org/demo"
    assert annotations["org.opencontainers.image.revision"] == project.git("rev-parse", "HEAD").strip()
    assert re.fullmatch(
        r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", annotations["org.opencontainers.image.created"]
    )


def skopeo() -> str:
    found = shutil.which("skopeo")
    if found is None:
        unavailable("skopeo is not installed (apt-get install skopeo)")
    return found


def test_skopeo_inspects_a_result_and_copies_it_to_a_mirror_mlpipe_reads(registry, repo, tmp_path):
    out = tmp_path / "work/out"
    (out / "sub").mkdir(parents=True)
    (out / "sub/a.txt").write_text("a\n")
    (out / "big.bin").write_bytes(os.urandom(2 << 20))
    pushed = push(tmp_path, registry, repo, {"out": out})
    tool, ref = skopeo(), f"{registry.host}/{repo}:{result_tag(FP)}"
    plain = ["--src-tls-verify=false", "--dest-tls-verify=false"]

    raw = subprocess.run(
        [tool, "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"], capture_output=True, check=True
    )
    mirror = f"{repo}-mirror"
    subprocess.run(
        [tool, "copy", *plain, f"docker://{ref}", f"docker://{registry.host}/{mirror}:{result_tag(FP)}"],
        capture_output=True,
        check=True,
    )

    assert raw.stdout == RegistryClient(registry.host).get_manifest(repo, result_tag(FP))[0]
    fetched = OciCache(RegistryClient(registry.host), LocalStore(tmp_path / "b")).fetch(mirror, FP)
    assert fetched is not None and fetched.outputs["out"].digest == pushed.outputs["out"].digest
