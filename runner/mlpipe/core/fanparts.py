"""The parts of a fan-out run: what each job reports, why a job may not run a step, and the merged record. Pure.

A job's part holds the step records of its own steps; the report merges the plan's record (reused steps done,
the others pending) with every part into one run record, naming the steps that never ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Any, get_args

from mlpipe import records
from mlpipe.core.fanout import JOB_ID, BadFanOut, FanOut
from mlpipe.frozen import frozen
from mlpipe.runs import RunRecord, StepRecord, StepStatus

PART_FORMAT = "mlpipe.fanout-part/1"
DONE = frozenset({"ran", "reused"})
FINISHED = frozenset({"ran", "reused", "failed", "skipped", "cancelled"})


@frozen(kw_only=True)
class Part:
    run_id: str
    job: str
    status: str
    """The job's own run status: running, succeeded, failed, cancelled."""
    steps: Mapping[str, StepRecord] = field(default_factory=dict)
    started_at: str | None = None
    ended_at: str | None = None
    runner: Mapping[str, Any] = field(default_factory=dict)
    """The runner's name and labels, for the summary."""
    annotations: tuple[Mapping[str, Any], ...] = ()
    """The job's failures and warnings at their lines, as the Checks API takes them (what the job printed as
    workflow commands): the report adds them to the run's check run."""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PART_FORMAT,
            "run_id": self.run_id,
            "job": self.job,
            "status": self.status,
            "steps": {name: dict(vars(step)) for name, step in self.steps.items()},
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "runner": dict(self.runner),
            "annotations": [dict(a) for a in self.annotations[:MAX_PART_ANNOTATIONS]],
        }


def part_from_json(data: Any, plan: FanOut, job: str) -> Part:
    """A part read back (untrusted): it must be this run's, this job's, and name only this job's steps."""
    if not isinstance(data, dict) or data.get("format") != PART_FORMAT:
        raise BadFanOut(f"not a fan-out part (format {PART_FORMAT})")
    planned = plan.job(job)
    if (
        data.get("run_id") != plan.run_id
        or data.get("job") != job
        or planned is None
        or not JOB_ID.fullmatch(job)
    ):
        raise BadFanOut(f"not the part of job {job} of run {plan.run_id}")
    steps = data.get("steps")
    if not isinstance(steps, dict) or not set(steps) <= set(planned.steps):
        raise BadFanOut(f"the part of job {job} names steps the job does not run")
    try:
        checked = {name: _step(steps[name], f"{job}.steps.{name}") for name in steps}
    except records.BadRecord as error:
        raise BadFanOut(f"the part of job {job} holds a malformed step record: {error}") from None
    runner = data.get("runner") if isinstance(data.get("runner"), dict) else {}
    return Part(
        run_id=plan.run_id,
        job=job,
        status=str(data.get("status"))[:20],
        steps=checked,
        started_at=_text(data.get("started_at")),
        ended_at=_text(data.get("ended_at")),
        runner={k: v for k, v in (runner or {}).items() if k in {"name", "labels"}},
        annotations=_annotations(data.get("annotations", []), job),
    )


MAX_PART_ANNOTATIONS = 50
"""A job's annotations in its part (failures first): one Checks API request's worth."""
MAX_RUN_ANNOTATIONS = 500
"""The report's annotations on the check run, all jobs together (ten requests)."""
LEVELS = ("failure", "warning", "notice")


