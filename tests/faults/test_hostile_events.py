"""Hostile GitHub event payloads (GITHUB_EVENT_PATH): wrong types at every field mlpipe reads, files nested
100,000 deep, 50 MB, not UTF-8, not a file. Each field is absent when it is not what GitHub sends, a payload
that cannot be read within bounds is an empty one, and a pull request whose head repository cannot be told is
from a fork (no write access). Never a traceback: in-process through github/context.py, which every reader of
the payload goes through, and through the real `mlpipe ci-run` in a pull-request job against the GitHub API
stand-in."""

from __future__ import annotations

import copy
import json
import os
import threading
from pathlib import Path
from typing import Any

import fault_tally
import pytest
from fsck_testing import assert_store_whole
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from github_testing import REPO, actions_job, pull_request_payload
from mlpipe.cache.trust import policy
from mlpipe.github.context import GitHubContext, from_env
from mlpipe.run.stores import context_from_env
from mlpipe_testing import Project, make_repo
from service_fixtures import GITHUB_WRITE_TOKEN

HEAD, BASE, MERGE = "a" * 40, "b" * 40, "c" * 40
WRONG = [None, [], ["x"], {}, {"a": {"b": None}}, "", 0, -1, True, 1.5, 2**70, "7", "x" * 10_000, "a\0b"]
"""Values of the wrong type or form for every field below."""
FIELDS = [
    ("repository",),
    ("repository", "full_name"),
    ("repository", "default_branch"),
    ("pull_request",),
    ("pull_request", "number"),
    ("pull_request", "head"),
    ("pull_request", "head", "sha"),
    ("pull_request", "head", "repo"),
    ("pull_request", "head", "repo", "full_name"),
    ("pull_request", "base"),
    ("pull_request", "base", "ref"),
    ("pull_request", "base", "sha"),
    ("pull_request", "base", "repo"),
    ("pull_request", "base", "repo", "full_name"),
]
"""Every payload field github/context.py reads (and base.ref, which the runner puts in GITHUB_BASE_REF)."""


def job_env(tmp_path: Path, payload_path: Path, event: str = "pull_request") -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(payload_path),
        "GITHUB_SHA": MERGE,
        "GITHUB_REF": "refs/pull/7/merge",
        "GITHUB_REPOSITORY": REPO,
    }


def read(tmp_path: Path, payload: Any, event: str = "pull_request") -> GitHubContext:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload))
    ctx = from_env(job_env(tmp_path, path, event))
    assert ctx is not None
    assert_well_typed(ctx, {**job_env(tmp_path, path, event)})
    return ctx


def assert_well_typed(ctx: GitHubContext, env: dict[str, str]) -> None:
    """What every later reader of the context relies on, whatever the payload held."""
    assert isinstance(ctx.repository, str) and ctx.repository == env["GITHUB_REPOSITORY"]
    assert isinstance(ctx.sha, str) and (ctx.sha == env["GITHUB_SHA"] or len(ctx.sha) in {40, 64})
    assert ctx.pr_number is None or (type(ctx.pr_number) is int and 0 < ctx.pr_number < 2**63)
    assert type(ctx.fork) is bool
    assert ctx.default_branch is None or (isinstance(ctx.default_branch, str) and ctx.default_branch)
    assert ctx.base_sha is None or (isinstance(ctx.base_sha, str) and len(ctx.base_sha) in {40, 64})
    # The trust policy every registry run derives from it.
    run = context_from_env(env, ref=None, dirty=False, local_default_branch="main")
    decided = policy(run, "127.0.0.1:5000/org/repo")
    if ctx.event == "pull_request" and ctx.fork:
        assert decided.write is None


