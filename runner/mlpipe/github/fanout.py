"""The one check run of a fan-out run (issue 15), its job summaries and outputs.

The plan job creates the check run `mlpipe / <pipeline>` in progress; each wave job updates it as its steps
finish (what the plan and the job know: the other jobs' steps show as planned); the report job completes it
from the merged run record. As with one job, GitHub never fails the run: every problem is one warning line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from mlpipe.core.fanout import FanOut
from mlpipe.core.plan import Plan
from mlpipe.events import Notice
from mlpipe.github import summary as md
from mlpipe.github.annotations import PER_REQUEST
from mlpipe.github.checks import CheckRun, _timestamp
from mlpipe.github.client import GitHubAPI, GitHubAPIError
from mlpipe.github.context import GitHubContext, from_env
from mlpipe.github.workflow import append_job_summary, mask, write_outputs
from mlpipe.runs import RunRecord, StepRecord

ICONS = {"fan-out": "🪁", "single": "1️⃣"}
ROUNDS = 3
"""A wave job's check-run update: how many times it looks again for steps of other jobs finished meanwhile."""


# -- markdown (pure) ----------------------------------------------------------------------------------------------
def render_plan(plan: FanOut) -> str:
    """The plan job's summary: the waves, their jobs and runners, and why a run is one job."""
    lines = [f"## {ICONS[plan.mode]} mlpipe · {plan.pipeline}: fan-out plan ({plan.mode})", ""]
    if plan.mode == "single":
        lines += [
            "> [!NOTE]",
            f"> One job runs the whole pipeline: {plan.why}.",
            "> Its own job summary and check run hold the results.",
            "",
        ]
    lines += [f"Run `{plan.run_id}`.", ""]
    reused = [n for n, s in (plan.record.get("steps") or {}).items() if s.get("status") == "reused"]
    if reused:
        lines += [
            f"Reused, no job: {', '.join(f'`{n}`' for n in reused[:50])}"
            + (" …" if len(reused) > 50 else ""),
            "",
        ]
    lines += jobs_table(plan)
    return "\n".join(lines) + "\n"


def jobs_table(plan: FanOut, statuses: Mapping[str, str] | None = None) -> list[str]:
    if not plan.jobs():
        return ["Every step is reused: no job starts."]
    rows = [
        "| wave | job | runs on | steps |" + (" status |" if statuses else ""),
        "|---|---|---|---|" + ("---|" if statuses else ""),
    ]
    for job in plan.jobs():
        runs_on = job.runs_on if isinstance(job.runs_on, str) else ", ".join(job.runs_on)
        steps = ", ".join(f"`{s}`" for s in job.steps[:20]) + (
            f" and {len(job.steps) - 20} more" if len(job.steps) > 20 else ""
        )
        status = f" {statuses.get(job.id, '')} |" if statuses is not None else ""
        rows.append(f"| {job.wave} | `{job.id}` | {md._cell(runs_on)} | {md._cell(steps)} |{status}")
    return rows


def render_run(
    plan: FanOut, record: RunRecord, *, run_url: str, statuses: Mapping[str, str] | None = None
) -> str:
    """The run as a whole (the check run and the report's summary): the usual summary, then the jobs."""
    text = md.render(record, None, upstream=plan.upstream, run_url=run_url)
    return text + "\n### Jobs\n\n" + "\n".join(jobs_table(plan, statuses)) + "\n"


def job_statuses(plan: FanOut, record: RunRecord) -> dict[str, str]:
    out = {}
    for job in plan.jobs():
        states = {record.steps[s].status for s in job.steps if s in record.steps}
        if states <= {"ran", "reused"}:
            out[job.id] = "✅ done"
        elif states & {"pending", "running"} and not states & {"failed", "skipped", "cancelled"}:
            out[job.id] = "▶️ running" if "running" in states else "⏳ waiting"
        else:
            bad = sorted(s for s in states if s not in {"ran", "reused", "pending", "running"})
            out[job.id] = "❌ " + ", ".join(bad)
    return out


# -- the check run (I/O) ------------------------------------------------------------------------------------------
def _api(ctx: GitHubContext) -> GitHubAPI | None:
    return (
        GitHubAPI(ctx.api_url, ctx.token, backoff_s=ctx.backoff_s) if ctx.token and ctx.repository else None
    )


def context(environ: Mapping[str, str], stream: IO[str]) -> GitHubContext | None:
    """The Actions context, its token masked before anything else is printed."""
    ctx = from_env(environ)
    if ctx is not None and ctx.token:
        stream.write(mask(ctx.token) + "\n")
    return ctx


def start_check(ctx: GitHubContext, plan: FanOut, record: RunRecord, *, stream: IO[str]) -> int | None:
    """The check run `mlpipe / <pipeline>`, in progress; its id, or None when the token cannot write checks."""
    api = _api(ctx)
    if api is None:
        return None
    check = CheckRun(api, ctx.repository)
    body: dict[str, Any] = {
        "name": f"mlpipe / {plan.pipeline}",
        "head_sha": ctx.sha,
        "external_id": plan.run_id,
        "status": "in_progress",
        "started_at": _timestamp(record.started_at),
        "output": _output(plan, record, ctx),
    }
    if ctx.run_url:
        body["details_url"] = ctx.run_url
    try:
        check.create(body)
    except GitHubAPIError as error:
        _warn(stream, ctx, "the check run was not created", error)
        return None
    return check.id