def _annotations(value: Any, job: str) -> tuple[dict[str, Any], ...]:
    """A part's annotations (untrusted): each a repository-relative path, a line, a level and printable texts."""
    where = f"the part of job {job}"
    if not isinstance(value, list) or len(value) > MAX_PART_ANNOTATIONS:
        raise BadFanOut(f"{where}: annotations must be a list of at most {MAX_PART_ANNOTATIONS}")
    found = []
    for i, raw in enumerate(value):
        try:
            item = records.obj(raw, f"{where}.annotations[{i}]")
            path = records.text(item.get("path"), f"{where}.annotations[{i}].path", 1000)
            if path.startswith("/") or "\\" in path or ".." in path.split("/"):
                raise records.BadRecord(
                    f"{where}.annotations[{i}].path", "expected a repository-relative path"
                )
            line = item.get("start_line")
            if isinstance(line, bool) or not isinstance(line, int) or not 1 <= line <= 10_000_000:
                raise records.BadRecord(f"{where}.annotations[{i}].start_line", "expected a line number")
            level = records.choice(item.get("annotation_level"), LEVELS, f"{where}.annotations[{i}].level")
            title = records.text(item.get("title"), f"{where}.annotations[{i}].title", 255)
            message = item.get("message")
            if not isinstance(message, str) or not message:
                raise records.BadRecord(f"{where}.annotations[{i}].message", "expected a text")
        except records.BadRecord as error:
            raise BadFanOut(str(error)) from None
        message = "".join(c if c.isprintable() or c == "\n" else " " for c in message[:64_000])
        found.append(
            {
                "path": path,
                "start_line": line,
                "end_line": line,
                "annotation_level": level,
                "title": title,
                "message": message,
            }
        )
    return tuple(found)


def run_annotations(plan: FanOut, parts: Mapping[str, Part | None]) -> list[dict[str, Any]]:
    """Every job's annotations, each once (jobs print the same warning, a dirty checkout say), failures first."""
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for job in plan.jobs():
        part = parts.get(job.id)
        for item in part.annotations if part is not None else ():
            seen.setdefault(tuple(sorted(item.items())), dict(item))
    found = sorted(seen.values(), key=lambda a: LEVELS.index(a["annotation_level"]))
    return found[:MAX_RUN_ANNOTATIONS]


_STEP_TEXTS = ("started_at", "ended_at", "log", "code", "tree")


def _step(data: Any, where: str) -> StepRecord:
    """One step record of a part: each field of its type, texts printable (errors: made so)."""
    data = records.obj(data, where)
    step = StepRecord(status=records.choice(data.get("status"), get_args(StepStatus), f"{where}.status"))  # type: ignore[arg-type]
    for key in _STEP_TEXTS:
        if data.get(key) is not None:
            setattr(step, key, records.text(data[key], f"{where}.{key}", 1000))
    if data.get("fingerprint") is not None:
        step.fingerprint = records.sha256(data["fingerprint"], f"{where}.fingerprint")
    if data.get("error") is not None:
        error = data["error"] if isinstance(data["error"], str) else ""
        step.error = "".join(c if c.isprintable() else " " for c in error[:4000]) or "failed"
    step.reasons = [
        records.text(r, f"{where}.reasons", 2000) for r in records.array(data.get("reasons", []), where)
    ]
    step.outputs = {
        records.output_name(k, f"{where}.outputs"): records.text(v, f"{where}.outputs.{k}", 200)
        for k, v in records.obj(data.get("outputs", {}), f"{where}.outputs").items()
    }
    step.metrics = records.metrics(data.get("metrics", {}), f"{where}.metrics")
    if data.get("parts") is not None:
        step.parts = records.parts(data["parts"], f"{where}.parts")
    for key in ("duration_s", "exit_code"):
        if data.get(key) is not None:
            setattr(step, key, records.number(data[key], f"{where}.{key}"))
    if data.get("reused_from") is not None:
        source = records.obj(data["reused_from"], f"{where}.reused_from")
        step.reused_from = {k: source[k] for k in ("run_id", "commit") if isinstance(source.get(k), str)}
    step.nondeterministic = data.get("nondeterministic") is True
    for key in ("image", "gpus"):
        if isinstance(data.get(key), dict | list):
            setattr(step, key, records.parts({"v": data[key]}, f"{where}.{key}")["v"])
    return step


def _text(value: Any) -> str | None:
    return value[:40] if isinstance(value, str) else None


# -- what a job may run ----------------------------------------------------------------------------------------
@frozen(kw_only=True)
class Unmet:
    """An upstream step a job's step needs whose result is not stored, and why."""

    step: str
    job: str | None
    """The job that should have made it (None: reused at plan time, or outside the plan)."""
    why: str


