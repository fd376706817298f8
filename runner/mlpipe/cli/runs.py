"""`mlpipe runs`: the run history, newest first."""

from __future__ import annotations

import json

import click

from mlpipe.cli.options import file_option, json_option
from mlpipe.report import runs_json, runs_text
from mlpipe.runs import RunHistory
from mlpipe.session import workspace_for


@click.command("runs")
@file_option
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True)
@json_option
def command(file: str | None, limit: int, as_json: bool) -> None:
    """List recorded runs, newest first."""
    history = RunHistory(workspace_for(file).runs)
    records = []
    for record in history.records():
        records.append(record)
        if len(records) >= limit:
            break
    if as_json:
        click.echo(json.dumps(runs_json(records), indent=1))
    elif records:
        click.echo(runs_text(records))
    else:
        click.echo("no runs recorded yet; `mlpipe ci-run` makes one")
