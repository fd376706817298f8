"""`mlpipe runs`: the run history, newest first."""

from __future__ import annotations

import json

import click

from mlpipe.report import runs_json, runs_text
from mlpipe.runs import RunHistory
from mlpipe.session import open_session


@click.command("runs")
@click.option("-f", "--file", "file", default=None, help="Pipeline file (default: ./mlpipe.yaml).")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print versioned JSON.")
def command(file: str | None, limit: int, as_json: bool) -> None:
    """List recorded runs, newest first."""
    session = open_session(file)
    history = RunHistory(session.workspace.runs)
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
