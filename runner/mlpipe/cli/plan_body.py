"""What `mlpipe plan` does once its command line is parsed (by click, or by `mlpipe.cli.plain` for a plain
`mlpipe plan`): plan and print. No click here."""

from __future__ import annotations

import json

from mlpipe.api.plan import PlanOptions, plan
from mlpipe.api.source import Selected, Source
from mlpipe.cli.echo import echo
from mlpipe.report.text import plan_json, plan_text


def run_plan(
    source: Source,
    selection: Selected,
    *,
    publish: bool = False,
    github_matrix: bool = False,
    waves: int = 4,
    runner_labels: str | None = None,
    as_json: bool = False,
) -> None:
    """Say for each step whether `ci-run` would run it or reuse a stored result, and why."""
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
        echo(f"plan published: {result.published}", err=True)
    if as_json:
        echo(json.dumps(plan_json(result.pipeline, result.plan), indent=1))
    else:
        echo(plan_text(result.plan))
