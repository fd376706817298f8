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


WIDE = pipeline(
    "wide",
    step("prepare")
    + step("left", inputs={"d": "prepare"}, extra="    fan-out: true\n")
    + step("right", inputs={"d": "prepare"}, extra="    fan-out: true\n")
    + step("join", inputs={"l": "left", "r": "right"}),
)


@pytest.mark.parametrize("order", ["left first", "right first", "together"])
def test_jobs_of_one_wave_show_each_others_steps_in_the_check_run_in_any_order(
    order: str, project_factory, registry, tmp_path: Path, github_api: Any
) -> None:
    from fanout_testing import wait_for

    origin = project_factory({"mlpipe.yaml": WIDE})
    cache = f"oci://{registry.host}/t/{uuid.uuid4().hex[:12]}"
    flow = Workflow(origin, tmp_path, cache, token=GITHUB_WRITE_TOKEN, api_url=github_api.url)
    flow.plan().assert_success()
    flow.job(flow.wave(1)[0]).assert_success()
    jobs = {entry["steps"]: entry for entry in flow.wave(2)}
    assert sorted(jobs) == ["left", "right"]  # one job each: one wave, two concurrent jobs
    if order == "together":
        started = [flow.start_job(entry) for entry in jobs.values()]
        for process in started:
            wait_for(lambda p=process: p.poll() is not None, "a wave-2 job to end", timeout=120)
            assert process.returncode == 0, process.stdout.read() if process.stdout else ""
            if process.stdout is not None:
                process.stdout.close()
    else:
        first = "left" if order == "left first" else "right"
        flow.job(jobs[first]).assert_success()
        flow.job(jobs["right" if first == "left" else "left"]).assert_success()
    # before the report: the one check run shows both jobs' steps, whichever updated last
    run = github_api.only_check_run()
    assert run["status"] == "in_progress"
    summary = run["output"]["summary"]
    for name in ("prepare", "left", "right"):
        assert f"| `{name}` | ✅ ran |" in summary
    assert "| `join` | ⏳ pending |" in summary
    for entry in jobs.values():
        assert f"| 2 | `{entry['job']}` | ubuntu-latest | `{entry['steps']}` | ✅ done |" in summary
    assert github_api.violations == []


ANNOTATED = pipeline(
    "annotated",
    step("prepare")
    + step(
        "lint",
        "bash lint.sh",
        inputs={"d": "prepare"},
        extra="    fan-out: true\n",
    )
    + step("other", "exit 3", inputs={"d": "prepare"}, extra="    fan-out: true\n")
    + step("join", inputs={"l": "lint"}),
)


def test_the_report_adds_every_jobs_failures_at_their_lines_to_the_check_run_once(
    project_factory, registry, tmp_path: Path, github_api: Any
) -> None:
    origin = project_factory(
        {
            "mlpipe.yaml": ANNOTATED,
            "model.cfg": "a\nb\nc\n",
            "lint.sh": "echo 'model.cfg:2:1: error: bad value'\nexit 2\n",
        }
    )
    cache = f"oci://{registry.host}/t/{uuid.uuid4().hex[:12]}"
    flow = Workflow(origin, tmp_path, cache, token=GITHUB_WRITE_TOKEN, api_url=github_api.url)
    flow.plan().assert_success()
    jobs = flow.all_waves()
    printed = "\n".join(outcome.output for outcome in jobs.values())
    assert "::error file=model.cfg,line=2,title=mlpipe%3A step lint failed::" in printed  # the wave job's own
    assert github_api.only_check_run()["annotations"] == []  # wave jobs add none: the report does, once
    report = flow.report()
    assert report.code == 1
    assert "::error" not in report.output  # not printed again: the wave jobs printed theirs
    run = github_api.only_check_run()
    assert (run["status"], run["conclusion"]) == ("completed", "failure")
    other_line = ANNOTATED.splitlines().index("  other:") + 1
    found = [(a["title"], a["path"], a["start_line"], a["annotation_level"]) for a in run["annotations"]]
    assert sorted(found) == [
        ("mlpipe: step lint failed", "model.cfg", 2, "failure"),
        ("mlpipe: step other failed", "mlpipe.yaml", other_line, "failure"),
    ]
    lint = next(a for a in run["annotations"] if a["path"] == "model.cfg")
    assert lint["message"].startswith("exited with code 2") and "error: bad value" in lint["message"]
    assert github_api.violations == []


