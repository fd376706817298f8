"""`mlpipe ci-run` inside a GitHub Actions job, against the GitHub API stand-in (validated by GitHub's OpenAPI)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from github_testing import REPO, actions_job, pull_request_payload, push_payload
from mlpipe_testing import Project, git
from service_fixtures import GITHUB_READ_TOKEN, GITHUB_WRITE_TOKEN

TRAIN = """import sys


def fit(rate):
    if rate > 1:
        raise ValueError(f"rate {rate} is too high")
    return rate


def main():
    fit(float(sys.argv[1]))
    print("trained")


main()
"""

PIPELINE = """name: demo
params:
  rate: 0.5
steps:
  prepare:
    code: steps/prepare
    run: echo prepared > ${{ outputs.data }}/x
    outputs:
      data: {}
  train:
    code: steps/train
    run: python train.py ${{ params.rate }}
    needs: [prepare]
"""


def make_project(tmp_path: Path) -> Project:
    # The pipeline lives in a subdirectory: annotation paths must still be repository paths.
    root = tmp_path / "repo"
    files = {
        ".gitignore": ".mlpipe/\n",
        "ml/mlpipe.yaml": PIPELINE,
        "ml/steps/prepare/README": "prepare\n",
        "ml/steps/train/train.py": TRAIN,
    }
    from mlpipe_testing import make_repo

    make_repo(root, files)
    return Project(root / "ml")


def run_in_job(
    project: Project, tmp_path: Path, api: Any, *args: str, token: str = GITHUB_WRITE_TOKEN, **job: Any
):
    sha = project.git("rev-parse", "HEAD").strip()
    event = job.pop("event", "push")
    ref = job.pop("ref", "refs/heads/main")
    payload = job.pop("payload", None) or push_payload(sha, ref)
    actions = actions_job(
        tmp_path / "job",
        event=event,
        payload=payload,
        sha=job.pop("sha", sha),
        ref=ref,
        token=token,
        api_url=api.url,
    )
    outcome = project.run("ci-run", *args, env={**actions.env, "MLPIPE_GITHUB_THROTTLE_S": "0", **job})
    return outcome, actions


def test_a_push_run_publishes_one_completed_check_run(tmp_path: Path, github_api: Any) -> None:
    project = make_project(tmp_path)
    outcome, job = run_in_job(project, tmp_path, github_api)
    outcome.assert_success()
    assert github_api.violations == []
    run = github_api.only_check_run()
    record = project.record()
    sha = project.git("rev-parse", "HEAD").strip()
    assert (run["name"], run["head_sha"], run["external_id"]) == ("mlpipe / demo", sha, record["run_id"])
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    assert run["details_url"] == f"https://github.com/{REPO}/actions/runs/9876543210"
    assert run["output"]["title"] == "demo: succeeded (2 ran)"
    summary = run["output"]["summary"]
    assert "| `train` | ✅ ran |" in summary and "```mermaid" in summary and "classDef ran" in summary
    assert record["snapshots"]["steps/train"] in summary
    # Created in progress first, then updated as steps finished (throttle 0), then completed.
    creates = [r for r in github_api.requests if r.operation == "checks/create"]
    assert len(creates) == 1 and creates[0].body["status"] == "in_progress" and creates[0].status == 201
    updates = [r for r in github_api.requests if r.operation == "checks/update"]
    assert len(updates) >= 3 and all(r.status == 200 for r in updates)
    # One notice per step that ran, at the step's line in the pipeline file, saying why.
    notices = {a["title"]: a for a in run["annotations"]}
    assert notices["mlpipe: step train ran"]["path"] == "ml/mlpipe.yaml"
    assert notices["mlpipe: step train ran"]["start_line"] == 10
    assert notices["mlpipe: step train ran"]["message"] == "Why: no stored result for this step yet"
    # Step outputs and the job summary, as the action hands them on.
    outputs = job.outputs()
    assert outputs["run-id"] == record["run_id"]
    assert (outputs["steps-ran"], outputs["steps-reused"], outputs["steps-failed"]) == ("2", "0", "0")
    assert outputs["check-run-id"] == str(run["id"])
    assert json.loads(Path(outputs["results-file"]).read_text())["run_id"] == record["run_id"]
    assert Path(outputs["summary-file"]).read_text() in job.summary_file.read_text()
    assert "## ✅ mlpipe · demo: succeeded" in job.summary_file.read_text()


def test_a_rerun_reports_reused_steps_with_their_source(tmp_path: Path, github_api: Any) -> None:
    project = make_project(tmp_path)
    run_in_job(project, tmp_path / "first", github_api)[0].assert_success()
    first = project.record()["run_id"]
    github_api.reset()
    github_api.add_token(GITHUB_WRITE_TOKEN)
    outcome, job = run_in_job(project, tmp_path / "second", github_api)
    outcome.assert_success()
    run = github_api.only_check_run()
    sha = project.git("rev-parse", "HEAD").strip()
    link = f"https://github.com/{REPO}/actions/runs/9876543210"  # the first run's workflow run
    assert f"from run [{first}]({link}) at {sha[:12]}" in run["output"]["summary"]
    assert run["output"]["title"] == "demo: succeeded (2 reused)"
    assert run["annotations"] == []
    assert job.outputs()["steps-reused"] == "2"


def test_a_failing_step_is_annotated_at_the_innermost_frame_in_its_code(
    tmp_path: Path, github_api: Any
) -> None:
    project = make_project(tmp_path)
    outcome, job = run_in_job(project, tmp_path, github_api, "-p", "rate=2")
    outcome.assert_code(1)
    assert github_api.violations == []
    run = github_api.only_check_run()
    assert (run["status"], run["conclusion"]) == ("completed", "failure")
    failures = [a for a in run["annotations"] if a["annotation_level"] == "failure"]
    assert len(failures) == 1
    failure = failures[0]
    assert (failure["path"], failure["start_line"]) == ("ml/steps/train/train.py", 6)
    assert failure["title"] == "mlpipe: step train failed"
    assert failure["message"].startswith("exited with code 1\n\nTraceback (most recent call last):")
    assert "ValueError: rate 2.0 is too high" in failure["message"]
    assert job.outputs()["steps-failed"] == "1"
    assert "| `train` | ❌ failed |" in job.summary_file.read_text()


def test_compiler_style_errors_and_unlocated_failures(tmp_path: Path, github_api: Any) -> None:
    root = tmp_path / "repo"
    from mlpipe_testing import make_repo

    make_repo(
        root,
        {
            ".gitignore": ".mlpipe/\n",
            "mlpipe.yaml": (
                "name: lint\nsteps:\n  check:\n    code: src\n"
                "    run: bash check.sh\n"
                "  other:\n    code: src\n    run: echo nothing useful && exit 3\n"
            ),
            "src/check.sh": "echo '/usr/include/x.h:1: note: elsewhere'\necho 'model.cfg:3:7: error: bad'\nexit 2\n",
            "src/model.cfg": "a\nb\nc\n",
        },
    )
    project = Project(root)
    outcome, _ = run_in_job(project, tmp_path, github_api)
    outcome.assert_code(1)
    failures = {a["title"]: a for a in github_api.only_check_run()["annotations"]}
    check = failures["mlpipe: step check failed"]
    assert (check["path"], check["start_line"]) == ("src/model.cfg", 3)
    other = failures["mlpipe: step other failed"]
    assert (other["path"], other["start_line"]) == ("mlpipe.yaml", 6)
    assert github_api.violations == []


def test_a_pull_request_reports_on_the_head_commit_not_the_merge_commit(
    tmp_path: Path, github_api: Any
) -> None:
    """As actions/checkout does: the PR's merge commit fetched shallow from refs/pull/N/merge, detached."""
    project = make_project(tmp_path / "origin")
    origin = project.root.parent
    base = git(origin, "rev-parse", "HEAD").strip()
    git(origin, "checkout", "-q", "-b", "feature")
    project.write({"steps/train/train.py": TRAIN.replace("0.5", "0.5") + "# tuned\n"})
    project.commit("tune")
    head = git(origin, "rev-parse", "HEAD").strip()
    git(origin, "checkout", "-q", "main")
    (origin / "NEWS").write_text("main moved on\n")
    git(origin, "add", "NEWS")
    git(origin, "commit", "-q", "-m", "news")
    git(origin, "merge", "-q", "--no-ff", "-m", "Merge feature into main", "feature")
    merge = git(origin, "rev-parse", "HEAD").strip()
    git(origin, "update-ref", "refs/pull/7/merge", merge)
    git(origin, "reset", "-q", "--hard", "HEAD~1")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    git(checkout, "init", "-q")
    git(
        checkout,
        "fetch",
        "-q",
        "--depth=1",
        f"file://{origin}",
        "+refs/pull/7/merge:refs/remotes/pull/7/merge",
    )
    git(checkout, "checkout", "-q", "--detach", "refs/remotes/pull/7/merge")
    assert git(checkout, "rev-parse", "--is-shallow-repository").strip() == "true"
    pr = Project(checkout / "ml")
    payload = pull_request_payload(7, head, base)
    outcome, _ = run_in_job(
        pr, tmp_path, github_api, event="pull_request", ref="refs/pull/7/merge", payload=payload, sha=merge
    )
    outcome.assert_success()
    run = github_api.only_check_run()
    assert run["head_sha"] == head != merge
    assert run["conclusion"] == "success"
    assert github_api.violations == []


