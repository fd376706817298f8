"""Options shared by several commands, defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

file_option = click.option(
    "-f", "--file", "file", default=None, metavar="FILE", help="The pipeline file (default: ./mlpipe.yaml)."
)

param_option = click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a param's default; repeatable.",
)

cache_option = click.option(
    "--cache", default=None, metavar="DIR", help="Result store (default: $MLPIPE_CACHE, else .mlpipe/cache)."
)

json_option = click.option("--json", "as_json", is_flag=True, help="Print versioned JSON.")


def pipeline_options(func: F) -> F:
    return file_option(param_option(cache_option(func)))


def _names(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """`--only a,b --only c` becomes ('a', 'b', 'c')."""
    return tuple(name.strip() for value in values for name in value.split(",") if name.strip())


def selection_options(func: F) -> F:
    decorators = [
        click.option(
            "--only",
            multiple=True,
            callback=_names,
            metavar="STEP[,STEP]",
            help="Execute only these steps; their upstream results must be stored.",
        ),
        click.option(
            "--from",
            "from_",
            multiple=True,
            callback=_names,
            metavar="STEP",
            help="Force this step and everything downstream of it to run.",
        ),
        click.option(
            "--with-upstream", is_flag=True, help="With --only: also execute the steps' upstream steps."
        ),
        click.option("--no-reuse", is_flag=True, help="Run every selected step, reusing nothing."),
    ]
    for decorate in reversed(decorators):
        func = decorate(func)
    return func
