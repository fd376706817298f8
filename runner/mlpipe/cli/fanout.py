"""The fan-out side of `plan --github-matrix`, `ci-run --fan-out-run` and `report` (issue 15): wiring and printing.

The placing is core/fanout.py, the merging core/fanparts.py, where jobs meet and what a job runs run/fanout.py,
the check run github/fanout.py.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from mlpipe.core.fanout import FanOut, parse_runner_map
from mlpipe.errors import CacheError, PipelineFailed, UsageError
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
from mlpipe.run.prepare import Selected, prepare
from mlpipe.run.session import Session
from mlpipe.runs import RunHistory, RunRecord, new_run_id

if TYPE_CHECKING:
    from mlpipe.run.runner import RunOptions


def _warn(text: str) -> None:
    click.echo(f"mlpipe: warning: {text}", err=True)


# -- plan --github-matrix ---------------------------------------------------------------------------------------
def plan_matrix(
    session: Session, selection: Selected, *, waves: int, runner_labels: str | None, as_json: bool
) -> None:
    runners = parse_runner_map(runner_labels)  # a mistake in it before any work
    if not 1 <= waves <= 100:
        raise UsageError(f"--waves {waves}: expected 1 to 100 (as many as the workflow has wave jobs)")
    prepared = prepare(
        session.pipeline, session.workspace, session.store, selection, hasher=session.hasher, build=False
    )
    missing = prepared.plan.missing()
    if missing:
        raise UsageError(
            f"upstream step(s) {', '.join(missing)} have no stored result and are not selected; select them too"
        )
    run_id = new_run_id()
    board, why = meeting_point(session, run_id)
    fanout = make_fanout(prepared, run_id, waves=waves, runners=runners, board=board, why=why)
    if board is not None:
        try:
            publish_plan(fanout, board)
        except CacheError as error:
            _warn(str(error))
            fanout = make_fanout(prepared, run_id, waves=waves, runners=runners, board=None, why=str(error))
            board = None
    from mlpipe.github import fanout as gh

    ctx = gh.context(sys.stderr)
    if ctx is not None:
        if board is not None:
            record = RunRecord.from_json(dict(fanout.record))
            check = gh.start_check(ctx, fanout, record, stream=sys.stderr)
            if check is not None:
                fanout = publish_plan(replace(fanout, check_run_id=check), board)
        gh.write_job_files(ctx, gh.render_plan(fanout), fanout.outputs())
    if as_json:
        click.echo(json.dumps({**fanout.to_json(), "outputs": fanout.outputs()}, indent=1))
    else:
        click.echo(plan_text(fanout))


def plan_text(plan: FanOut) -> str:
    lines = [f"fan-out run {plan.run_id}: {plan.mode}" + (f" ({plan.why})" if plan.why else "")]
    for job in plan.jobs():
        runs_on = job.runs_on if isinstance(job.runs_on, str) else "[" + ", ".join(job.runs_on) + "]"
        lines.append(f"  wave {job.wave}  {job.id}  on {runs_on}: {', '.join(job.steps)}")
    if not plan.jobs():
        lines.append("  every step is reused: no job starts")
    return "\n".join(lines)


# -- ci-run --fan-out-run ---------------------------------------------------------------------------------------
def job_board(session: Session, run_id: str) -> Board | None:
    """Where the job meets the others; None: single mode (the cache is read-only), run as a plain ci-run."""
    board, why = meeting_point(session, run_id)
    if board is None:
        click.echo(f"mlpipe: fan-out run {run_id} is one job: {why}", err=True)
    return board


def run_job(
    session: Session,
    board: Board,
    *,
    run_id: str,
    job_id: str,
    steps: Sequence[str],
    options: RunOptions,
    as_json: bool,
) -> None:
    from mlpipe.github.checks import with_github
    from mlpipe.report.events import Reporters
    from mlpipe.report.terminal import choose_reporter
    from mlpipe.report.text import run_summary
    from mlpipe.run.leftovers import start_run
    from mlpipe.run.locks import lock_timeout
    from mlpipe.run.runner import Runner

    plan = read_plan(board, run_id)
    names = job_steps(plan, job_id, steps)

    def say(text: str) -> None:
        click.echo(f"mlpipe: {text}", err=True)

    locks = start_run(
        session.workspace, session.pipeline, run_id, timeout_s=lock_timeout(session.settings.environ), say=say
    )
    click.get_current_context().call_on_close(locks.release)
    prepared = prepare(
        session.pipeline, session.workspace, session.store, Selected(only=names), hasher=session.hasher
    )
    work = job_work(prepared, plan, board, _warn)
    pusher = PartPusher(board, plan, job_id, work.refused, _warn)
    for name, why in work.refused.items():
        say(f"{name}: {why}")
    if work.work is None:
        pusher.push("failed")
        raise PipelineFailed(
            f"job {job_id} of run {run_id} runs none of its steps: every one is refused (above)"
        )
    stream = sys.stderr if as_json else sys.stdout
    reporter: Any = choose_reporter(stream)
    if session.settings.environ.get("GITHUB_ACTIONS") == "true":
        # The job's own summary and annotations (no check run of its own), and the run's one check run.
        reporter = with_github(reporter, prepared, publish_checks=False, stream=stream)
        reporter = Reporters(reporter, _job_check(board, plan, job_id, stream))
    record = Runner(work.work, prepared.site(), Reporters(reporter, pusher), options, run_id=run_id).run()
    pusher.record = record
    ok = record.status == "succeeded" and not work.refused
    pusher.push("succeeded" if ok else "cancelled" if record.status == "cancelled" else "failed")
    if as_json:
        click.echo(json.dumps(record.to_json(), indent=1, sort_keys=True))
    else:
        click.echo(run_summary(record))
    if pusher.failed:
        raise CacheError(
            f"the part of job {job_id} could not be stored in {board.where} ({pusher.failed}): the report will not "
            "see this job's steps; re-run this job"
        )
    if record.status == "cancelled":
        raise PipelineFailed(f"job {job_id} of run {run_id} was cancelled", exit_code=130)
    if not ok:
        done = {"ran", "reused"}
        bad = [
            n
            for n in names
            if n in work.refused or (n in record.steps and record.steps[n].status not in done)
        ]
        raise PipelineFailed(f"job {job_id} of run {run_id}: {', '.join(bad)} did not succeed")


def _job_check(board: Board, plan: FanOut, job_id: str, stream: IO[str]) -> Any:
    from mlpipe.core.fanparts import merge
    from mlpipe.github import fanout as gh
    from mlpipe.runs import utc_now

    ctx = gh.context(stream)
    job = plan.job(job_id)
    if ctx is None or job is None or plan.check_run_id is None:
        from mlpipe.report.events import Reporters

        return Reporters()
    earlier = read_parts(board, plan, [j.id for j in plan.jobs() if j.wave < job.wave], _warn)

    planned = RunRecord.from_json(dict(plan.record)).steps
    later = [
        name for name in plan.order if (other := plan.job_of(name)) is not None and other.wave >= job.wave
    ]

    def view(mine: RunRecord) -> RunRecord:
        whole = merge(plan, earlier, cancelled=False, ended_at="")
        for name in later:  # jobs of this and later waves: as planned until they report
            whole.steps[name] = planned[name]
        for name in job.steps:
            if name in mine.steps:
                whole.steps[name] = mine.steps[name]
        whole.status, whole.ended_at = "running", None
        whole.started_at = whole.started_at or utc_now()
        return whole

    throttle = float(os.environ.get("MLPIPE_GITHUB_THROTTLE_S", "10"))  # as the one-job check run
    return gh.JobCheck(ctx, plan, view, stream=stream, throttle_s=throttle)


# -- report -----------------------------------------------------------------------------------------------------
def report(session: Session, run_id: str, *, cancelled: bool, as_json: bool) -> None:
    from mlpipe.core.fanparts import never_ran
    from mlpipe.github import fanout as gh
    from mlpipe.report.text import run_summary

    board, why = meeting_point(session, run_id)
    ctx = gh.context(sys.stderr)
    if board is None:
        text = f"Fan-out run `{run_id}` ran as one job: {why}. That job's summary and check run hold the results."
        if ctx is not None:
            gh.write_job_files(ctx, f"## 1️⃣ mlpipe: one job\n\n{text}\n", {"run-id": run_id, "mode": "single"})
        click.echo(text.replace("`", ""))
        return
    plan = read_plan(board, run_id)
    record = merged_record(board, plan, cancelled=cancelled, warn=_warn)
    record.options["cache"] = session.store.sync(record.to_json())  # the whole run's record, where runs are
    RunHistory(session.workspace.runs).write(record)
    if ctx is not None:
        url = gh.complete_check(ctx, plan, record, stream=sys.stderr)
        markdown = gh.render_run(plan, record, run_url=ctx.run_url, statuses=gh.job_statuses(plan, record))
        files = _result_files(ctx.temp, record, markdown)
        counts = record.counts()
        outputs = {
            "run-id": record.run_id,
            "mode": plan.mode,
            "status": record.status,
            **{
                f"steps-{s}": str(counts.get(s, 0))
                for s in ("ran", "reused", "failed", "skipped", "cancelled")
            },
            **files,
            "check-run-id": str(plan.check_run_id or ""),
            "check-run-url": url,
        }
        gh.write_job_files(ctx, markdown + (f"\nCheck run: {url}\n" if url else ""), outputs)
    if as_json:
        click.echo(json.dumps(record.to_json(), indent=1, sort_keys=True))
    else:
        click.echo(run_summary(record))
    never = never_ran(record)
    if never:
        click.echo(f"mlpipe: never ran: {', '.join(never)}", err=True)
    if record.status == "cancelled":
        raise PipelineFailed(f"run {run_id} was cancelled", exit_code=130)
    if record.status != "succeeded":
        failed = [n for n, s in record.steps.items() if s.status not in {"ran", "reused"}]
        raise PipelineFailed(f"run {run_id} failed: {', '.join(failed)} did not succeed")


def _result_files(temp: Path | None, record: RunRecord, markdown: str) -> dict[str, str]:
    import tempfile

    directory = (temp or Path(tempfile.gettempdir())) / "mlpipe" / record.run_id
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "summary.md").write_text(markdown, encoding="utf-8")
    (directory / "results.json").write_text(json.dumps(record.to_json(), indent=1, sort_keys=True) + "\n")
    return {"summary-file": str(directory / "summary.md"), "results-file": str(directory / "results.json")}
