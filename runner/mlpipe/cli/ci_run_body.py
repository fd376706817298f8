"""What `mlpipe ci-run` does once its command line is parsed (by click, or by `mlpipe.cli.plain` for a plain
`mlpipe ci-run`): run, print the summary, raise the failure. No click here."""

from __future__ import annotations

import json
import sys

from mlpipe.api.ci_run import DEFAULT_MAX_RECOVERABLE_FILE, CiRunOptions, ci_run
from mlpipe.api.source import Selected, Source
from mlpipe.cli.echo import echo
from mlpipe.errors import UsageError
from mlpipe.report.logs import failure_tails
from mlpipe.report.text import run_summary
from mlpipe.run.session import workspace_for


def run_ci(
    source: Source,
    selection: Selected,
    *,
    jobs: int | None = None,
    fail_fast: bool = False,
    snapshot_max_file_size: int = DEFAULT_MAX_RECOVERABLE_FILE,
    publish_checks: bool = True,
    since: str | None = None,
    fan_out_run: str | None = None,
    job_id: str | None = None,
    as_json: bool = False,
) -> None:
    """Plan, run or reuse every selected step, record the run, and print a summary.

    Exits 0 only when every selected step ran or was reused successfully.
    """
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
            steps=selection.only,
            jobs=jobs,
            fail_fast=fail_fast,
            snapshot_max_file_size=snapshot_max_file_size,
        )
        print_job(run_job(source, job, stream=sys.stderr if as_json else sys.stdout), as_json=as_json)
        return
    # With --json, stdout carries only the record; progress goes to stderr.
    result = ci_run(
        source,
        CiRunOptions(
            selection=selection,
            jobs=jobs,
            fail_fast=fail_fast,
            snapshot_max_file_size=snapshot_max_file_size,
            publish_checks=publish_checks,
            since=since,
        ),
        stream=sys.stderr if as_json else sys.stdout,
    )
    if as_json:
        echo(json.dumps(result.record.to_json(), indent=1, sort_keys=True))
    else:
        root = workspace_for(source.file).root
        echo(run_summary(result.record, failure_tails(result.record, root)))
        if result.comparison is not None:
            from mlpipe.core.compare import diff_text  # a run compared with its base, only

            echo("\n" + diff_text(result.comparison))
        elif result.comparison_note:
            echo(f"\nno comparison with the base: {result.comparison_note}")
    if result.released is not None:
        released = result.released
        echo(f"mlpipe: release manifest for {released.tag}: {released.path} ({released.where})", err=as_json)
    if result.failure is not None:
        raise result.failure
