"""Options shared by the commands that plan or run a pipeline, defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def _names(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """`--only a,b --only c` and `--only a b`-style lists both become ('a', 'b', 'c')."""
    return tuple(name.strip() for value in values for name in value.split(",") if name.strip())


def pipeline_options(func: F) -> F:
    func = click.option("-f", "--file", "file", default=None, help="Pipeline file (default: ./mlpipe.yaml).")(func)
    func = click.option(
        "-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Override a pipeline param."
    )(func)
    func = click.option(
        "--cache", default=None, metavar="DIR", help="Result store (default: $MLPIPE_CACHE, else .mlpipe/cache)."
    )(func)
    return func


def selection_options(func: F) -> F:
    func = click.option(
        "--only", multiple=True, callback=_names, metavar="STEP[,STEP]",
        help="Execute only these steps; their upstream results must be stored.",
    )(func)
    func = click.option(
        "--from", "from_", multiple=True, callback=_names, metavar="STEP",
        help="Force this step and everything downstream of it to run.",
    )(func)
    func = click.option(
        "--with-upstream", is_flag=True, help="With --only: also execute the selected steps' upstream steps."
    )(func)
    func = click.option("--no-reuse", is_flag=True, help="Run every selected step, reusing nothing.")(func)
    return func
