"""`mlpipe export`: print the resolved pipeline as canonical, versioned JSON."""

from __future__ import annotations

import click

from mlpipe.cli.options import file_option, param_option
from mlpipe.run.session import load
from mlpipe.spec.export import export_json


@click.command("export")
@file_option
@param_option
def command(file: str | None, params: tuple[str, ...]) -> None:
    """Print the pipeline with every default spelled out and params resolved, as canonical JSON.

    Paths stay relative to the workspace: save the output beside the pipeline file, and
    `mlpipe ci-run -f exported.json` runs it with the same fingerprints.
    """
    click.echo(export_json(load(file, params)), nl=False)