@pytest.mark.parametrize("succeeds", [True, False])
def test_a_fork_pull_request_falls_back_to_workflow_commands(
    tmp_path: Path, github_api: Any, succeeds: bool
) -> None:
    project = make_project(tmp_path)
    sha = project.git("rev-parse", "HEAD").strip()
    payload = pull_request_payload(8, sha, sha, head_repo="forker/ml-repo")
    args = () if succeeds else ("-p", "rate=3")
    outcome, job = run_in_job(
        project,
        tmp_path,
        github_api,
        *args,
        token=GITHUB_READ_TOKEN,
        event="pull_request",
        ref="refs/pull/8/merge",
        payload=payload,
    )
    assert outcome.code == (0 if succeeds else 1), outcome.output
    assert github_api.check_runs == {}
    assert [r.status for r in github_api.requests] == [403]
    assert "the token cannot write checks (a pull request from a fork): POST" in outcome.stdout
    assert "::notice file=ml/mlpipe.yaml,line=5,title=mlpipe%3A step prepare ran::" in outcome.stdout
    if not succeeds:
        assert re.search(
            r"^::error file=ml/steps/train/train.py,line=6,title=mlpipe%3A step train failed::",
            outcome.stdout,
            re.MULTILINE,
        )
        assert "run " in outcome.stdout and ": failed" in outcome.stdout  # the result is not hidden
    summary = job.summary_file.read_text()
    assert ("succeeded" if succeeds else "failed") in summary.splitlines()[0]
    assert job.outputs()["check-run-id"] == ""