def unmet_upstream(plan: FanOut, step: str, parts: Mapping[str, Part | None]) -> Unmet:
    """Why the stored result of `step` (upstream of a job's step) is missing, from its job's part."""
    job = plan.job_of(step)
    if job is None:
        reused = (plan.record.get("steps") or {}).get(step, {}).get("status") == "reused"
        why = (
            "it was reused when the run was planned, but its stored result is gone"
            if reused
            else "not planned"
        )
        return Unmet(step=step, job=None, why=why)
    part = parts.get(job.id)
    record = part.steps.get(step) if part is not None else None
    if part is None:
        why = (
            f"job {job.id} ({job.name}), which should have made it, reported nothing: it did not run, failed "
            "before mlpipe ran, or its runner died; re-run that job"
        )
    elif record is None or record.status not in FINISHED:
        why = f"job {job.id} ({job.name}), which should have made it, stopped before the step finished; re-run that job"
    elif record.status == "failed":
        why = f"it failed in job {job.id}: {record.error or 'failed'}"
    elif record.status in {"skipped", "cancelled"}:
        why = f"it was {record.status} in job {job.id}: {record.error or record.status}"
    else:
        why = (
            f"job {job.id} recorded it as {record.status} but its result is not in the store (its push failed?); "
            "re-run that job"
        )
    return Unmet(step=step, job=job.id, why=why)


def refusal(step: str, unmet: list[Unmet]) -> str:
    """The message a job gives for a step it will not run."""

    def verb(u: Unmet) -> str:
        return "did not succeed" if u.why.startswith(("it failed", "it was")) else "has no stored result"

    return "; ".join(f"refused: upstream {u.step} {verb(u)}: {u.why}" for u in unmet)


def plan_record(plan: FanOut) -> RunRecord:
    """The plan's run record (reused steps done, the others pending), its steps checked as a part's are."""
    try:
        record = RunRecord.from_json({**plan.record, "steps": {}})
        steps = records.obj(plan.record.get("steps"), "the plan's steps")
        record.steps = {
            name: _step(steps[name], f"plan.steps.{name}") for name in plan.order if name in steps
        }
    except (TypeError, ValueError) as error:  # BadRecord is a ValueError
        raise BadFanOut(f"the plan's run record is malformed: {error}") from None
    return record


# -- the merged record -----------------------------------------------------------------------------------------
def merge(plan: FanOut, parts: Mapping[str, Part | None], *, cancelled: bool, ended_at: str) -> RunRecord:
    """One run record of the whole fan-out run: the plan's record, each job's steps from its part."""
    record = plan_record(plan)
    record.run_id = plan.run_id
    for job in plan.jobs():
        part = parts.get(job.id)
        for name in job.steps:
            step = part.steps.get(name) if part is not None else None
            base = record.steps.get(name) or StepRecord()
            if step is not None and step.status in FINISHED:
                record.steps[name] = step
                continue
            base.status = "cancelled" if cancelled else "skipped"
            if part is None:
                how = (
                    "the workflow was cancelled"
                    if cancelled
                    else "it did not run, failed before mlpipe ran, or its runner died"
                )
                base.error = f"never ran: job {job.id} ({job.name}) reported nothing ({how})"
            else:
                base.error = f"never finished: job {job.id} ({job.name}) stopped before the step ended"
            record.steps[name] = base
    record.steps = {name: record.steps[name] for name in plan.order if name in record.steps}  # stored sorted
    statuses = {step.status for step in record.steps.values()}
    record.status = "cancelled" if cancelled else ("succeeded" if statuses <= DONE else "failed")
    record.ended_at = ended_at
    record.options = {
        **record.options,
        "fan_out": {"jobs": len(plan.jobs()), "waves": len(plan.waves), "mode": plan.mode},
    }
    return record


def never_ran(record: RunRecord) -> list[str]:
    return [
        name
        for name, step in record.steps.items()
        if (step.error or "").startswith(("never ran", "never finished"))
    ]
