"""`plan()`: run or reuse for each step, and why, without running anything; optionally published to GitHub."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import field
from typing import IO

from mlpipe.api.source import Selected, Source, find_baseline, open_source, prepare_steps
from mlpipe.core.plan import Plan
from mlpipe.errors import UsageError
from mlpipe.frozen import frozen
from mlpipe.report.traffic import traffic_display
from mlpipe.run.session import remote_of


@frozen(kw_only=True, eq=False, repr=False)
class PlanOptions:
    """Which steps `plan` looks at, and whether it publishes the plan."""

    selection: Selected = field(default_factory=Selected)
    publish: bool = False
    """In GitHub Actions, publish the plan as a check run and in the job summary."""


@frozen(kw_only=True, eq=False, repr=False)
class PlanResult:
    """A plan, with its pipeline's name and where it was published."""

    pipeline: str
    plan: Plan
    published: str = ""
    """The check run's URL, when the plan was published as one."""


def plan(source: Source, options: PlanOptions, *, stream: IO[str] | None = None) -> PlanResult:
    """`stream` (default stderr) hears GitHub's workflow commands when the plan is published."""
    session = open_source(source)
    registry = remote_of(session.settings)
    # On a pull request, reasons name what changed since the base commit's run, as ci-run's do.
    base = find_baseline(session, since=None, registry=registry)
    # Plans are cheap and change nothing: a step whose image must be built says so.
    with traffic_display(
        session.settings.environ, sys.stderr
    ):  # looking results up in a registry fetches them: a meter on a terminal
        prepared = prepare_steps(
            session,
            options.selection,
            build=False,
            base=base.record if base is not None else None,
            registry=registry,
        )
    url = ""
    if options.publish:
        url = _publish(
            session.pipeline.name,
            prepared.plan,
            commit=prepared.git.commit or "",
            environ=session.settings.environ,
            stream=stream or sys.stderr,
        )
    return PlanResult(pipeline=session.pipeline.name, plan=prepared.plan, published=url)


def _publish(
    pipeline: str,
    plan: Plan,
    *,
    commit: str,
    environ: Mapping[str, str],
    stream: IO[str],
) -> str:
    from mlpipe.github import summary as md
    from mlpipe.github.checks import publish_plan
    from mlpipe.github.context import from_env

    ctx = from_env(environ)
    if ctx is None:
        raise UsageError(
            "--github publishes to GitHub Actions: run it in a workflow job (GITHUB_ACTIONS=true)"
        )
    markdown = md.render_plan(pipeline, plan, commit=ctx.sha or commit, run_url=ctx.run_url)
    return publish_plan(
        ctx,
        name=f"mlpipe plan / {pipeline}",
        title=md.plan_title(pipeline, plan),
        markdown=markdown,
        stream=stream,
    )
