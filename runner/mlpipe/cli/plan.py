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
    session = open_session(file, params, given_settings(cache))
    registry = remote_of(session.settings)
    # On a pull request, reasons name what changed since the base commit's run, as ci-run's do.
    base = baseline_for(session.workspace, since=None, environ=session.settings.environ, registry=registry)
    prepared = prepare(
        session.pipeline,
        session.workspace,
        session.store,
        Selected(only=only, from_=from_, with_upstream=with_upstream, no_reuse=no_reuse),
        hasher=session.hasher,
        build=False,  # plans are cheap and change nothing: a step whose image must be built says so
        base=base.record if base is not None else None,
        registry=registry,
    )
    if publish:
        _publish(
            session.pipeline.name,
            prepared.plan,
            commit=prepared.git.commit or "",
            environ=session.settings.environ,
        )
    if as_json:
        click.echo(json.dumps(plan_json(session.pipeline.name, prepared.plan), indent=1))
    else:
        click.echo(plan_text(prepared.plan))


def _publish(pipeline: str, plan: Plan, *, commit: str, environ: Mapping[str, str]) -> None:
    from mlpipe.github import summary as md
    from mlpipe.github.checks import publish_plan
    from mlpipe.github.context import from_env

    ctx = from_env(environ)
    if ctx is None:
        raise UsageError(
            "--github publishes to GitHub Actions: run it in a workflow job (GITHUB_ACTIONS=true)"
        )
    markdown = md.render_plan(pipeline, plan, commit=ctx.sha or commit, run_url=ctx.run_url)
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
