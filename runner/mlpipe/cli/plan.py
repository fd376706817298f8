"""`mlpipe plan`: run or reuse for each step, and why, without running anything."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping

import click

from mlpipe.cli.options import given_settings, json_option, pipeline_options, remote_of, selection_options
from mlpipe.core.plan import Plan
from mlpipe.errors import UsageError
from mlpipe.release.baseline import baseline_for
from mlpipe.report.text import plan_json, plan_text
from mlpipe.run.prepare import Selected, prepare
from mlpipe.run.session import open_session
from mlpipe.runs import RunRecord


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
    session = open_session(file, params, given_settings(cache))
    selection = Selected(only=only, from_=from_, with_upstream=with_upstream, no_reuse=no_reuse)
    if github_matrix:
        from mlpipe.cli.fanout import plan_matrix

        plan_matrix(session, selection, waves=waves, runner_labels=runner_labels, as_json=as_json)
        return
    prepared = prepare(
        session.pipeline,
        session.workspace,
        session.store,
        selection,
        hasher=session.hasher,
        build=False,  # plans are cheap and change nothing: a step whose image must be built says so
    )
    if publish:
        base = baseline_for(
            session.workspace,
            since=None,
            environ=session.settings.environ,
            registry=remote_of(session.settings),
        )
        _publish(
            session.pipeline.name,
            prepared.plan,
            commit=prepared.git.commit or "",
            base=base.record if base is not None else None,
            environ=session.settings.environ,
        )
    if as_json:
        click.echo(json.dumps(plan_json(session.pipeline.name, prepared.plan), indent=1))
    else:
        click.echo(plan_text(prepared.plan))


def _publish(
    pipeline: str, plan: Plan, *, commit: str, base: RunRecord | None, environ: Mapping[str, str]
) -> None:
    from mlpipe.github import summary as md
    from mlpipe.github.checks import publish_plan
    from mlpipe.github.context import from_env

    ctx = from_env(environ)
    if ctx is None:
        raise UsageError(
            "--github publishes to GitHub Actions: run it in a workflow job (GITHUB_ACTIONS=true)"
        )
    markdown = md.render_plan(pipeline, plan, commit=ctx.sha or commit, run_url=ctx.run_url, base=base)
    # stderr: stdout keeps the plan alone, as without --github (and --json stays parseable).
    url = publish_plan(
        ctx,
        name=f"mlpipe plan / {pipeline}",
        title=md.plan_title(pipeline, plan),
        markdown=markdown,
        stream=sys.stderr,
    )
    if url:
        click.echo(f"plan published: {url}", err=True)