def complete_check(
    ctx: GitHubContext,
    plan: FanOut,
    record: RunRecord,
    annotations: Sequence[Mapping[str, Any]] = (),
    *,
    stream: IO[str],
) -> str:
    """Complete the plan's check run from the merged record, with the jobs' annotations (50 a request, failures
    first, as the one-job check run); its URL, or '' when there is none. Nothing is printed as workflow commands:
    each wave job printed its own."""
    api = _api(ctx)
    if api is None or plan.check_run_id is None:
        return ""
    check = CheckRun(api, ctx.repository)
    check.id = plan.check_run_id
    output = _output(plan, record, ctx)
    groups = [list(annotations[i : i + PER_REQUEST]) for i in range(0, len(annotations), PER_REQUEST)] or [[]]
    try:
        for group in groups[:-1]:
            check.update({"status": "in_progress", "output": {**output, "annotations": group}})
        last = {**output, "annotations": groups[-1]} if groups[-1] else output
        body = {
            "status": "completed",
            "conclusion": md.conclusion(record),
            "completed_at": _timestamp(record.ended_at),
            "output": last,
        }
        data = api.request("PATCH", f"{check.base}/{check.id}", body)
    except GitHubAPIError as error:
        _warn(stream, ctx, "the check run was not completed", error)
        return ""
    return str((data or {}).get("html_url") or "") if isinstance(data, dict) else ""


def _output(plan: FanOut, record: RunRecord, ctx: GitHubContext) -> dict[str, Any]:
    markdown = render_run(plan, record, run_url=ctx.run_url, statuses=job_statuses(plan, record))
    return {"title": md.title(record), "summary": md.truncate(markdown)}


def _warn(stream: IO[str], ctx: GitHubContext, what: str, error: Exception) -> None:
    text = str(error).replace(ctx.token, "***") if ctx.token else str(error)
    stream.write(f"::warning title=mlpipe::{what}: {text}\n")
    stream.flush()


class JobCheck:
    """A Reporter for one wave job: keeps the run's check run current as the job's steps finish (throttled)."""

    def __init__(
        self,
        ctx: GitHubContext,
        plan: FanOut,
        view: Callable[[RunRecord], RunRecord],
        *,
        stream: IO[str] | None = None,
        throttle_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`view(job_record)`: the whole run as this job sees it (the plan's record with the job's steps)."""
        api = _api(ctx)
        self.ctx, self.plan, self.view = ctx, plan, view
        self.stream = stream or sys.stderr
        self.check: CheckRun | None = None
        if api is not None and plan.check_run_id is not None:
            self.check = CheckRun(api, ctx.repository)
            self.check.id = plan.check_run_id
        self.throttle_s, self.clock = throttle_s, clock
        self._last = -float("inf")
        self._sent: dict[str, Any] | None = None
        self.record: RunRecord | None = None

    def _update(self, force: bool = False) -> None:
        """Send the run as this job sees it now; then look again and resend while the view changed (other jobs
        of the wave finished meanwhile), at most `ROUNDS` times: the last job to update leaves the full view."""
        if self.check is None or self.record is None:
            return
        if not force and self.clock() - self._last < self.throttle_s:
            return
        for _ in range(ROUNDS):
            output = _output(self.plan, self.view(self.record), self.ctx)
            if output == self._sent:
                break
            try:
                self.check.update({"status": "in_progress", "output": output})
            except GitHubAPIError as error:
                _warn(
                    self.stream, self.ctx, "updating the check run failed; the report job completes it", error
                )
                self.check = None
                return
            self._sent = output
        self._last = self.clock()

    # -- Reporter ------------------------------------------------------------------------------------------
    def run_started(self, record: RunRecord, plan: Plan) -> None:
        self.record = record
        self._update(force=True)

    def step_started(self, name: str, step: StepRecord) -> None:
        pass

    def step_line(self, name: str, line: str) -> None:
        pass

    def step_finished(self, name: str, step: StepRecord) -> None:
        self._update()

    def run_finished(self, record: RunRecord) -> None:
        self.record = record
        self._update(force=True)

    def message(self, text: str) -> None:
        pass

    def notice(self, notice: Notice) -> None:
        pass


def job_annotations(
    prepared: Any,
    record: RunRecord,
    steps: Sequence[str],
    warnings: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """A wave job's failures at their lines and its warnings (as its GitHub reporter prints them), for its part;
    `warnings`: the backends' warnings it heard, on the pipeline file's first line, the token redacted."""
    from pathlib import Path

    from mlpipe.core.fanparts import MAX_PART_ANNOTATIONS
    from mlpipe.github.annotations import Annotation, collect
    from mlpipe.github.checks import _read_tail, layout_for

    layout = layout_for(prepared)
    root = Path(layout.repo_root) / layout.workspace
    mine = RunRecord.from_json(record.to_json())
    mine.steps = {name: step for name, step in record.steps.items() if name in steps}
    logs = {n: _read_tail(root / s.log) for n, s in mine.steps.items() if s.status == "failed" and s.log}
    found = [a.to_api() for a in collect(mine, layout, logs) if a.level != "notice"]
    ctx = from_env(environ or {})
    token = ctx.token if ctx is not None else ""
    for text in warnings:
        shown = text.replace(token, "***") if token else text
        found.append(
            Annotation(
                path=layout.pipeline_file, line=1, level="warning", title="mlpipe warning", message=shown
            ).to_api()
        )
    return found[:MAX_PART_ANNOTATIONS]


def write_job_files(ctx: GitHubContext, markdown: str, outputs: Mapping[str, str]) -> None:
    """The job summary and the step outputs."""
    if ctx.step_summary is not None:
        append_job_summary(ctx.step_summary, markdown)
    if ctx.output is not None:
        write_outputs(ctx.output, outputs)
