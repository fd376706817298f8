"""Fingerprints: sha256 over canonical JSON of the parts that decide reuse, and sentences naming what changed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

import pytest

from mlpipe.core import fingerprint as fp
from mlpipe.spec.model import Location, Output, RepoInput, Step, StepInput

LOC = Location(file="mlpipe.yaml", line=1, col=1)
TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
OTHER_TREE = "9f8c3d0e1a2b4c5d6e7f8091a2b3c4d5e6f70819"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64

STEP = Step(
    name="train",
    code="src",
    run="python train.py --lr ${{ params.lr }} --data ${{ inputs.data }} --out ${{ outputs.model }}"
    " --feat ${{ steps.prep.outputs.features }}",
    inputs={
        "data": RepoInput(name="data", path="data/train.csv", loc=LOC),
        "prev": StepInput(name="prev", step="prep", output="stats", loc=LOC),
    },
    outputs={
        "model": Output(name="model", type="dir", loc=LOC),
        "scores": Output(name="scores", type="file", kind="metrics", path="reports/scores.json", loc=LOC),
    },
    env={"API_TOKEN": "hunter2-s3cr3t-value", "SEED": "${{ params.seed }}"},
    loc=LOC,
)

PARAMS = {"lr": 0.1, "seed": 7, "epochs": 3}

ARGS: dict[str, Any] = {
    "params": PARAMS,
    "input_digests": {"data": DIGEST_A, "prev": DIGEST_B},
    "upstream_digests": {"prep.features": DIGEST_B},
    "code_tree": TREE,
    "environment_digests": {"requirements.txt": DIGEST_A},
    "platform": "linux-x86_64",
    "image": None,
}


def compute(step: Step = STEP, **changes: Any) -> fp.Fingerprint:
    return fp.compute(step, **{**ARGS, **changes})


def test_parts_hold_exactly_what_decides_reuse() -> None:
    env_token = "sha256:" + hashlib.sha256(b'["hunter2-s3cr3t-value"]').hexdigest()
    seed_token = "sha256:" + hashlib.sha256(b'[{"params":"seed"}]').hexdigest()
    assert compute().parts == {
        "schema": 1,
        "run": [
            "python train.py --lr ",
            {"params": "lr"},
            " --data ",
            {"inputs": "data"},
            " --out ",
            {"outputs": "model"},
            " --feat ",
            {"steps": "prep.features"},
        ],
        "env": {"API_TOKEN": env_token, "SEED": seed_token},
        "params": {"lr": 0.1, "seed": 7},
        "inputs": {"data": DIGEST_A, "prev": DIGEST_B},
        "upstream": {"prep.features": DIGEST_B},
        "outputs": {"model": {"type": "dir", "kind": "data"}, "scores": {"type": "file", "kind": "metrics"}},
        "code": TREE,
        "environment": {"requirements.txt": DIGEST_A},
        "image": None,
        "platform": "linux-x86_64",
    }


def test_key_is_sha256_of_canonical_json_of_parts_and_stable() -> None:
    first = compute()
    canonical = json.dumps(first.parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert first.key == hashlib.sha256(canonical.encode()).hexdigest()
    assert len(first.key) == 64
    assert compute() == first
    # Mapping order does not matter: the JSON is canonical.
    reordered = compute(
        params=dict(reversed(PARAMS.items())),
        input_digests={"prev": DIGEST_B, "data": DIGEST_A},
    )
    assert reordered.key == first.key


BASE_KEY = compute().key
SCORES = STEP.outputs["scores"]


@pytest.mark.parametrize(
    ("label", "step_changes", "arg_changes"),
    [
        ("command text", {"run": STEP.run + " --verbose"}, {}),
        ("env value", {"env": {**STEP.env, "API_TOKEN": "other"}}, {}),
        ("env name", {"env": {"TOKEN": "hunter2-s3cr3t-value", "SEED": "${{ params.seed }}"}}, {}),
        ("used param in run", {}, {"params": {**PARAMS, "lr": 0.2}}),
        ("used param in env", {}, {"params": {**PARAMS, "seed": 8}}),
        ("param type", {}, {"params": {**PARAMS, "seed": 7.0}}),
        ("repo input digest", {}, {"input_digests": {"data": DIGEST_B, "prev": DIGEST_B}}),
        ("step input digest", {}, {"input_digests": {"data": DIGEST_A, "prev": DIGEST_A}}),
        ("upstream digest", {}, {"upstream_digests": {"prep.features": DIGEST_A}}),
        ("code tree", {}, {"code_tree": OTHER_TREE}),
        ("environment file digest", {}, {"environment_digests": {"requirements.txt": DIGEST_B}}),
        (
            "environment file added",
            {},
            {"environment_digests": {"requirements.txt": DIGEST_A, "uv.lock": ""}},
        ),
        ("image", {}, {"image": "python:3.12-slim"}),
        ("platform", {}, {"platform": "darwin-arm64"}),
        ("declared output kind", {"outputs": {**STEP.outputs, "scores": replace(SCORES, kind="data")}}, {}),
        ("declared output type", {"outputs": {**STEP.outputs, "scores": replace(SCORES, type="dir")}}, {}),
        (
            "declared output added",
            {"outputs": {**STEP.outputs, "log": Output(name="log", type="file", loc=LOC)}},
            {},
        ),
    ],
)
def test_each_part_changes_the_key(
    label: str, step_changes: dict[str, Any], arg_changes: dict[str, Any]
) -> None:
    assert compute(replace(STEP, **step_changes), **arg_changes).key != BASE_KEY


@pytest.mark.parametrize(
    ("label", "step_changes", "arg_changes"),
    [
        ("unused param", {}, {"params": {**PARAMS, "epochs": 300}}),
        ("unused upstream digest", {}, {"upstream_digests": {"prep.features": DIGEST_B, "x.y": DIGEST_A}}),
        (
            "repo input path",
            {"inputs": {**STEP.inputs, "data": RepoInput(name="data", path="/elsewhere/t.csv", loc=LOC)}},
            {},
        ),
        ("output checkout path", {"outputs": {**STEP.outputs, "scores": replace(SCORES, path="x.json")}}, {}),
        ("code dir name", {"code": "elsewhere/src"}, {}),
        ("step name", {"name": "renamed"}, {}),
        ("location in the file", {"loc": Location(file="/abs/x.yaml", line=9, col=3)}, {}),
        ("timeout", {"timeout_minutes": 5.0}, {}),
    ],
)
def test_what_cannot_change_results_keeps_the_key(
    label: str, step_changes: dict[str, Any], arg_changes: dict[str, Any]
) -> None:
    assert compute(replace(STEP, **step_changes), **arg_changes).key == BASE_KEY


def test_no_path_host_time_or_secret_enters_the_parts() -> None:
    text = json.dumps(compute().parts)
    for leak in ("hunter2", "s3cr3t", "/", "data/train.csv", "reports/scores.json", "mlpipe.yaml", "src"):
        # '/' would mean some path got in; the command here holds none.
        assert leak not in text, leak


def test_an_env_value_is_kept_only_as_a_digest() -> None:
    parts = compute().parts
    assert set(parts["env"]) == {"API_TOKEN", "SEED"}
    assert all(v.startswith("sha256:") and len(v) == 71 for v in parts["env"].values())
    assert "hunter2" not in json.dumps(parts)


def test_a_used_param_that_is_not_defined_is_a_key_error() -> None:
    # The loader rejects undefined params; compute must not silently fingerprint without one.
    with pytest.raises(KeyError):
        compute(params={"lr": 0.1})


def test_used_params_and_upstream_are_sorted_and_unique() -> None:
    step = replace(
        STEP,
        run="${{ params.b }} ${{ params.a }} ${{ params.b }} ${{ steps.z.outputs.o }} ${{ steps.a.outputs.o }}",
        env={"X": "${{ params.c }} ${{ steps.a.outputs.o }}"},
    )
    assert fp.used_params(step) == ["a", "b", "c"]
    assert fp.used_upstream(step) == ["a.o", "z.o"]


def test_tokenize_names_references_without_their_values() -> None:
    assert fp.tokenize("a ${{ params.x }}${{ steps.s.outputs.o }} b") == [
        "a ",
        {"params": "x"},
        {"steps": "s.o"},
        " b",
    ]
    assert fp.tokenize("") == []


def test_changes_lists_every_difference_in_a_stable_order() -> None:
    old = compute().parts
    new = compute(
        replace(STEP, run="python train.py", env={"SEED": "${{ params.seed }}", "NEW": "1"}),
        params={**PARAMS, "seed": 8},
        input_digests={"data": DIGEST_B, "prev": DIGEST_B},
        code_tree=OTHER_TREE,
        image="python:3.12",
        platform="darwin-arm64",
    ).parts
    assert fp.changes(old, new) == [
        ("code", "", TREE, OTHER_TREE),
        ("params", "lr", 0.1, None),
        ("params", "seed", 7, 8),
        ("inputs", "data", DIGEST_A, DIGEST_B),
        ("upstream", "prep.features", DIGEST_B, None),
        ("run", "", old["run"], ["python train.py"]),
        ("env", "API_TOKEN", old["env"]["API_TOKEN"], None),
        ("env", "NEW", None, new["env"]["NEW"]),
        ("image", "", None, "python:3.12"),
        ("platform", "", "linux-x86_64", "darwin-arm64"),
    ]
    assert fp.changes(old, old) == []


@pytest.mark.parametrize(
    ("change", "sentence"),
    [
        (("params", "lr", 0.1, 0.2), "param lr: 0.1 -> 0.2"),
        (("params", "who", "hello", "bye"), "param who: 'hello' -> 'bye'"),
        (("params", "lr", None, 0.2), "param lr now used"),
        (("params", "lr", 0.1, None), "param lr no longer used"),
        (("inputs", "data", DIGEST_A, DIGEST_B), "input data changed"),
        (("inputs", "data", None, DIGEST_B), "input data added"),
        (("inputs", "data", DIGEST_A, None), "input data removed"),
        (("upstream", "prep.features", DIGEST_A, DIGEST_B), "upstream output prep.features changed"),
        (("environment", "uv.lock", DIGEST_A, DIGEST_B), "environment file uv.lock changed"),
        (("env", "SEED", None, DIGEST_B), "env SEED added"),
        (("outputs", "model", {"type": "dir"}, None), "declared output model removed"),
        (("run", "", ["a"], ["b"]), "command changed"),
        (("code", "", TREE, OTHER_TREE), "code changed (4b825dc642cb -> 9f8c3d0e1a2b)"),
        (("schema", "", 1, 2), "cache schema version changed"),
        (("image", "", None, "python:3.12"), "image changed: None -> python:3.12"),
        (("platform", "", "linux-x86_64", "darwin-arm64"), "platform changed: linux-x86_64 -> darwin-arm64"),
    ],
)
def test_describe_change(change: tuple[str, str, Any, Any], sentence: str) -> None:
    assert fp.describe_change(*change) == sentence
