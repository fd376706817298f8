"""Release runs on a tag push: a clean tree only, a manifest in the registry under the tag; `mlpipe verify`."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from github_testing import actions_job, push_payload
from mlpipe_testing import Project

PIPELINE = """\
name: reldemo
params:
  n: 2
steps:
  prepare:
    code: prepare
    run: sh prepare.sh ${{ params.n }} ${{ outputs.data }}
    outputs:
      data: {}
  train:
    code: train
    run: sh train.sh ${{ inputs.data }} ${{ outputs.scores }}
    inputs:
      data: ${{ steps.prepare.outputs.data }}
    outputs:
      scores: {kind: metrics, higher-is-better: true}
"""

FILES = {
    ".gitignore": ".mlpipe/\n",
    "mlpipe.yaml": PIPELINE,
    "requirements.txt": "numpy==2.1.0\n",
    "prepare/prepare.sh": 'seq "$1" > "$2/rows.txt"\n',
    "train/train.sh": 'printf \'{"acc": %s}\' "$(wc -l < "$1/rows.txt")" > "$2"\n',
}


def tag_env(project: Project, tmp_path: Path, tag: str, cache: str | None = None) -> dict[str, str]:
    sha = project.git("rev-parse", "HEAD").strip()
    ref = f"refs/tags/{tag}"
    job = actions_job(
        tmp_path / f"job-{uuid.uuid4().hex[:6]}",
        event="push",
        payload=push_payload(sha, ref),
        sha=sha,
        ref=ref,
    )
    env = {**job.env, "MLPIPE_PUBLISH_CHECKS": "false"}
    if cache:
        env["MLPIPE_CACHE"] = cache
    return env


@pytest.fixture
def released(project_factory, registry, tmp_path):
    p = project_factory(FILES)
    p.git("tag", "v1.0")
    cache = f"oci://{registry.host}/t/{uuid.uuid4().hex[:12]}"
    out = p.run("ci-run", env=tag_env(p, tmp_path, "v1.0", cache)).assert_success()
    return p, cache, out


def test_a_tag_run_records_a_release_manifest_in_the_registry(released, tmp_path):
    p, cache, out = released
    record = p.record()
    repo = cache.split("/", 3)[3]
    assert (
        f"mlpipe: release manifest for v1.0: {p.root}/.mlpipe/releases/release.v1.0.json ({repo}:release.v1.0)"
        in (out.stderr + out.stdout)
    )
    manifest = json.loads((p.root / ".mlpipe/releases/release.v1.0.json").read_text())
    assert manifest["format"] == "mlpipe.release/1"
    assert (manifest["tag"], manifest["run_id"]) == ("v1.0", record["run_id"])
    assert manifest["commit"] == p.git("rev-parse", "HEAD").strip()
    assert manifest["snapshots"] == record["snapshots"]
    assert manifest["params"] == {"n": 2}
    train = manifest["steps"]["train"]
    assert train["tree"] == p.git("rev-parse", "HEAD:train").strip()
    assert train["outputs"] == record["steps"]["train"]["outputs"]
    assert train["inputs"] == record["steps"]["train"]["parts"]["inputs"]
    assert train["metrics"] == {"scores": {"acc": 2}}

    # Another checkout, with nothing local, verifies the release from the registry alone.
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(p.root), str(other)], check=True)
    verified = Project(other).run("verify", "v1.0", "--cache", cache, "--json").assert_success().json()
    assert verified["ok"] is True and verified["run_id"] == record["run_id"]
    assert sorted((o["step"], o["output"]) for o in verified["outputs"]) == [
        ("prepare", "data"),
        ("train", "scores"),
    ]


def test_verify_catches_a_corrupted_artifact(released):
    p, _, _ = released
    p.run("verify", "v1.0").assert_success()
    digest = json.loads((p.root / ".mlpipe/releases/release.v1.0.json").read_text())
    rows = [path for path in (p.root / ".mlpipe/cache/objects").rglob("*") if path.is_file()]
    target = next(path for path in rows if path.read_bytes() == b"1\n2\n")
    target.chmod(0o644)
    target.write_bytes(b"1\n3\n")

    out = p.run("verify", "v1.0").assert_code(1)

    lines = out.stdout.splitlines()
    assert lines[0] == f"release v1.0: run {digest['run_id']} at {digest['commit'][:12]}"
    assert [line.split()[:3] for line in lines[3:5]] == [
        ["prepare", "data", "FAILED"],
        ["train", "scores", "ok"],
    ]
    assert "corrupt or missing: rows.txt" in lines[3]
    assert out.stderr == "error: release v1.0 is not verified: prepare.data missing or not matching\n"


def test_a_tag_run_refuses_a_dirty_tree(project_factory, tmp_path):
    p = project_factory(FILES)
    p.git("tag", "v2.0")
    p.write({"train/train.sh": FILES["train/train.sh"] + "# local edit\n"})

    out = p.run("ci-run", env=tag_env(p, tmp_path, "v2.0")).assert_code(2)

    assert out.stderr.endswith(
        "error: release run for tag v2.0: the working tree has uncommitted changes (1 path(s): train/train.sh); "
        "a release is built from the tagged commit alone: commit or remove them\n"
    )
    assert not (p.root / ".mlpipe/runs").exists() or not list((p.root / ".mlpipe/runs").glob("*.json"))


def test_verify_of_an_unknown_tag(project_factory):
    p = project_factory(FILES)
    out = p.run("verify", "v9").assert_code(2)
    assert out.stderr == (
        "error: no release manifest for tag 'v9' here (pass --cache oci://… to look in a registry)\n"
    )
