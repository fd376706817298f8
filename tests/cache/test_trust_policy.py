"""Who reads and writes which registry repository (pure rules), and reading them from a GitHub event."""

from __future__ import annotations

import json

import pytest

from mlpipe.cache.trust import CachePolicy, RunContext, policy
from mlpipe.run.stores import context_from_env

REPO = "org/demo/cache"


def ctx(**kw) -> RunContext:
    base = {"event": "push", "ref": "refs/heads/main", "default_branch": "main"}
    return RunContext(**{**base, **kw})


def test_default_branch_push_reads_and_writes_the_trusted_repository() -> None:
    p = policy(ctx(), REPO)
    assert (p.read, p.write, p.protected) == ((REPO,), REPO, True)


@pytest.mark.parametrize(
    "context",
    [
        ctx(ref="refs/tags/v1.0"),
        ctx(ref="refs/heads/release", ref_protected=True),
        ctx(ref="refs/heads/release/2", protected_refs=("refs/heads/release/*",)),
        ctx(event="schedule"),
        ctx(event="workflow_dispatch"),
        ctx(event="local"),
    ],
)
def test_protected_refs(context: RunContext) -> None:
    assert policy(context, REPO).write == REPO


def test_same_repo_pr_reads_trusted_and_its_scope_and_writes_its_scope() -> None:
    p = policy(ctx(event="pull_request", ref="refs/pull/12/merge", pr_number=12), REPO)
    assert p.read == (REPO, f"{REPO}/pr-12")
    assert p.write == f"{REPO}/pr-12"
    assert not p.protected


def test_fork_pr_and_untrusted_events_are_read_only() -> None:
    fork = policy(ctx(event="pull_request", ref="refs/pull/3/merge", pr_number=3, fork=True), REPO)
    assert fork.write is None and fork.why == "a pull request from a fork is untrusted: read-only"
    target = policy(ctx(event="pull_request_target", ref="refs/heads/main", pr_number=3), REPO)
    assert target.write is None and target.why == "event 'pull_request_target' is untrusted: read-only"
    comment = policy(ctx(event="issue_comment"), REPO)
    assert comment.write is None


def test_other_branches_get_a_scope_of_their_own_and_distinct_names_never_share_it() -> None:
    p = policy(ctx(ref="refs/heads/feature-x"), REPO)
    assert p.write == f"{REPO}/branch-feature-x"
    assert p.read == (REPO, f"{REPO}/branch-feature-x")
    a = policy(ctx(ref="refs/heads/Feature/X"), REPO).write
    b = policy(ctx(ref="refs/heads/feature-x"), REPO).write
    assert a != b and a is not None and a.startswith(f"{REPO}/branch-feature-x-")


def test_modes_and_dirty_runs() -> None:
    assert policy(ctx(), REPO, mode="read").write is None
    off = policy(ctx(), REPO, mode="off")
    assert off.read == () and off.write is None
    forced = policy(ctx(event="pull_request", pr_number=3, fork=True), REPO, mode="read-write")
    assert forced.write == f"{REPO}/pr-3"
    dirty = policy(ctx(dirty=True), REPO)
    assert dirty.write is None
    assert dirty.why == "uncommitted changes: not pushing (--allow-dirty-push to push anyway)"
    assert policy(ctx(dirty=True), REPO, allow_dirty_push=True).write == REPO


def test_the_trusted_repository_counts_only_entries_from_protected_runs() -> None:
    p = CachePolicy(read=(REPO, f"{REPO}/pr-1"), write=f"{REPO}/pr-1", trusted=REPO, protected=False, why="")
    assert p.accepts(REPO, {"protected": True})
    assert not p.accepts(REPO, {"protected": False})
    assert not p.accepts(REPO, {})
    assert p.accepts(f"{REPO}/pr-1", {"protected": False})


def test_context_from_a_github_pull_request_event(tmp_path) -> None:
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps(
            {
                "repository": {"full_name": "org/demo", "default_branch": "trunk"},
                "pull_request": {"number": 5, "head": {"repo": {"full_name": "someone/demo"}}},
            }
        )
    )
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_REF": "refs/pull/5/merge",
        "GITHUB_EVENT_PATH": str(event),
        "MLPIPE_PROTECTED_REFS": "refs/heads/rel-*, refs/heads/x",
    }
    c = context_from_env(env, ref=None, dirty=False, local_default_branch=None)
    assert c == RunContext(
        event="pull_request",
        ref="refs/pull/5/merge",
        default_branch="trunk",
        pr_number=5,
        fork=True,
        protected_refs=("refs/heads/rel-*", "refs/heads/x"),
    )


def test_context_outside_github_uses_the_local_branch_and_remote_head() -> None:
    c = context_from_env({}, ref="refs/heads/main", dirty=True, local_default_branch="main")
    assert c == RunContext(event="local", ref="refs/heads/main", default_branch="main", dirty=True)
    protected = context_from_env(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_REF": "refs/heads/dev",
            "GITHUB_REF_PROTECTED": "true",
        },
        ref=None,
        dirty=False,
        local_default_branch=None,
    )
    assert policy(protected, REPO).write == REPO
