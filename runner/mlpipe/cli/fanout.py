"""Printing what `mlpipe.api.fanout` returns: the plan job's waves, a wave job's run, the report (issue 15)."""

from __future__ import annotations

import json

import click

from mlpipe.api.fanout import JobResult, ReportResult
from mlpipe.core.fanout import FanOut


def print_plan(plan: FanOut, *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({**plan.to_json(), "outputs": plan.outputs()}, indent=1))
        return
    lines = [f"fan-out run {plan.run_id}: {plan.mode}" + (f" ({plan.why})" if plan.why else "")]
    for job in plan.jobs():
        runs_on = job.runs_on if isinstance(job.runs_on, str) else "[" + ", ".join(job.runs_on) + "]"
        lines.append(f"  wave {job.wave}  {job.id}  on {runs_on}: {', '.join(job.steps)}")
    if not plan.jobs():
        lines.append("  every step is reused: no job starts")
    click.echo("\n".join(lines))


def print_job(result: JobResult, *, as_json: bool) -> None:
    from mlpipe.report.text import run_summary

    if result.record is not None:
        if as_json:
            click.echo(json.dumps(result.record.to_json(), indent=1, sort_keys=True))
        else:
            click.echo(run_summary(result.record))
    if result.failure is not None:
        raise result.failure


def print_report(result: ReportResult, *, as_json: bool) -> None:
    from mlpipe.report.text import run_summary

    if result.record is None:
        click.echo(result.note)
        return
    if as_json:
        click.echo(json.dumps(result.record.to_json(), indent=1, sort_keys=True))
    else:
        click.echo(run_summary(result.record))
    if result.never_ran:
        click.echo(f"mlpipe: never ran: {', '.join(result.never_ran)}", err=True)
    if result.failure is not None:
        raise result.failure
