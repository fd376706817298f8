"""release.py's pure parts: the tag a job releases, the OCI tag, the manifest of a run record."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpipe.errors import UsageError
from mlpipe.git.provenance import GitInfo
from mlpipe.release.manifest import RELEASE_FORMAT, build_manifest, oci_tag, release_tag, require_clean
from mlpipe.runs import RunRecord, StepRecord


def test_release_tag_only_on_a_tag_push_in_actions() -> None:
    assert release_tag({"GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/tags/v1.2"}) == "v1.2"
    assert release_tag({"GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/heads/main"}) is None
    assert release_tag({"GITHUB_REF": "refs/tags/v1.2"}) is None


def test_oci_tag_keeps_what_a_tag_may_hold() -> None:
    assert oci_tag("v1.0") == "release.v1.0"
    assert oci_tag("model/v1+exp") == "release.model-v1-exp"


def test_require_clean_names_the_paths() -> None:
    require_clean("v1", GitInfo(in_repo=True, root=Path("."), commit="a" * 40))
    with pytest.raises(UsageError) as raised:
        require_clean(
            "v1", GitInfo(in_repo=True, root=Path("."), commit="a" * 40, dirty=True, dirty_paths=("x.py",))
        )
    assert str(raised.value) == (
        "release run for tag v1: the working tree has uncommitted changes (1 path(s): x.py); "
        "a release is built from the tagged commit alone: commit or remove them"
    )


def test_manifest_of_a_run() -> None:
    parts = {
        "params": {"n": 2},
        "inputs": {"d": "sha256:1"},
        "environment": {"req.txt": "sha256:2"},
        "image": None,
    }
    record = RunRecord(
        run_id="r1",
        pipeline="p",
        pipeline_file="mlpipe.yaml",
        started_at="t",
        status="succeeded",
        git={"commit": "c" * 40, "snapshot_ref": None},
        snapshots={"train": "t" * 40},
        params={"n": 2},
        steps={
            "train": StepRecord(
                status="ran",
                fingerprint="f" * 64,
                parts=parts,
                outputs={"model": "sha256:3"},
                metrics={"m": {"acc": 1.0}},
                code="train",
                tree="t" * 40,
            )
        },
    )

    manifest = build_manifest("v1", record)

    assert manifest["format"] == RELEASE_FORMAT
    assert (manifest["tag"], manifest["run_id"], manifest["commit"]) == ("v1", "r1", "c" * 40)
    assert manifest["steps"]["train"] == {
        "status": "ran",
        "fingerprint": "f" * 64,
        "code": "train",
        "tree": "t" * 40,
        "image": None,
        "params": {"n": 2},
        "environment": {"req.txt": "sha256:2"},
        "inputs": {"d": "sha256:1"},
        "upstream": {},
        "outputs": {"model": "sha256:3"},
        "metrics": {"m": {"acc": 1.0}},
    }


def test_reproduction_compares_each_output_digest() -> None:
    from mlpipe.release.reproduce import compare

    manifest = {
        "steps": {"a": {"outputs": {"o": "sha256:1"}}, "b": {"outputs": {"o": "sha256:2", "p": "sha256:3"}}}
    }
    record = {"steps": {"a": {"outputs": {"o": "sha256:1"}}, "b": {"outputs": {"o": "sha256:9"}}}}

    assert [(c.step, c.output, c.outcome) for c in compare(manifest, record)] == [
        ("a", "o", "match"),
        ("b", "o", "differs"),
        ("b", "p", "missing"),
    ]
