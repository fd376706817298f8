"""Jobs' parts of a fan-out run (core/fanparts.py): read back, why an upstream is missing, merged. Pure."""

from __future__ import annotations

import pytest

from mlpipe.core.fanout import BadFanOut, FanOut, RunnerMap, StepNeeds, place
from mlpipe.core.fanparts import Part, merge, never_ran, part_from_json, refusal, unmet_upstream
from mlpipe.runs import StepRecord

RUN = "20260101T000000000Z-0123456789abcdef"


def plan() -> FanOut:
    steps = [
        StepNeeds(name="data", runs=False),
        StepNeeds(name="a", upstream=("data",)),
        StepNeeds(name="b", upstream=("a",)),
        StepNeeds(name="c", upstream=("a",)),
    ]
    record = {
        "format": "mlpipe.run/1",
        "run_id": RUN,
        "pipeline": "p",
        "pipeline_file": "mlpipe.yaml",
        "started_at": "2026-01-01T00:00:00.000Z",
        "steps": {
            "data": {"status": "reused", "reused_from": {"run_id": "old"}},
            "a": {"status": "pending", "reasons": ["no stored result for this step yet"]},
            "b": {"status": "pending"},
            "c": {"status": "pending"},
        },
    }
    return FanOut(
        run_id=RUN,
        pipeline="p",
        mode="fan-out",
        waves=place(steps, waves=2, runners=RunnerMap()),
        order=("data", "a", "b", "c"),
        upstream={s.name: s.upstream for s in steps},
        record=record,
    )


def part(job: str, status: str = "succeeded", **steps: StepRecord) -> Part:
    return Part(run_id=RUN, job=job, status=status, steps=steps)


def test_parts_merge_into_one_record_in_pipeline_order() -> None:
    p = plan()
    parts = {
        "w2j1": part("w2j1", c=StepRecord(status="ran"), b=StepRecord(status="ran")),
        "w1j1": part("w1j1", a=StepRecord(status="ran", duration_s=1.5)),
    }
    record = merge(p, parts, cancelled=False, ended_at="2026-01-01T00:01:00.000Z")
    assert list(record.steps) == ["data", "a", "b", "c"]
    assert {n: s.status for n, s in record.steps.items()} == {
        "data": "reused",
        "a": "ran",
        "b": "ran",
        "c": "ran",
    }
    assert record.status == "succeeded" and record.run_id == RUN and record.steps["a"].duration_s == 1.5
    assert record.options["fan_out"] == {"jobs": 2, "waves": 2, "mode": "fan-out"}
    assert never_ran(record) == []


def test_a_job_that_reported_nothing_or_stopped_midway_is_named() -> None:
    p = plan()
    died = part("w2j1", "running", b=StepRecord(status="ran"), c=StepRecord(status="running"))
    record = merge(p, {"w1j1": None, "w2j1": died}, cancelled=False, ended_at="x")
    assert record.status == "failed"
    assert record.steps["a"].status == "skipped"
    assert record.steps["a"].error == (
        "never ran: job w1j1 (a (ubuntu-latest)) reported nothing (it did not run, failed before mlpipe ran, or "
        "its runner died)"
    )
    assert (
        record.steps["c"].error
        == "never finished: job w2j1 (b, c (ubuntu-latest)) stopped before the step ended"
    )
    assert never_ran(record) == ["a", "c"]
    cancelled = merge(p, {"w1j1": part("w1j1", a=StepRecord(status="ran"))}, cancelled=True, ended_at="x")
    assert cancelled.status == "cancelled"
    assert [cancelled.steps[n].status for n in ("a", "b", "c")] == ["ran", "cancelled", "cancelled"]
    assert "(the workflow was cancelled)" in (cancelled.steps["b"].error or "")


def test_why_an_upstream_result_is_missing() -> None:
    p = plan()
    failed = part("w1j1", "failed", a=StepRecord(status="failed", error="exited with code 3"))
    assert unmet_upstream(p, "a", {"w1j1": failed}).why == "it failed in job w1j1: exited with code 3"
    ran = part("w1j1", a=StepRecord(status="ran"))
    assert unmet_upstream(p, "a", {"w1j1": ran}).why.startswith(
        "job w1j1 recorded it as ran but its result is not"
    )
    assert "stopped before the step finished" in unmet_upstream(p, "a", {"w1j1": part("w1j1", "running")}).why
    gone = unmet_upstream(p, "data", {})
    assert (gone.job, gone.why) == (
        None,
        "it was reused when the run was planned, but its stored result is gone",
    )
    unmet = [unmet_upstream(p, "a", {"w1j1": failed})]
    assert (
        refusal("b", unmet)
        == "refused: upstream a did not succeed: it failed in job w1j1: exited with code 3"
    )


def test_a_part_is_read_back_only_when_it_is_this_jobs() -> None:
    p = plan()
    good = part("w2j1", b=StepRecord(status="ran", outputs={"o": "sha256:" + "0" * 64})).to_json()
    assert part_from_json(good, p, "w2j1").steps["b"].outputs == {"o": "sha256:" + "0" * 64}
    bad = [
        {**good, "format": "other"},
        {**good, "run_id": "20260101T000000000Z-ffffffffffffffff"},
        {**good, "job": "w1j1"},
        {**good, "steps": {"a": {"status": "ran"}}},  # not this job's step
        {**good, "steps": {"b": {"status": "exploded"}}},
        {**good, "steps": {"b": {"status": "ran", "bogus_field": 1, "outputs": 3}}},
        {**good, "steps": []},
        "text",
    ]
    for data in bad:
        with pytest.raises(BadFanOut):
            part_from_json(data, p, "w2j1")


def test_the_plans_own_record_is_checked_as_parts_are() -> None:
    from dataclasses import replace

    from mlpipe.core.fanparts import plan_record

    p = plan()
    assert [s.status for s in plan_record(p).steps.values()] == ["reused", "pending", "pending", "pending"]
    for bad in ({"status": "exploded"}, {"status": "ran", "metrics": {"m": {"x": "NaN"}}}, "x"):
        tampered = replace(p, record={**p.record, "steps": {**p.record["steps"], "a": bad}})
        with pytest.raises(BadFanOut, match="the plan's run record is malformed"):
            merge(tampered, {}, cancelled=False, ended_at="x")
