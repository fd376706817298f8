"""Options shared by several commands, defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from mlpipe.config import Settings

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


_FLAGS = "mlpipe.settings"
"""Where the registry flags wait in click's context (shared by a command and its group) for `cli_settings`."""


def _setting(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    """A registry flag given on the command line, kept under its `mlpipe.config` name: it beats the env."""

    def keep(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is None or value is False or ctx.resilient_parsing:
            return
        ctx.meta.setdefault(_FLAGS, {})[name] = value

    return keep


def _plain_http(ctx: click.Context, param: click.Parameter, value: bool | None) -> None:
    """`--plain-http` and `--no-plain-http` are both kept: the second beats MLPIPE_PLAIN_HTTP=true."""
    if value is not None and not ctx.resilient_parsing:
        ctx.meta.setdefault(_FLAGS, {})["plain-http"] = value


def _insecure(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """`--insecure`, the old name of `--plain-http` (oras, skopeo and curl use `--insecure` for HTTPS without
    checking certificates, which mlpipe does not offer: trust the registry's CA instead)."""
    if value and not ctx.resilient_parsing:
        click.echo("mlpipe: --insecure is deprecated; it means --plain-http, use that", err=True)
        ctx.meta.setdefault(_FLAGS, {})["plain-http"] = True


def given_settings(cache: str | None = None) -> dict[str, Any]:
    """The settings given on this command line, by name, for `mlpipe.config`."""
    ctx = click.get_current_context(silent=True)
    given = dict(ctx.meta.get(_FLAGS, {})) if ctx is not None else {}
    return given | {"cache": cache}


def cli_settings(cache: str | None = None) -> Settings:
    """The command line's and the environment's settings, for a command that reads no config file."""
    from mlpipe.config import settings

    return settings(cli=given_settings(cache))


_CACHE_MODE = click.option(
    "--cache-mode",
    type=click.Choice(["auto", "read-write", "read", "off"]),
    default=None,
    expose_value=False,
    callback=_setting("cache-mode"),
    help="Registry access; auto follows the trust rules for this ref and event [env MLPIPE_CACHE_MODE].",
)


def _flag(name: str, help: str) -> Callable[[F], F]:
    """A registry on/off flag kept for `mlpipe.config` (its MLPIPE_* variable sets it too)."""
    return click.option(f"--{name}", is_flag=True, expose_value=False, callback=_setting(name), help=help)


_ALLOW_DIRTY_PUSH = _flag(
    "allow-dirty-push", "Push results of a run with uncommitted changes to the registry."
)
_PLAIN_HTTP = click.option(
    "--plain-http/--no-plain-http",
    default=None,
    expose_value=False,
    callback=_plain_http,
    help=(
        "Talk plain HTTP to the registry (--no-plain-http: HTTPS, also to loopback hosts); by default "
        "plain HTTP only to this machine [env MLPIPE_PLAIN_HTTP]."
    ),
)
_INSECURE = click.option(
    "--insecure",
    is_flag=True,
    hidden=True,
    expose_value=False,
    callback=_insecure,
    help="Deprecated: --plain-http.",
)
_CACHE_REQUIRED = _flag(
    "cache-required", "Fail when the registry cannot be used (default: warn and go on without it)."
)


def _apply(func: F, *decorators: Callable[[F], F]) -> F:
    for decorate in reversed(decorators):
        func = decorate(func)
    return func


def cache_settings_options(func: F) -> F:
    """The registry flags of a command that may write to the registry."""
    return _apply(func, _CACHE_MODE, _ALLOW_DIRTY_PUSH, _PLAIN_HTTP, _INSECURE, _CACHE_REQUIRED)


def cache_read_options(func: F) -> F:
    """The registry flags of a command that only reads from it (`pull`, `data pull`): pushing and write
    modes mean nothing there."""
    return _apply(func, _PLAIN_HTTP, _INSECURE, _CACHE_REQUIRED)


json_option = click.option("--json", "as_json", is_flag=True, help="Print versioned JSON.")


def pipeline_options(func: F) -> F:
    return file_option(param_option(cache_option(cache_settings_options(func))))


def pipeline_read_options(func: F) -> F:
    """As `pipeline_options`, for a command that only reads stored results."""
    return file_option(param_option(cache_option(cache_read_options(func))))


def _names(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """`--only a,b --only c` becomes ('a', 'b', 'c'); a sweep instance keeps its commas: `train[lr=0.1,C=1.0]`."""
    return tuple(name.strip() for value in values for name in split_names(value) if name.strip())


def split_names(text: str) -> list[str]:
    """Step names separated by commas outside brackets."""
    names, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth <= 0:
            names.append(text[start:i])
            start, depth = i + 1, 0
    return [*names, text[start:]]


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


def fan_out_options(func: F) -> F:
    """A wave job of a fan-out run (issue 15): `--steps a,b --fan-out-run ID --job JOB`."""
    decorators = [
        click.option(
            "--steps",
            multiple=True,
            callback=_names,
            metavar="STEP[,STEP]",
            help="The steps to execute (as --only); with --fan-out-run, the job's steps.",
        ),
        click.option(
            "--fan-out-run",
            default=None,
            metavar="RUN_ID",
            help="Run one job of a fan-out run (the run-id output of `mlpipe plan --github-matrix`).",
        ),
        click.option(
            "--job", "job_id", default=None, metavar="JOB", help="With --fan-out-run: the job's id."
        ),
    ]
    for decorate in reversed(decorators):
        func = decorate(func)
    return func
