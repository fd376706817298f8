"""`mlpipe diff [REV_A] [REV_B]`: which steps differ between two runs or commits, and the metrics diff."""

from __future__ import annotations

import contextlib
import json

import click

from mlpipe.cli.options import cli_settings, file_option, json_option
from mlpipe.core.compare import diff_json, diff_markdown, diff_text
from mlpipe.errors import MlpipeError
from mlpipe.release.baseline import compare_runs, default_pair, find_run
from mlpipe.run.session import load, remote_of, workspace_for


@click.command("diff")
@click.argument("rev_a", required=False)
@click.argument("rev_b", required=False)
@file_option
@click.option(
    "--cache",
    default=None,
    metavar="oci://HOST/REPO",
    help="Also look for a commit's run in this registry (default: $MLPIPE_CACHE when oci://).",
)
@click.option("--all", "all_metrics", is_flag=True, help="List unchanged metrics too.")
@click.option("--md", "as_markdown", is_flag=True, help="Print markdown, as the job summary shows it.")
@json_option
def command(
    rev_a: str | None,
    rev_b: str | None,
    file: str | None,
    cache: str | None,
    all_metrics: bool,
    as_markdown: bool,
    as_json: bool,
) -> None:
    """Compare two runs: REV_A (the base) and REV_B are run ids, `latest`, or git revisions (the latest clean
    run of that commit, here or in the registry). Default: the run before the latest against the latest."""
    settings = cli_settings(cache)
    workspace = workspace_for(file, settings)
    registry = remote_of(settings)
    if rev_a is None:
        base, head = default_pair(workspace)
    else:
        base = find_run(workspace, rev_a, registry=registry)
        head = find_run(workspace, rev_b or "latest", registry=registry)
    pipeline = None
    with contextlib.suppress(MlpipeError):  # directions only colour the table: a broken file still diffs
        pipeline = load(file)
    diff = compare_runs(workspace, base, head, pipeline=pipeline)
    if as_json:
        click.echo(json.dumps(diff_json(diff), indent=1))
    elif as_markdown:
        click.echo(diff_markdown(diff), nl=False)
    else:
        click.echo(diff_text(diff, all_metrics=all_metrics))
