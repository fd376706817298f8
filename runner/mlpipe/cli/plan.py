"""`mlpipe plan`: run or reuse for each step, and why, without running anything."""

from __future__ import annotations

import json

import click

from mlpipe.cli.options import json_option, pipeline_options, selection_options
from mlpipe.prepare import Selected, prepare
from mlpipe.report import plan_json, plan_text
from mlpipe.session import open_session


@click.command("plan")
@pipeline_options
@selection_options
@json_option
def command(
    file: str | None,
    params: tuple[str, ...],
    cache: str | None,
    only: tuple[str, ...],
    from_: tuple[str, ...],
    with_upstream: bool,
    no_reuse: bool,
    as_json: bool,
) -> None:
    """Say for each step whether `ci-run` would run it or reuse a stored result, and why."""
    session = open_session(file, params, cache)
    prepared = prepare(
        session.pipeline,
        session.workspace,
        session.store,
        Selected(only=only, from_=from_, with_upstream=with_upstream, no_reuse=no_reuse),
        hasher=session.hasher,
    )
    if as_json:
        click.echo(json.dumps(plan_json(session.pipeline.name, prepared.plan), indent=1))
    else:
        click.echo(plan_text(prepared.plan))
