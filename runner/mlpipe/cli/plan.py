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
@click.option(
    "--github-matrix",
    is_flag=True,
    help="Spread the run over GitHub Actions jobs: print (and write to GITHUB_OUTPUT) the jobs of each wave.",
)
@click.option(
    "--waves",
    type=int,
    default=4,
    show_default=True,
    help="With --github-matrix: the workflow's wave jobs; deeper levels run in the last wave's jobs.",
)
@click.option(
    "--runner-labels",
    default=None,
    metavar="JSON",
    help='With --github-matrix: a step\'s runs-on labels -> a job\'s runs-on, e.g. {"default": "ubuntu-latest"}.',
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
    github_matrix: bool,
    waves: int,
    runner_labels: str | None,
    as_json: bool,
) -> None:
    """Say for each step whether `ci-run` would run it or reuse a stored result, and why."""
    source = Source(file=file, params=params, settings=given_settings(cache))
    selection = Selected(only=only, from_=from_, with_upstream=with_upstream, no_reuse=no_reuse)
    if github_matrix:  # a run spread over CI jobs (issue 15)
        from mlpipe.api.fanout import MatrixOptions, plan_matrix
        from mlpipe.cli.fanout import print_plan

        options = MatrixOptions(selection=selection, waves=waves, runner_labels=runner_labels)
        print_plan(plan_matrix(source, options), as_json=as_json)
        return
    result = plan(source, PlanOptions(selection=selection, publish=publish))
    if (
        result.published
    ):  # stderr: stdout keeps the plan alone, as without --github (and --json stays parseable)
        click.echo(f"plan published: {result.published}", err=True)
    if as_json:
        click.echo(json.dumps(plan_json(result.pipeline, result.plan), indent=1))
    else:
        click.echo(plan_text(result.plan))
