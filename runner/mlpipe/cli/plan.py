"""`mlpipe plan`: run or reuse for each step, and why, without running anything. Parsing and printing only:
the plan is `mlpipe.api.plan`'s."""

from __future__ import annotations

import click

from mlpipe.api.source import Selected, Source
from mlpipe.cli.options import given_settings, json_option, pipeline_options, selection_options
from mlpipe.cli.plan_body import run_plan


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
    run_plan(
        Source(file=file, params=params, settings=given_settings(cache)),
        Selected(only=only, from_=from_, with_upstream=with_upstream, no_reuse=no_reuse),
        publish=publish,
        github_matrix=github_matrix,
        waves=waves,
        runner_labels=runner_labels,
        as_json=as_json,
    )
