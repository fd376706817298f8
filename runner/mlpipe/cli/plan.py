"""`mlpipe plan`: run or reuse for each step, and why, without running anything. Parsing and printing only:
the plan is `mlpipe.api.plan`'s."""

from __future__ import annotations

import json

import click

from mlpipe.api.plan import PlanOptions, plan
from mlpipe.api.source import Selected, Source
from mlpipe.cli.options import given_settings, json_option, pipeline_options, selection_options
from mlpipe.report.text import plan_json, plan_text


@click.command("plan")
@pipeline_options
@selection_options
@click.option(
    "--github",
    "publish",
    is_flag=True,
    help="In GitHub Actions, publish the plan as a check run and in the job summary, before any compute.",
)
@json_option
def command(
    file: str | None,
    params: tuple[str, ...],
    cache: str | None,
    only: tuple[str, ...],
    from_: tuple[str, ...],
    with_upstream: bool,
    no_reuse: bool,
    publish: bool,
    as_json: bool,
) -> None:
    """Say for each step whether `ci-run` would run it or reuse a stored result, and why."""
    result = plan(
        Source(file=file, params=params, settings=given_settings(cache)),
        PlanOptions(
            selection=Selected(only=only, from_=from_, with_upstream=with_upstream, no_reuse=no_reuse),
            publish=publish,
        ),
    )
    if (
        result.published
    ):  # stderr: stdout keeps the plan alone, as without --github (and --json stays parseable)
        click.echo(f"plan published: {result.published}", err=True)
    if as_json:
        click.echo(json.dumps(plan_json(result.pipeline, result.plan), indent=1))
    else:
        click.echo(plan_text(result.plan))
