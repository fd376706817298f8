"""Options shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path

import click

file_option = click.option(
    "-f",
    "--file",
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    default="mlpipe.yaml",
    show_default=True,
    help="The pipeline file.",
)

param_option = click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a param's default; repeatable.",
)
