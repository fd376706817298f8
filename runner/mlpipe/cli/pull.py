"""`mlpipe pull STEP[.OUTPUT] [--to DIR]`."""

from __future__ import annotations

from pathlib import Path

import click

from mlpipe.cli.options import given_settings, pipeline_read_options
from mlpipe.release.pull import pull
from mlpipe.report.traffic import traffic_display
from mlpipe.run.session import open_session


@click.command("pull")
@click.argument("target", metavar="STEP[.OUTPUT]")
@click.option(
    "--to",
    "to",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write into DIR/OUTPUT (default: the output's `path:`, else the workspace root).",
)
@pipeline_read_options
def command(
    target: str, to: Path | None, file: str | None, params: tuple[str, ...], cache: str | None
) -> None:
    """Materialize a step's stored outputs for the current code and params (else its most recent result)."""
    session = open_session(file, params, given_settings(cache))
    with traffic_display(session.settings.environ):
        pulled = pull(session, target, to)
    if not pulled.current:
        click.echo(
            f"mlpipe: no stored result of {pulled.step} matches the current code, params and inputs; "
            f"pulling its most recent one (run {pulled.run_id})",
            err=True,
        )
    for name, where in pulled.outputs.items():
        click.echo(f"{pulled.step}.{name} -> {where}")
    if pulled.dirtying:
        shown = ", ".join(pulled.dirtying[:5]) + (", ..." if len(pulled.dirtying) > 5 else "")
        click.echo(
            f"mlpipe: warning: git does not ignore what was written ({shown}), so the next run is dirty and "
            "a step whose code directory holds it gets a new snapshot; add it to .gitignore, or pull with "
            "--to DIR into a directory git ignores (e.g. --to .mlpipe/pulled)",
            err=True,
        )
