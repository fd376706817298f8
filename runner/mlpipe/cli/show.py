"""`mlpipe show RUN`: one run record."""

from __future__ import annotations

import json

import click

from mlpipe.report import show_text
from mlpipe.runs import RunHistory
from mlpipe.session import open_session


@click.command("show")
@click.argument("run", default="latest")
@click.option("-f", "--file", "file", default=None, help="Pipeline file (default: ./mlpipe.yaml).")
@click.option("--json", "as_json", is_flag=True, help="Print the record's versioned JSON.")
def command(run: str, file: str | None, as_json: bool) -> None:
    """Show one run record; RUN is a run id, a unique prefix of one, or `latest`."""
    session = open_session(file)
    history = RunHistory(session.workspace.runs)
    record = history.load(history.resolve(run))
    if as_json:
        click.echo(json.dumps(record.to_json(), indent=1, sort_keys=True))
    else:
        click.echo(show_text(record))
