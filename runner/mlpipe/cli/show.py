"""`mlpipe show RUN`: one run record."""

from __future__ import annotations

import json

import click

from mlpipe.cli.options import file_option, json_option
from mlpipe.report.logs import failure_tails
from mlpipe.report.text import show_text
from mlpipe.run.session import workspace_for
from mlpipe.run.sweeps import sweep_tables
from mlpipe.runs import RunHistory


@click.command("show")
@click.argument("run", default="latest")
@file_option
@json_option
def command(run: str, file: str | None, as_json: bool) -> None:
    """Show one run record; RUN is a run id, a unique prefix of one, or `latest`."""
    workspace = workspace_for(file)
    history = RunHistory(workspace.runs)
    record = history.load(history.resolve(run))
    if as_json:
        click.echo(json.dumps(record.to_json(), indent=1, sort_keys=True))
    else:
        click.echo(show_text(record, failure_tails(record, workspace.root)))
        sweeps = sweep_tables(record)
        if sweeps:
            click.echo("\n" + sweeps)
