"""The one check run of a fan-out run (issue 15), on the GitHub API stand-in: the plan job creates it in progress,
each wave job updates it as its steps finish, the report job completes it from the merged record."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from fanout_testing import Workflow, pipeline, step
from service_fixtures import GITHUB_WRITE_TOKEN

PIPELINE = pipeline(
    "checked",
    step("prepare")
    + step("features", inputs={"d": "prepare"})
    + step("broken", "exit 4")
    + step("train", inputs={"f": "features"}),
)


@pytest.fixture
def flow(project_factory, registry, tmp_path: Path, github_api: Any) -> Workflow:
    origin = project_factory({"mlpipe.yaml": PIPELINE})
    cache = f"oci://{registry.host}/t/{uuid.uuid4().hex[:12]}"
    return Workflow(origin, tmp_path, cache, token=GITHUB_WRITE_TOKEN, api_url=github_api.url)


def test_one_check_run_is_created_by_the_plan_kept_current_by_the_jobs_and_completed_by_the_report(
    flow: Workflow, github_api: Any
) -> None:
    flow.plan().assert_success()
    run = github_api.only_check_run()
    assert flow.outputs["check-run-id"] == str(run["id"])
    assert (run["name"], run["status"], run["external_id"], run["head_sha"]) == (
        "mlpipe / checked",
        "in_progress",
        flow.run_id,
        flow.sha,
    )
    assert "| 1 | `w1j1` | ubuntu-latest | `prepare`, `broken` | ⏳ waiting |" in run["output"]["summary"]
    assert "| 2 | `w2j1` | ubuntu-latest | `features` | ⏳ waiting |" in run["output"]["summary"]
    assert flow.job(flow.wave(1)[0]).code == 1  # broken fails, prepare runs
    run = github_api.only_check_run()
    assert run["status"] == "in_progress" and run["updates"] >= 2
    assert "| `prepare` | ✅ ran |" in run["output"]["summary"]
    assert "| `broken` | ❌ failed |" in run["output"]["summary"]
    flow.job(flow.wave(2)[0]).assert_success()
    # the wave-2 job shows wave 1's steps (from its part) next to its own
    summary = github_api.only_check_run()["output"]["summary"]
    assert "| `features` | ✅ ran |" in summary and "| `prepare` | ✅ ran |" in summary
    assert "| `train` | ⏳ pending |" in summary
    flow.job(flow.wave(3)[0]).assert_success()
    report = flow.report()
    assert report.code == 1
    run = github_api.only_check_run()
    assert (run["status"], run["conclusion"]) == ("completed", "failure")
    assert run["output"]["title"] == "checked: failed (3 ran, 1 failed)"
    assert "| 3 | `w3j1` | ubuntu-latest | `train` | ✅ done |" in run["output"]["summary"]
    assert "| 1 | `w1j1` | ubuntu-latest | `prepare`, `broken` | ❌ failed |" in run["output"]["summary"]
    assert flow.report_outputs["check-run-id"] == str(run["id"])
    assert flow.report_outputs["check-run-url"] == run["html_url"]
    assert (
        "### Jobs" in flow.summaries["report"] and f"Check run: {run['html_url']}" in flow.summaries["report"]
    )
    creates = [r for r in github_api.requests if r.operation == "checks/create"]
    assert len(creates) == 1  # no job made a check run of its own
    assert github_api.violations == []


def test_a_cancelled_run_completes_its_check_run_as_cancelled_naming_what_never_ran(
    flow: Workflow, github_api: Any
) -> None:
    flow.plan().assert_success()
    flow.job(flow.wave(1)[0])
    assert flow.report("--cancelled").code == 130
    run = github_api.only_check_run()
    assert (run["status"], run["conclusion"]) == ("completed", "cancelled")
    assert (
        "never ran: job w2j1 (features (ubuntu-latest)) reported nothing (the workflow was cancelled)"
        in (run["output"]["summary"])
    )
    assert github_api.violations == []


def test_a_token_that_cannot_write_checks_leaves_the_summaries_and_the_run_goes_on(
    project_factory, registry, tmp_path: Path, github_api: Any
) -> None:
    from service_fixtures import GITHUB_READ_TOKEN

    origin = project_factory({"mlpipe.yaml": pipeline("ro", step("a") + step("b", inputs={"x": "a"}))})
    cache = f"oci://{registry.host}/t/{uuid.uuid4().hex[:12]}"
    flow = Workflow(origin, tmp_path, cache, token=GITHUB_READ_TOKEN, api_url=github_api.url)
    outcome = flow.plan().assert_success()
    assert "::warning title=mlpipe::the check run was not created: POST /repos/" in outcome.stderr
    assert flow.outputs["check-run-id"] == "" and flow.outputs["mode"] == "fan-out"
    for job in flow.all_waves().values():
        job.assert_success()
    flow.report().assert_success()
    assert github_api.check_runs == {}
    logged = [line for line in outcome.output.splitlines() if not line.startswith("::add-mask::")]
    assert not [
        line for line in logged if GITHUB_READ_TOKEN in line
    ]  # masked before anything else is printed