def test_a_wave_jobs_update_looks_again_while_other_jobs_finish_and_stops_after_a_few_rounds(
    tmp_path: Path, github_api: Any
) -> None:
    """The convergence rule on its own: after each update the job rebuilds its view; while that changed (another
    job of the wave finished meanwhile) it sends it again, at most ROUNDS times an update."""
    import io

    from mlpipe.core.fanout import FanOut, RunnerMap, StepNeeds, place
    from mlpipe.core.fanparts import plan_record
    from mlpipe.github import fanout as gh
    from mlpipe.github.context import from_env

    ctx = from_env(push_job(tmp_path, github_api.url))
    assert ctx is not None
    run_id = "20260101T000000000Z-0123456789abcdef"
    steps = [StepNeeds(name="a", own_job=True), StepNeeds(name="b", own_job=True)]
    record = {
        "format": "mlpipe.run/1",
        "run_id": run_id,
        "pipeline": "p",
        "pipeline_file": "mlpipe.yaml",
        "started_at": "2026-01-01T00:00:00.000Z",
        "steps": {"a": {"status": "pending"}, "b": {"status": "pending"}},
    }
    plan = FanOut(
        run_id=run_id,
        pipeline="p",
        mode="fan-out",
        waves=place(steps, waves=1, runners=RunnerMap()),
        order=("a", "b"),
        record=record,
    )
    check = gh.start_check(ctx, plan, plan_record(plan), stream=io.StringIO())
    plan = FanOut(**{**vars(plan), "check_run_id": check})
    seen: list[str] = []

    def other_job_finishes_during_the_first_update(mine):  # b (the other job) is done from the 2nd look on
        whole = plan_record(plan)
        whole.steps["a"] = mine.steps["a"]
        whole.steps["b"].status = "ran" if seen else "pending"
        seen.append(whole.steps["b"].status)
        return whole

    mine = plan_record(plan)
    mine.steps["a"].status = "ran"
    reporter = gh.JobCheck(ctx, plan, other_job_finishes_during_the_first_update, throttle_s=0)
    reporter.run_finished(mine)
    run = github_api.only_check_run()
    assert seen == ["pending", "ran", "ran"]  # sent, looked again (changed: sent), looked again (same: done)
    assert run["updates"] == 2
    assert "| `a` | ✅ ran |" in run["output"]["summary"] and "| `b` | ✅ ran |" in run["output"]["summary"]

    def always_changing(mine):
        whole = plan_record(plan)
        whole.steps["b"].status = "running" if len(seen) % 2 else "pending"
        seen.append("")
        return whole

    seen.clear()
    gh.JobCheck(ctx, plan, always_changing, throttle_s=0).run_finished(mine)
    assert len(seen) == gh.ROUNDS and github_api.only_check_run()["updates"] == 2 + gh.ROUNDS  # bounded
    assert github_api.violations == []


def test_a_jobs_part_carries_its_own_failures_and_the_backends_warnings_with_the_token_hidden(
    project_factory, tmp_path: Path
) -> None:
    from mlpipe.api.source import Selected, Source, open_source
    from mlpipe.github.fanout import job_annotations
    from mlpipe.run.prepare import prepare
    from mlpipe.runs import RunRecord

    project = project_factory({"mlpipe.yaml": ANNOTATED, "model.cfg": "a\n", "lint.sh": "exit 2\n"})
    session = open_source(
        Source(file=str(project.root / "mlpipe.yaml"), settings={"cache": str(tmp_path / "s")})
    )
    prepared = prepare(
        session.pipeline,
        session.workspace,
        session.store,
        Selected(),
        hasher=session.hasher,
        environ=session.settings.environ,
        to_run=False,
    )
    record = RunRecord.from_json(
        {
            "format": "mlpipe.run/1",
            "run_id": "20260101T000000000Z-0123456789abcdef",
            "pipeline": "annotated",
            "pipeline_file": "mlpipe.yaml",
            "started_at": "2026-01-01T00:00:00.000Z",
            "steps": {
                "prepare": {"status": "failed", "error": "exited with code 1"},  # an upstream: not this job's
                "other": {"status": "failed", "error": "exited with code 3"},
            },
        }
    )
    env = push_job(tmp_path)
    warned = [f"giving up on the registry: 401 for {GITHUB_WRITE_TOKEN}"]
    found = job_annotations(prepared, record, ("other", "lint"), warned, env)
    other_line = ANNOTATED.splitlines().index("  other:") + 1
    assert [(a["title"], a["path"], a["start_line"], a["annotation_level"]) for a in found] == [
        ("mlpipe: step other failed", "mlpipe.yaml", other_line, "failure"),
        ("mlpipe warning", "mlpipe.yaml", 1, "warning"),
    ]
    assert found[1]["message"] == "giving up on the registry: 401 for ***"


def push_job(tmp_path: Path, api_url: str = "") -> dict[str, str]:
    """An Actions job's environment on a push, with a token that can write checks."""
    from github_testing import actions_job, push_payload

    sha = "a" * 40
    common: dict[str, Any] = {
        "event": "push",
        "sha": sha,
        "ref": "refs/heads/main",
        "token": GITHUB_WRITE_TOKEN,
    }
    return actions_job(tmp_path / "job", payload=push_payload(sha), api_url=api_url, **common).env
