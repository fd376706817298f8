"""Options shared by several commands, defined once."""

from __future__ import annotations

import os
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
    "--cache",
    default=None,
    metavar="DIR|oci://HOST/REPO",
    help="Result store, or a registry behind the local one (default: $MLPIPE_CACHE, else .mlpipe/cache).",
)


def _to_env(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    """Registry settings travel as MLPIPE_* variables, the env's own names: a flag given beats the env."""

    def store(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is None or value is False or ctx.resilient_parsing:
            return
        os.environ[name] = "true" if value is True else str(value)

    return store


def cache_settings_options(func: F) -> F:
    decorators = [
        click.option(
            "--cache-mode",
            type=click.Choice(["auto", "read-write", "read", "off"]),
            default=None,
            expose_value=False,
            callback=_to_env("MLPIPE_CACHE_MODE"),
            help="Registry access; auto follows the trust rules for this ref and event [env MLPIPE_CACHE_MODE].",
        ),
        click.option(
            "--allow-dirty-push",
            is_flag=True,
            expose_value=False,
            callback=_to_env("MLPIPE_ALLOW_DIRTY_PUSH"),
            help="Push results of a run with uncommitted changes to the registry.",
        ),
        click.option(
            "--insecure",
            is_flag=True,
            expose_value=False,
            callback=_to_env("MLPIPE_INSECURE_REGISTRY"),
            help="Talk plain HTTP to a registry that is not on this machine.",
        ),
        click.option(
            "--cache-required",
            is_flag=True,
            expose_value=False,
            callback=_to_env("MLPIPE_CACHE_REQUIRED"),
            help="Fail when the registry cannot be used (default: warn and go on without it).",
        ),
    ]
    for decorate in reversed(decorators):
        func = decorate(func)
    return func


json_option = click.option("--json", "as_json", is_flag=True, help="Print versioned JSON.")


def pipeline_options(func: F) -> F:
    return file_option(param_option(cache_option(cache_settings_options(func))))


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
