"""`mlpipe ci-run`: what CI runs, and what users run to do what CI does. Parsing and printing only: the work,
the release and the exit policy are `mlpipe.api.ci_run`'s."""

from __future__ import annotations

import json
import sys

import click

from mlpipe.api.ci_run import DEFAULT_MAX_RECOVERABLE_FILE, CiRunOptions, ci_run
from mlpipe.api.source import Selected, Source
from mlpipe.cli.options import (
    fan_out_options,
    given_settings,
    json_option,
    pipeline_options,
    selection_options,
)
from mlpipe.errors import UsageError
from mlpipe.report.logs import failure_tails
from mlpipe.report.text import run_summary
from mlpipe.run.session import workspace_for


@click.command("ci-run")
@pipeline_options
@selection_options
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Steps run at once (default: $MLPIPE_JOBS, else the config files, else cores).",
)
@click.option("--fail-fast", is_flag=True, help="Stop every running step when one fails.")
@click.option(
    "--snapshot-max-file-size",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_RECOVERABLE_FILE,
    envvar="MLPIPE_SNAPSHOT_MAX_FILE_SIZE",
    show_default=True,
    metavar="BYTES",
    help="Files above this size are left out of a dirty run's code commit (listed as not recoverable).",
)
@click.option(
    "--publish-checks/--no-publish-checks",
    default=True,
    envvar="MLPIPE_PUBLISH_CHECKS",
    help="In GitHub Actions, publish a check run with annotations (else only log annotations and the job summary).",
)
@click.option(
    "--since",
    default=None,
    metavar="REF",
    help="Compare with the latest run of REF's commit (here, or in the registry): steps that differ and metrics.",
)
@fan_out_options
@json_option
def command(
    file: str | None,
    params: tuple[str, ...],
    cache: str | None,
    only: tuple[str, ...],
    from_: tuple[str, ...],
    with_upstream: bool,
    no_reuse: bool,
    jobs: int | None,
    fail_fast: bool,
    snapshot_max_file_size: int,
    publish_checks: bool,
    since: str | None,
    steps: tuple[str, ...],
    fan_out_run: str | None,
    job_id: str | None,
    as_json: bool,
) -> None:
    """Plan, run or reuse every selected step, record the run, and print a summary.

    Exits 0 only when every selected step ran or was reused successfully.
    """
    only = only + steps  # --steps is --only; with --fan-out-run, the job's steps
    if job_id is not None and fan_out_run is None:
        raise UsageError("--job names a job of a fan-out run: give --fan-out-run RUN_ID too")
    if fan_out_run is not None:  # one job of a run spread over CI jobs (issue 15)
        from mlpipe.api.fanout import JobOptions, run_job
        from mlpipe.cli.fanout import print_job

        if job_id is None:
            raise UsageError("--fan-out-run needs --job JOB (the matrix entry's job)")
        job = JobOptions(
            run_id=fan_out_run,
            job=job_id,
            steps=only,
            jobs=jobs,
            fail_fast=fail_fast,
            snapshot_max_file_size=snapshot_max_file_size,
        )
        source = Source(file=file, params=params, settings=given_settings(cache))
        print_job(run_job(source, job, stream=sys.stderr if as_json else sys.stdout), as_json=as_json)
        return
    # With --json, stdout carries only the record; progress goes to stderr.
    result = ci_run(
        Source(file=file, params=params, settings=given_settings(cache)),
        CiRunOptions(
            selection=Selected(only=only, from_=from_, with_upstream=with_upstream, no_reuse=no_reuse),
            jobs=jobs,
            fail_fast=fail_fast,
            snapshot_max_file_size=snapshot_max_file_size,
            publish_checks=publish_checks,
            since=since,
        ),
        stream=sys.stderr if as_json else sys.stdout,
    )
    if as_json:
        click.echo(json.dumps(result.record.to_json(), indent=1, sort_keys=True))
    else:
        root = workspace_for(file).root
        click.echo(run_summary(result.record, failure_tails(result.record, root)))
        if result.comparison is not None:
            from mlpipe.core.compare import diff_text  # a run compared with its base, only

            click.echo("\n" + diff_text(result.comparison))
        elif result.comparison_note:
            click.echo(f"\nno comparison with the base: {result.comparison_note}")
    if result.released is not None:
        released = result.released
        click.echo(
            f"mlpipe: release manifest for {released.tag}: {released.path} ({released.where})", err=as_json
        )
    if result.failure is not None:
        raise result.failure
