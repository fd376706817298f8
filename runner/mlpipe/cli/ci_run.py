"""`mlpipe ci-run`: what CI runs, and what users run to do what CI does. Parsing and printing only: the work,
the release and the exit policy are `mlpipe.api.ci_run`'s."""

from __future__ import annotations

import click

from mlpipe.api.ci_run import DEFAULT_MAX_RECOVERABLE_FILE
from mlpipe.api.source import Selected, Source
from mlpipe.cli.ci_run_body import run_ci
from mlpipe.cli.options import (
    fan_out_options,
    given_settings,
    json_option,
    pipeline_options,
    selection_options,
)


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
    run_ci(
        Source(file=file, params=params, settings=given_settings(cache)),
        Selected(
            only=only + steps,  # --steps is --only; with --fan-out-run, the job's steps
            from_=from_,
            with_upstream=with_upstream,
            no_reuse=no_reuse,
        ),
        jobs=jobs,
        fail_fast=fail_fast,
        snapshot_max_file_size=snapshot_max_file_size,
        publish_checks=publish_checks,
        since=since,
        fan_out_run=fan_out_run,
        job_id=job_id,
        as_json=as_json,
    )
