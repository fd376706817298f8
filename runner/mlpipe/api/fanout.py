"""A pipeline spread over CI jobs (issue 15): `plan_matrix()` (the plan job), `run_job()` (a wave job) and
`report()` (the last job). Each takes typed options and returns a result; the exit policy is the result's
`failure`, as in `mlpipe.api.ci_run`.

The placing is core/fanout.py, the merging core/fanparts.py, where jobs meet and what a job may run
run/fanout.py, the check run github/fanout.py.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import field, replace
from pathlib import Path
from typing import IO, Any

from mlpipe.api.ci_run import DEFAULT_MAX_RECOVERABLE_FILE, CiRunOptions, ci_run
from mlpipe.api.source import Selected, Source, open_source
from mlpipe.core.fanout import JOB_ID, FanOut, parse_runner_map
from mlpipe.core.fanparts import Part
from mlpipe.errors import CacheError, MlpipeError, PipelineFailed, UsageError
from mlpipe.events import Sink, message, to_stderr, warning
from mlpipe.frozen import frozen
from mlpipe.records import RUN_ID
from mlpipe.run.fanout import (
    Board,
    PartPusher,
    job_steps,
    job_work,
    make_fanout,
    meeting_point,
    merged_record,
    publish_plan,
    read_parts,
    read_plan,
)
from mlpipe.run.prepare import prepare
from mlpipe.run.session import Session
from mlpipe.runs import RunHistory, RunRecord, new_run_id


def check_ids(run_id: str, job: str | None = None) -> None:
    """A fan-out run id (and job id) checked before they name a tag or a path."""
    if not RUN_ID.fullmatch(run_id):
        raise UsageError(
            f"--fan-out-run {run_id[:80]!r}: expected a run id such as 20260101T120000000Z-0123456789abcdef"
        )
    if job is not None and not JOB_ID.fullmatch(job):
        raise UsageError(f"--job {job[:80]!r}: expected a job id such as w1j1 (the matrix entry's job)")


# -- the plan job -----------------------------------------------------------------------------------------------
@frozen(kw_only=True)
class MatrixOptions:
    selection: Selected = field(default_factory=Selected)
    waves: int = 4
    """The workflow's wave jobs; deeper levels run in the last wave's jobs."""
    runner_labels: str | None = None
    """JSON: a step's `runs-on` label set (comma-separated) or `default` -> a job's `runs-on`."""


def plan_matrix(
    source: Source, options: MatrixOptions, *, stream: IO[str] | None = None, notices: Sink = to_stderr
) -> FanOut:
    """Place the steps to run in waves of jobs, leave the plan where the jobs meet, create the check run and
    write the plan job's outputs and summary (in GitHub Actions). `stream` (default stderr) hears GitHub's
    workflow commands."""
    stream = stream or sys.stderr
    runners = parse_runner_map(options.runner_labels)  # a mistake in it before any work
    if not 1 <= options.waves <= 100:
        raise UsageError(
            f"--waves {options.waves}: expected 1 to 100 (as many as the workflow has wave jobs)"
        )
    session = open_source(source)
    # The plan job only places steps: the GPUs, labels and container engine are the wave jobs' to check.
    prepared = prepare(
        session.pipeline,
        session.workspace,
        session.store,
        options.selection,
        hasher=session.hasher,
        environ=session.settings.environ,
        to_run=False,
    )
    missing = prepared.plan.missing()
    if missing:
        raise UsageError(
            f"upstream step(s) {', '.join(missing)} have no stored result and are not selected; select them too"
        )
    run_id = new_run_id()
    board, why = meeting_point(session, run_id)
    fanout = make_fanout(prepared, run_id, waves=options.waves, runners=runners, board=board, why=why)
    if board is not None:
        try:
            publish_plan(fanout, board)
        except CacheError as error:
            notices(warning(str(error)))
            fanout = make_fanout(
                prepared, run_id, waves=options.waves, runners=runners, board=None, why=str(error)
            )
            board = None
    from mlpipe.github import fanout as gh

    ctx = gh.context(session.settings.environ, stream)
    if ctx is not None:
        if board is not None:
            check = gh.start_check(ctx, fanout, RunRecord.from_json(dict(fanout.record)), stream=stream)
            if check is not None:
                fanout = publish_plan(replace(fanout, check_run_id=check), board)
        gh.write_job_files(ctx, gh.render_plan(fanout), fanout.outputs())
    return fanout


# -- a wave job -------------------------------------------------------------------------------------------------
@frozen(kw_only=True)
class JobOptions:
    run_id: str
    """The fan-out run (the plan job's `run-id` output)."""
    job: str
    steps: tuple[str, ...] = ()
    """The job's steps, as the matrix gives them (checked against the plan), or () for the plan's."""
    jobs: int | None = None
    fail_fast: bool = False
    snapshot_max_file_size: int = DEFAULT_MAX_RECOVERABLE_FILE


@frozen(kw_only=True)
class JobResult:
    record: RunRecord | None
    """The job's run (its steps, and the upstream steps it read); None when every step was refused."""
    refused: Mapping[str, str] = field(default_factory=dict)
    """Step -> why it was not run (an upstream step failed, or has no stored result)."""
    single: bool = False
    """The cache is read-only: the job ran as a plain `ci-run` (the run is one job)."""
    failure: MlpipeError | None = None


def run_job(
    source: Source, options: JobOptions, *, stream: IO[str] | None = None, notices: Sink = to_stderr
) -> JobResult:
    """Run one job of a fan-out run on this runner. `stream` (default stdout) hears the progress."""
    check_ids(options.run_id, options.job)
    stream = stream or sys.stdout
    session = open_source(source)
    board, why = meeting_point(session, options.run_id)
    run = CiRunOptions(
        selection=Selected(only=options.steps),
        jobs=options.jobs,
        fail_fast=options.fail_fast,
        snapshot_max_file_size=options.snapshot_max_file_size,
        run_id=options.run_id,
    )
    if board is None:
        notices(message(f"fan-out run {options.run_id} is one job: {why}"))
        result = ci_run(source, run, stream=stream, notices=notices)
        return JobResult(record=result.record, single=True, failure=result.failure)
    from mlpipe.run.leftovers import start_run

    locks = start_run(
        session.workspace,
        session.pipeline,
        options.run_id,
        timeout_s=session.settings.lock_timeout_s,
        say=lambda text: notices(message(text)),
    )
    try:
        return _job(session, board, options, run, stream, notices)
    finally:
        locks.release()


def _job(
    session: Session, board: Board, options: JobOptions, run: CiRunOptions, stream: IO[str], notices: Sink
) -> JobResult:
    from mlpipe.api.ci_run import run_options
    from mlpipe.report.events import Reporters
    from mlpipe.report.terminal import choose_reporter
    from mlpipe.run.runner import Runner

    plan = read_plan(board, options.run_id)
    names = job_steps(plan, options.job, options.steps)
    prepared = prepare(
        session.pipeline,
        session.workspace,
        session.store,
        Selected(only=names),
        hasher=session.hasher,
        environ=session.settings.environ,
    )
    warn = lambda text: notices(warning(text))
    work = job_work(prepared, plan, board, warn)
    pusher = PartPusher(board, plan, options.job, work.refused, warn, environ=session.settings.environ)
    for name, why in work.refused.items():
        notices(message(f"{name}: {why}"))
    if work.work is None:
        pusher.push("failed")
        failure = PipelineFailed(
            f"job {options.job} of run {options.run_id} runs none of its steps: every one is refused (above)"
        )
        return JobResult(record=None, refused=work.refused, failure=failure)
    reporter: Any = choose_reporter(stream, session.settings.environ)
    if session.settings.environ.get("GITHUB_ACTIONS") == "true":
        from mlpipe.github.checks import with_github

        # The job's own summary and annotations (no check run of its own), and the run's one check run.
        reporter = with_github(
            reporter,
            prepared,
            publish_checks=False,
            stream=stream,
            environ=session.settings.environ,
            throttle_s=session.settings.github_throttle_s,
        )
        reporter = Reporters(reporter, _job_check(session, board, plan, options.job, stream, warn))
    runner = Runner(
        work.work,
        prepared.site(),
        Reporters(reporter, pusher),
        run_options(session, run),
        run_id=options.run_id,
    )
    record = runner.run()
    pusher.record = record
    from mlpipe.github.fanout import job_annotations

    pusher.annotations = job_annotations(prepared, record, names, pusher.warnings, session.settings.environ)
    ok = record.status == "succeeded" and not work.refused
    pusher.push("succeeded" if ok else "cancelled" if record.status == "cancelled" else "failed")
    return JobResult(
        record=record,
        refused=work.refused,
        failure=_job_failure(options, names, record, work.refused, pusher, board),
    )


def _job_failure(
    options: JobOptions,
    names: tuple[str, ...],
    record: RunRecord,
    refused: Mapping[str, str],
    pusher: PartPusher,
    board: Board,
) -> MlpipeError | None:
    if pusher.failed:
        return CacheError(
            f"the part of job {options.job} could not be stored in {board.where} ({pusher.failed}): the report "
            "will not see this job's steps; re-run this job"
        )
    if record.status == "cancelled":
        return PipelineFailed(f"job {options.job} of run {options.run_id} was cancelled", exit_code=130)
    done = {"ran", "reused"}
    bad = [n for n in names if n in refused or (n in record.steps and record.steps[n].status not in done)]
    if bad or record.status != "succeeded":
        return PipelineFailed(f"job {options.job} of run {options.run_id}: {', '.join(bad)} did not succeed")
    return None


def _job_check(session: Session, board: Board, plan: FanOut, job_id: str, stream: IO[str], warn: Any) -> Any:
    """The run's check run, kept current by this job: the plan's record, the parts of the jobs of this and earlier
    waves (re-read before each update, so concurrent jobs of one wave show each other's steps), this job's steps."""
    from mlpipe.core.fanparts import FINISHED, merge, plan_record
    from mlpipe.github import fanout as gh
    from mlpipe.report.events import Reporters
    from mlpipe.runs import utc_now

    environ = session.settings.environ
    ctx = gh.context(environ, stream)
    job = plan.job(job_id)
    if ctx is None or job is None or plan.check_run_id is None:
        return Reporters()
    others = PartsSeen(
        board, plan, [j.id for j in plan.jobs() if j.wave <= job.wave and j.id != job_id], warn
    )
    planned = plan_record(plan).steps
    later = [
        name for name in plan.order if (other := plan.job_of(name)) is not None and other.wave >= job.wave
    ]

    def view(mine: RunRecord) -> RunRecord:
        parts = others.read()
        whole = merge(plan, parts, cancelled=False, ended_at="")
        for name in later:  # jobs of this and later waves: as planned until they report
            other = plan.job_of(name)
            part = parts.get(other.id) if other is not None else None
            step = part.steps.get(name) if part is not None else None
            shown = step is not None and (step.status in FINISHED or step.status == "running")
            whole.steps[name] = step if step is not None and shown else planned[name]
        for name in job.steps:
            if name in mine.steps:
                whole.steps[name] = mine.steps[name]
        whole.status, whole.ended_at = "running", None
        whole.started_at = whole.started_at or utc_now()
        return whole

    throttle = float(environ.get("MLPIPE_GITHUB_THROTTLE_S", "10"))  # as the one-job check run
    return gh.JobCheck(ctx, plan, view, stream=stream, throttle_s=throttle)


class PartsSeen:
    """The parts of other jobs as a wave job last read them. A finished job's part is kept (it no longer
    changes); the others are re-read on each `read()`, at most `per_read` of them (round-robin), so an update
    costs a bounded number of registry reads however wide the wave."""

    def __init__(
        self, board: Board, plan: FanOut, jobs: Sequence[str], warn: Any, *, per_read: int = 32
    ) -> None:
        self.board, self.plan, self.warn, self.per_read = board, plan, warn, per_read
        self.waiting = list(jobs)
        self.parts: dict[str, Part | None] = {}

    def read(self) -> dict[str, Part | None]:
        batch, self.waiting = self.waiting[: self.per_read], self.waiting[self.per_read :]
        for job, part in read_parts(self.board, self.plan, batch, self.warn).items():
            self.parts[job] = part
            if part is None or part.status == "running":
                self.waiting.append(job)
        return dict(self.parts)


# -- the report -------------------------------------------------------------------------------------------------
@frozen(kw_only=True)
class ReportResult:
    run_id: str
    record: RunRecord | None
    """The merged record; None in single mode (the one job's own record is the run's)."""
    note: str = ""
    """In single mode: why the run was one job."""
    never_ran: tuple[str, ...] = ()
    failure: MlpipeError | None = None


def report(
    source: Source,
    run_id: str,
    *,
    cancelled: bool = False,
    stream: IO[str] | None = None,
    notices: Sink = to_stderr,
) -> ReportResult:
    """Merge every job's part into one run record (stored like any run's), complete the check run, write the job
    summary and outputs. `stream` (default stderr) hears GitHub's workflow commands."""
    from mlpipe.core.fanparts import never_ran
    from mlpipe.github import fanout as gh

    check_ids(run_id)
    stream = stream or sys.stderr
    session = open_source(source)
    board, why = meeting_point(session, run_id)
    ctx = gh.context(session.settings.environ, stream)
    if board is None:
        note = f"Fan-out run `{run_id}` ran as one job: {why}. That job's summary and check run hold the results."
        if ctx is not None:
            gh.write_job_files(ctx, f"## 1️⃣ mlpipe: one job\n\n{note}\n", {"run-id": run_id, "mode": "single"})
        return ReportResult(run_id=run_id, record=None, note=note.replace("`", ""))
    plan = read_plan(board, run_id)
    record, annotations = merged_record(
        board, plan, cancelled=cancelled, warn=lambda text: notices(warning(text))
    )
    record.options["cache"] = session.store.sync(record.to_json())  # the whole run's record, where runs are
    RunHistory(session.workspace.runs).write(record)
    if ctx is not None:
        url = gh.complete_check(ctx, plan, record, annotations, stream=stream)
        markdown = gh.render_run(plan, record, run_url=ctx.run_url, statuses=gh.job_statuses(plan, record))
        counts = record.counts()
        outputs = {
            "run-id": record.run_id,
            "mode": plan.mode,
            "status": record.status,
            **{
                f"steps-{s}": str(counts.get(s, 0))
                for s in ("ran", "reused", "failed", "skipped", "cancelled")
            },
            **_result_files(ctx.temp, record, markdown),
            "check-run-id": str(plan.check_run_id or ""),
            "check-run-url": url,
        }
        gh.write_job_files(ctx, markdown + (f"\nCheck run: {url}\n" if url else ""), outputs)
    failure: MlpipeError | None = None
    if record.status == "cancelled":
        failure = PipelineFailed(f"run {run_id} was cancelled", exit_code=130)
    elif record.status != "succeeded":
        failed = [n for n, s in record.steps.items() if s.status not in {"ran", "reused"}]
        failure = PipelineFailed(f"run {run_id} failed: {', '.join(failed)} did not succeed")
    return ReportResult(run_id=run_id, record=record, never_ran=tuple(never_ran(record)), failure=failure)


def _result_files(temp: Path | None, record: RunRecord, markdown: str) -> dict[str, str]:
    import tempfile

    directory = (temp or Path(tempfile.gettempdir())) / "mlpipe" / record.run_id
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "summary.md").write_text(markdown, encoding="utf-8")
    (directory / "results.json").write_text(json.dumps(record.to_json(), indent=1, sort_keys=True) + "\n")
    return {"summary-file": str(directory / "summary.md"), "results-file": str(directory / "results.json")}