def test_the_token_is_masked_and_never_logged_or_recorded(tmp_path: Path, github_api: Any) -> None:
    project = make_project(tmp_path)
    outcome, job = run_in_job(project, tmp_path, github_api, "-p", "rate=2")
    assert outcome.stdout.splitlines()[0] == f"::add-mask::{GITHUB_WRITE_TOKEN}"
    rest = outcome.output.replace(f"::add-mask::{GITHUB_WRITE_TOKEN}", "")
    assert GITHUB_WRITE_TOKEN not in rest
    for path in [*project.root.joinpath(".mlpipe").rglob("*"), *job.root.rglob("*")]:
        if path.is_file() and path.name != "event.json":
            assert GITHUB_WRITE_TOKEN.encode() not in path.read_bytes(), path


def test_rate_limits_and_server_errors_are_retried(tmp_path: Path, github_api: Any) -> None:
    project = make_project(tmp_path)
    github_api.fail_next(403, headers={"Retry-After": "1"})  # a secondary rate limit on the create
    github_api.fail_next(502)
    github_api.fail_next(429, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "0"})
    # The 502's wait is the backoff (MLPIPE_GITHUB_BACKOFF_S, 1 s by default): short here, it is still waited.
    outcome, _ = run_in_job(project, tmp_path, github_api, MLPIPE_GITHUB_BACKOFF_S="0.01")
    outcome.assert_success()
    statuses = [r.status for r in github_api.requests]
    assert statuses[:4] == [403, 502, 429, 201]
    run = github_api.only_check_run()
    assert run["conclusion"] == "success"
    assert github_api.violations == []


def test_a_broken_api_never_fails_the_pipeline(tmp_path: Path, github_api: Any) -> None:
    project = make_project(tmp_path)
    github_api.fail_next(500, times=20)
    outcome, job = run_in_job(project, tmp_path, github_api, MLPIPE_GITHUB_BACKOFF_S="0.01")
    outcome.assert_success()
    statuses = [r.status for r in github_api.requests]
    assert statuses[:5] == [500] * 5  # the create, tried 5 times (after 0.01, 0.02, 0.04 and 0.08 s)
    assert "::warning title=mlpipe::publishing the check run failed: POST" in outcome.stdout
    assert "HTTP 500" in outcome.stdout
    assert "::notice file=ml/mlpipe.yaml" in outcome.stdout
    assert job.outputs()["status"] == "succeeded"


