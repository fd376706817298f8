"""`mlpipe report --fan-out-run ID`: the last job of a run spread over CI jobs (issue 15). Parsing and printing
only: the merge is `mlpipe.api.fanout.report`'s."""

from __future__ import annotations

import click

from mlpipe.api.fanout import report
from mlpipe.api.source import Source
from mlpipe.cli.fanout import print_report
from mlpipe.cli.options import given_settings, json_option, pipeline_options


@click.command("report")
@pipeline_options
@click.option(
    "--fan-out-run",
    required=True,
    metavar="RUN_ID",
    help="The run-id output of `mlpipe plan --github-matrix`.",
)
@click.option(
    "--cancelled", is_flag=True, help="The workflow was cancelled: complete the check run as cancelled."
)
@json_option
def command(
    file: str | None,
    params: tuple[str, ...],
    cache: str | None,
    fan_out_run: str,
    cancelled: bool,
    as_json: bool,
) -> None:
    """Merge every job's part of a fan-out run into one run record (naming the steps that never ran), complete its
    check run, write the job summary and outputs.

    Exits 0 only when every step ran or was reused.
    """
    result = report(
        Source(file=file, params=params, settings=given_settings(cache)), fan_out_run, cancelled=cancelled
    )
    print_report(result, as_json=as_json)
