"""`mlpipe validate`: check the pipeline file and report every problem."""

from __future__ import annotations

from pathlib import Path

import click

from mlpipe.cli.options import file_option, param_option
from mlpipe.spec.load import load_pipeline, parse_overrides


@click.command(name="validate")
@file_option
@param_option
def command(file: Path, params: tuple[str, ...]) -> None:
    """Check the pipeline file and report every problem."""
    pipeline = load_pipeline(file, overrides=parse_overrides(params))
    count = len(pipeline.steps)
    click.echo(f"{file}: ok ({count} step{'' if count == 1 else 's'})")
