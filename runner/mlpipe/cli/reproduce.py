"""`mlpipe reproduce TAG_OR_RUN`: rerun a release or a run from scratch in a temporary worktree; compare digests."""

from __future__ import annotations

import json

import click

from mlpipe.cli.options import cli_settings, file_option, json_option
from mlpipe.release.reproduce import NotReproduced, load_target, reproduce
from mlpipe.run.session import remote_of, workspace_for
from mlpipe.text import table


@click.command("reproduce")
@click.argument("target", metavar="TAG_OR_RUN")
@file_option
@click.option(
    "--cache",
    default=None,
    metavar="oci://HOST/REPO",
    help="Where to find a release manifest that is not here (default: $MLPIPE_CACHE when oci://).",
)
@json_option
def command(target: str, file: str | None, cache: str | None, as_json: bool) -> None:
    """Check out the code TAG_OR_RUN ran on into a temporary worktree, run every step again without reuse (into
    a temporary store), and compare each output's digest with the recorded one.

    Exits 0 when every output is reproduced, 1 when one differs (its step is nondeterministic), 2 when it
    could not be checked."""
    settings = cli_settings(cache)
    workspace = workspace_for(file, settings)
    manifest = load_target(workspace, target, registry=remote_of(settings))
    result = reproduce(workspace, manifest)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=1))
    else:
        rows = [[c.step, c.output, c.outcome, c.expected[:19], (c.got or "-")[:19]] for c in result.checks]
        head = f"reproducing {result.name}: run {result.run_id} at {result.code[:40]}"
        click.echo(head + "\n" + table(["step", "output", "result", "recorded", "reproduced"], rows))
        if not result.nondeterministic:
            click.echo(f"reproduced: all {len(result.checks)} output(s) match")
    if result.nondeterministic:
        raise NotReproduced(result.name, result.nondeterministic)
