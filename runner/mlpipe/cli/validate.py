"""`mlpipe validate`: check the pipeline file and report every problem."""

from __future__ import annotations

import click

from mlpipe.cli.options import file_option, param_option
from mlpipe.run.session import load, pipeline_path


@click.command(name="validate")
@file_option
@param_option
def command(file: str | None, params: tuple[str, ...]) -> None:
    """Check the pipeline file and report every problem."""
    pipeline = load(file, params)
    count = len(pipeline.steps)
    click.echo(f"{pipeline_path(file)}: ok ({count} step{'' if count == 1 else 's'})")
