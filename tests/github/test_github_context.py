"""The Actions context from the environment and real-shaped event payloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from github_testing import REPO, actions_job, dispatch_payload, pull_request_payload, push_payload
from mlpipe.errors import UsageError
from mlpipe.github.context import from_env

HEAD, BASE, MERGE = "a" * 40, "b" * 40, "c" * 40


def context(tmp_path: Path, event: str, payload: dict, sha: str, ref: str, **extra: str):
    job = actions_job(tmp_path, event=event, payload=payload, sha=sha, ref=ref, token="ghs_secret")
    return from_env({**job.env, **extra})


def test_outside_actions_there_is_no_context() -> None:
    assert from_env({"CI": "true"}) is None


def test_push(tmp_path: Path) -> None:
    ctx = context(tmp_path, "push", push_payload(HEAD), HEAD, "refs/heads/main")
    assert ctx is not None
    assert (ctx.repository, ctx.sha, ctx.ref, ctx.event, ctx.pr_number, ctx.fork) == (
        REPO,
        HEAD,
        "refs/heads/main",
        "push",
        None,
        False,
    )
    assert ctx.run_url == f"https://github.com/{REPO}/actions/runs/9876543210"
    assert ctx.output == tmp_path / "output" and ctx.step_summary == tmp_path / "step_summary"
    assert "ghs_secret" not in repr(ctx)


def test_the_retry_backoff_is_a_setting(tmp_path: Path) -> None:
    push = (tmp_path, "push", push_payload(HEAD), HEAD, "refs/heads/main")
    assert context(*push).backoff_s == 1.0  # type: ignore[union-attr]
    assert context(*push, MLPIPE_GITHUB_BACKOFF_S="0.25").backoff_s == 0.25  # type: ignore[union-attr]
    with pytest.raises(UsageError, match="MLPIPE_GITHUB_BACKOFF_S='soon': expected a number of seconds"):
        context(*push, MLPIPE_GITHUB_BACKOFF_S="soon")


def test_a_pull_request_reports_on_its_head_not_the_merge_commit(tmp_path: Path) -> None:
    ctx = context(tmp_path, "pull_request", pull_request_payload(12, HEAD, BASE), MERGE, "refs/pull/12/merge")
    assert ctx is not None
    assert (ctx.sha, ctx.pr_number, ctx.fork) == (HEAD, 12, False)


def test_fork_and_deleted_fork_pull_requests(tmp_path: Path) -> None:
    fork = context(tmp_path, "pull_request", pull_request_payload(3, HEAD, BASE, head_repo="x/y"), MERGE, "r")
    gone = context(tmp_path, "pull_request", pull_request_payload(4, HEAD, BASE, head_repo=None), MERGE, "r")
    assert fork is not None and fork.fork and fork.sha == HEAD
    assert gone is not None and gone.fork


def test_tag_push_and_dispatch(tmp_path: Path) -> None:
    tag = context(tmp_path, "push", push_payload(HEAD, "refs/tags/v1.0"), HEAD, "refs/tags/v1.0")
    dispatch = context(tmp_path, "workflow_dispatch", dispatch_payload({"C": "5"}), HEAD, "refs/heads/main")
    assert tag is not None and (tag.ref, tag.sha) == ("refs/tags/v1.0", HEAD)
    assert dispatch is not None and (dispatch.event, dispatch.sha, dispatch.pr_number) == (
        "workflow_dispatch",
        HEAD,
        None,
    )


def test_token_api_url_and_a_broken_payload(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    ctx = from_env(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_PATH": str(tmp_path / "bad.json"),
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_SHA": MERGE,
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_TOKEN": "t1",
            "MLPIPE_GITHUB_TOKEN": "t2",
            "GITHUB_API_URL": "https://ghe.example/api/v3/",
        }
    )
    assert ctx is not None
    assert (ctx.sha, ctx.token, ctx.api_url, ctx.pr_number) == (
        MERGE,
        "t2",
        "https://ghe.example/api/v3",
        None,
    )
