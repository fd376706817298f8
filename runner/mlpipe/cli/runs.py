"""`mlpipe runs`: the run history, newest first."""

from __future__ import annotations

import contextlib
import json

import click

from mlpipe.cli.options import cli_settings, file_option, json_option
from mlpipe.report.text import runs_json, runs_metrics_text, runs_text
from mlpipe.run.session import remote_of, workspace_for
from mlpipe.runs import RunHistory, RunRecord


@click.command("runs")
@file_option
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option(
    "--cache",
    default=None,
    metavar="oci://HOST/REPO",
    help="Also list the runs every runner pushed to this registry (default: $MLPIPE_CACHE when oci://).",
)
@click.option("--commit", default=None, metavar="SHA", help="With a registry: only the runs of this commit.")
@click.option(
    "--metrics",
    "with_metrics",
    is_flag=True,
    help="A column per param and per metric (`step.output.key`), like `dvc exp show`.",
)
@json_option
def command(
    file: str | None, limit: int, cache: str | None, commit: str | None, with_metrics: bool, as_json: bool
) -> None:
    """List recorded runs, newest first."""
    settings = cli_settings(cache)
    workspace = workspace_for(file, settings)
    history = RunHistory(workspace.runs)
    records = []
    for record in history.records():
        records.append(record)
        if len(records) >= limit:
            break
    remote = remote_of(settings)
    if remote is not None:
        from mlpipe.run.stores import remote_run_records

        seen = {r.run_id for r in records}
        for data in remote_run_records(remote, workspace.cache, workspace.root, limit=limit, commit=commit):
            with contextlib.suppress(ValueError, TypeError, KeyError):
                record = RunRecord.from_json(data)
                if record.run_id not in seen:
                    seen.add(record.run_id)
                    records.append(record)
        if commit:
            records = [r for r in records if (r.git.get("commit") or "").startswith(commit)]
        records = sorted(records, key=lambda r: r.run_id, reverse=True)[:limit]
    if as_json:
        click.echo(json.dumps(runs_json(records, metrics=with_metrics), indent=1))
    elif records:
        click.echo(runs_metrics_text(records) if with_metrics else runs_text(records))
    else:
        click.echo("no runs recorded yet; `mlpipe ci-run` makes one")
