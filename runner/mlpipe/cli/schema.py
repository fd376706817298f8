"""`mlpipe schema`: print the JSON Schema of the pipeline file, for editors and other tools."""

from __future__ import annotations

from importlib.resources import files

import click

SCHEMA = "mlpipe.schema.json"


def schema_text() -> str:
    """The JSON Schema (draft 2020-12) of `mlpipe.yaml`, as shipped in the package."""
    return files("mlpipe").joinpath(SCHEMA).read_text(encoding="utf-8")


@click.command("schema")
def command() -> None:
    """Print the JSON Schema of mlpipe.yaml (point your editor's YAML support at it)."""
    click.echo(schema_text(), nl=False)