def test_more_than_50_annotations_go_in_several_requests(tmp_path: Path, github_api: Any) -> None:
    steps = "".join(f"  s{i}:\n    run: echo {i}\n" for i in range(57))
    from mlpipe_testing import make_repo

    root = make_repo(
        tmp_path / "repo", {".gitignore": ".mlpipe/\n", "mlpipe.yaml": f"name: many\nsteps:\n{steps}"}
    )
    outcome, _ = run_in_job(Project(root), tmp_path, github_api)
    outcome.assert_success()
    assert github_api.violations == []  # the schema allows at most 50 a request
    run = github_api.only_check_run()
    assert len(run["annotations"]) == 57
    sizes = [len((r.body.get("output") or {}).get("annotations") or []) for r in github_api.requests]
    assert max(sizes) == 50 and sum(sizes) == 57


def test_no_publish_checks_only_logs(tmp_path: Path, github_api: Any) -> None:
    project = make_project(tmp_path)
    outcome, job = run_in_job(project, tmp_path, github_api, "--no-publish-checks")
    outcome.assert_success()
    assert github_api.requests == []
    assert "::notice file=ml/mlpipe.yaml,line=10,title=mlpipe%3A step train ran::" in outcome.stdout
    assert job.outputs()["status"] == "succeeded"


def test_a_summary_over_githubs_limit_is_truncated_with_a_note(tmp_path: Path, github_api: Any) -> None:
    from mlpipe.core.plan import Plan
    from mlpipe.github.annotations import Layout
    from mlpipe.github.checks import GitHubReporter
    from mlpipe.github.client import GitHubAPI as Client
    from mlpipe.github.context import GitHubContext
    from mlpipe.runs import RunRecord, StepRecord

    steps = {f"step-{i:04d}-" + "x" * 40: StepRecord(status="ran", reasons=["r" * 30]) for i in range(1500)}
    record = RunRecord(
        run_id="r1",
        pipeline="big",
        pipeline_file="mlpipe.yaml",
        started_at="2026-01-01T00:00:00.000Z",
        steps=steps,
    )
    summary_file = tmp_path / "summary"
    summary_file.write_text("x" * (1024 * 1024 - 1000))  # the step already wrote most of its 1 MiB
    ctx = GitHubContext(
        repository=REPO,
        sha="a" * 40,
        ref="refs/heads/main",
        event="push",
        token=GITHUB_WRITE_TOKEN,
        api_url=github_api.url,
        step_summary=summary_file,
        temp=tmp_path,
    )
    layout = Layout(repo_root=str(tmp_path), workspace="", pipeline_file="mlpipe.yaml", steps={})
    with open(tmp_path / "log", "w") as log:
        reporter = GitHubReporter(ctx, layout, {}, api=Client(github_api.url, GITHUB_WRITE_TOKEN), stream=log)
        reporter.run_started(record, Plan())
        record.status, record.ended_at = "succeeded", "2026-01-01T00:01:00.000Z"
        reporter.run_finished(record)
    assert github_api.violations == []
    run = github_api.only_check_run()
    assert run["conclusion"] == "success" and len(run["annotations"]) == 1500
    assert len(run["output"]["summary"]) == 65_535
    assert "over GitHub's limit of 65,535." in run["output"]["summary"]
    assert summary_file.stat().st_size <= 1024 * 1024
    assert "truncated: the full summary is" in summary_file.read_text()


@pytest.mark.parametrize("publish", [True, False])
def test_a_backend_warning_becomes_an_annotation(tmp_path: Path, github_api: Any, publish: bool) -> None:
    """The store's warnings reach the run's reporters: on stderr as before, and in the check run (or, without
    one, as a `::warning` line in the log) on the pipeline file."""
    project = make_project(tmp_path)
    project.run("ci-run").assert_success()
    fingerprint = project.record()["steps"]["prepare"]["fingerprint"]
    entry = project.root / ".mlpipe" / "cache" / "results" / fingerprint[:2] / f"{fingerprint}.json"
    entry.write_text("{not json")
    args = () if publish else ("--no-publish-checks",)
    outcome, _job = run_in_job(project, tmp_path, github_api, *args)
    outcome.assert_success()
    warning = f"ignoring corrupt cache entry {entry}: result: not JSON"
    assert f"mlpipe: warning: {warning}" in outcome.stderr
    if publish:
        found = [a for a in github_api.only_check_run()["annotations"] if a["annotation_level"] == "warning"]
        assert [(a["path"], a["start_line"], a["title"]) for a in found] == [
            ("ml/mlpipe.yaml", 1, "mlpipe warning")
        ]
        assert found[0]["message"].startswith(warning)
    else:
        assert github_api.requests == []
        lines = [line for line in outcome.stdout.splitlines() if line.startswith("::warning ")]
        assert len(lines) == 1
        assert lines[0].startswith("::warning file=ml/mlpipe.yaml,line=1,title=mlpipe warning::" + warning)