def put(payload: dict[str, Any], field: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    node = out
    for key in field[:-1]:
        node = node[key]
    node[field[-1]] = value
    return out


@pytest.mark.parametrize("field", FIELDS, ids=".".join)
def test_a_field_of_the_wrong_type_is_absent(tmp_path: Path, field: tuple[str, ...]) -> None:
    good = pull_request_payload(7, HEAD, BASE)
    for value in WRONG:
        ctx = read(tmp_path, put(good, field, value))

        if field[:3] in {("pull_request",), ("pull_request", "head"), ("pull_request", "head", "repo")}:
            assert ctx.fork, (field, value)  # the head repository cannot be told: a fork
        if field in {("pull_request",), ("pull_request", "number")}:
            assert ctx.pr_number is None
        if field in {("pull_request",), ("pull_request", "head"), ("pull_request", "head", "sha")}:
            assert ctx.sha == MERGE
        if field in {("pull_request",), ("pull_request", "base"), ("pull_request", "base", "sha")}:
            assert ctx.base_sha is None
        text = isinstance(value, str) and value and "\0" not in value  # a branch name may be any text
        if field == ("repository",) or (field == ("repository", "default_branch") and not text):
            assert ctx.default_branch is None
    fault_tally.record("hostile event payload", injected=len(WRONG))


def test_a_well_formed_payload_still_reads_whole(tmp_path: Path) -> None:
    ctx = read(tmp_path, pull_request_payload(7, HEAD, BASE))

    assert (ctx.sha, ctx.pr_number, ctx.fork, ctx.base_sha, ctx.default_branch) == (
        HEAD,
        7,
        False,
        BASE,
        "main",
    )


def test_a_number_that_is_a_boolean_is_not_a_pull_request_number(tmp_path: Path) -> None:
    """`True` is an int in Python: it made PR #True (the comment URLs went to /issues/True)."""
    ctx = read(tmp_path, put(pull_request_payload(7, HEAD, BASE), ("pull_request", "number"), True))

    assert ctx.pr_number is None


def write_deep(path: Path) -> None:
    path.write_text('{"pull_request": ' + "[" * 100_000 + "]" * 100_000 + "}")


def write_deep_objects(path: Path) -> None:
    path.write_text('{"a": ' * 100_000 + "1" + "}" * 100_000)


def write_50mb(path: Path) -> None:
    payload = pull_request_payload(7, HEAD, BASE, head_repo=REPO)
    text = json.dumps(payload)
    with path.open("w") as stream:
        stream.write(text[:-1] + ', "padding": "')
        chunk = "x" * (1 << 20)
        for _ in range(50):
            stream.write(chunk)
        stream.write('"}')


def write_not_utf8(path: Path) -> None:
    path.write_bytes(json.dumps(pull_request_payload(7, HEAD, BASE)).encode()[:-1] + b', "t": "\xff\xfe"}')


def write_nul(path: Path) -> None:
    path.write_bytes(b'{"pull_request": {"number": 7\x00}}')


def write_digits(path: Path) -> None:
    path.write_text('{"pull_request": {"number": ' + "9" * 5000 + "}}")


def write_list(path: Path) -> None:
    path.write_text(json.dumps([pull_request_payload(7, HEAD, BASE)]))


def write_directory(path: Path) -> None:
    path.mkdir()


def write_fifo(path: Path) -> None:
    os.mkfifo(path)  # nothing ever writes it: reading it would block forever


def write_nothing(path: Path) -> None:
    pass


UNREADABLE = {
    "nested 100,000 deep": write_deep,
    "objects nested 100,000 deep": write_deep_objects,
    "50 MB": write_50mb,
    "not UTF-8": write_not_utf8,
    "NUL byte": write_nul,
    "5000-digit number": write_digits,
    "a list": write_list,
    "a directory": write_directory,
    "a FIFO": write_fifo,
    "missing": write_nothing,
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", list(UNREADABLE))
def test_a_payload_that_cannot_be_read_within_bounds_is_an_empty_one(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "event.json"
    UNREADABLE[kind](path)
    env = job_env(tmp_path, path)

    done: list[GitHubContext | None] = []
    reader = threading.Thread(target=lambda: done.append(from_env(env)), daemon=True)
    reader.start()
    reader.join(timeout=30)

    assert done, f"reading a payload that is {kind} did not return within 30 s"
    ctx = done[0]
    assert ctx is not None
    assert_well_typed(ctx, env)
    assert (ctx.sha, ctx.pr_number, ctx.fork, ctx.base_sha) == (MERGE, None, True, None)
    fault_tally.record("hostile event payload")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    field=st.sampled_from(FIELDS),
    value=JSON,
    event=st.sampled_from(["pull_request", "pull_request_target", "push", "workflow_dispatch"]),
)
def test_fuzzed_payloads_always_read_as_a_well_typed_context(
    tmp_path: Path, field: tuple[str, ...], value: Any, event: str
) -> None:
    read(tmp_path, put(pull_request_payload(7, HEAD, BASE), field, value), event)


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(raw=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
def test_fuzzed_payload_files_always_read_as_a_well_typed_context(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "event.json"
    path.write_bytes(raw)
    env = job_env(tmp_path, path)

    ctx = from_env(env)

    assert ctx is not None
    assert_well_typed(ctx, env)


PIPELINE = """\
name: demo
steps:
  prepare:
    run: echo prepared > ${{ outputs.data }}/x
    outputs:
      data: {}
  train:
    run: cat ${{ inputs.data }}/x > ${{ outputs.model }}
    inputs:
      data: ${{ steps.prepare.outputs.data }}
    outputs:
      model: {type: file}
"""

WRONG_TYPES = {
    "base.ref a list": (("pull_request", "base", "ref"), ["main"]),
    "number a string": (("pull_request", "number"), "7"),
    "repository null": (("repository",), None),
    "head.sha a mapping": (("pull_request", "head", "sha"), {"sha": HEAD}),
}


@pytest.mark.timeout(300)
def test_ci_run_in_a_pull_request_job_with_hostile_payloads(tmp_path: Path, github_api: Any) -> None:
    """The whole command: exit 0, no traceback, only valid API requests, the results right, the store whole."""
    project = Project(make_repo(tmp_path / "repo", {".gitignore": ".mlpipe/\n", "mlpipe.yaml": PIPELINE}))
    head = project.git("rev-parse", "HEAD").strip()
    cache = tmp_path / "cache"
    good = pull_request_payload(7, head, head)
    cases: dict[str, Any] = {name: put(good, *change) for name, change in WRONG_TYPES.items()}
    cases |= {
        name: writer
        for name, writer in UNREADABLE.items()
        if name in {"nested 100,000 deep", "50 MB", "not UTF-8"}
    }
    completed, digests = 0, set()
    for number, (name, payload) in enumerate(cases.items()):
        job = actions_job(tmp_path / f"job{number}", event="pull_request", payload=good, sha=MERGE,
                          ref="refs/pull/7/merge", token=GITHUB_WRITE_TOKEN, api_url=github_api.url)  # fmt: skip
        event_path = Path(job.env["GITHUB_EVENT_PATH"])
        if callable(payload):
            event_path.unlink()
            payload(event_path)
        else:
            event_path.write_text(json.dumps(payload))
        env = {**job.env, "MLPIPE_CACHE": str(cache), "MLPIPE_GITHUB_THROTTLE_S": "0"}

        outcome = project.run("ci-run", *(["--no-reuse"] if number % 2 else []), env=env, timeout=120)

        assert outcome.code == 0, f"{name}: exit {outcome.code}\n{outcome.output}"
        assert "Traceback" not in outcome.output, name
        assert github_api.violations == [], name
        train = project.record()["steps"]["train"]
        assert train["status"] == ("ran" if number % 2 else "reused") or number == 0, name
        digests.add(json.dumps(train["outputs"], sort_keys=True))
        completed += 1
    assert len(digests) == 1  # every run, reused or not, has the one result the steps produce
    assert {run["head_sha"] for run in github_api.check_runs.values()} <= {head, MERGE}
    assert_store_whole(cache)
    fault_tally.record("hostile event payload", injected=len(cases), runs_completed=completed)
