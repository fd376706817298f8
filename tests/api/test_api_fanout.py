"""The fan-out as a library (mlpipe.api.fanout), in-process: plan, each job, report, results not prints."""

from __future__ import annotations

import io

import pytest

from mlpipe.api.fanout import JobOptions, MatrixOptions, plan_matrix, report, run_job
from mlpipe.api.source import Source
from mlpipe.errors import PipelineFailed, UsageError
from mlpipe.events import Notice

PIPELINE = """\
name: lib
steps:
  make:
    run: echo made > ${{ outputs.out }}
    outputs: {out: {type: file}}
  check:
    run: test "$(cat ${{ inputs.made }})" = made && echo ok > ${{ outputs.out }}
    inputs: {made: "${{ steps.make.outputs.out }}"}
    outputs: {out: {type: file}}
"""


@pytest.fixture
def source(project_factory, monkeypatch, tmp_path):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)  # outside Actions: the jobs meet in the local store
    project = project_factory({"mlpipe.yaml": PIPELINE})
    return Source(file=str(project.root / "mlpipe.yaml"), settings={"cache": str(tmp_path / "store")})


def test_plan_jobs_and_report_as_calls(source, capsys) -> None:
    plan = plan_matrix(source, MatrixOptions(waves=2))
    assert plan.mode == "fan-out" and [j.steps for j in plan.jobs()] == [("make",), ("check",)]
    heard: list[Notice] = []
    for job in plan.jobs():
        result = run_job(
            source, JobOptions(run_id=plan.run_id, job=job.id), stream=io.StringIO(), notices=heard.append
        )
        assert result.failure is None and not result.single
        assert result.record is not None and result.record.steps[job.steps[0]].status == "ran"
    merged = report(source, plan.run_id)
    assert merged.failure is None and merged.never_ran == ()
    assert {n: s.status for n, s in merged.record.steps.items()} == {"make": "ran", "check": "ran"}
    assert capsys.readouterr().out == ""  # the library prints nothing of its own on stdout


def test_a_job_run_too_early_is_a_result_not_an_exit(source) -> None:
    plan = plan_matrix(source, MatrixOptions(waves=2))
    heard: list[Notice] = []
    result = run_job(
        source, JobOptions(run_id=plan.run_id, job="w2j1"), stream=io.StringIO(), notices=heard.append
    )
    assert result.record is None and list(result.refused) == ["check"]
    assert isinstance(result.failure, PipelineFailed) and result.failure.exit_code == 1
    assert [n.line for n in heard if "refused" in n.text] == [f"mlpipe: check: {result.refused['check']}"]
    with pytest.raises(UsageError, match="expected a job id such as w1j1"):
        run_job(source, JobOptions(run_id=plan.run_id, job="job-1"))
