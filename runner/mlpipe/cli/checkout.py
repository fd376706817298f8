"""`mlpipe checkout RUN`: the exact code a run ran on, as a ref in this clone or a worktree."""

from __future__ import annotations

from pathlib import Path

import click

from mlpipe.cli.options import cli_settings, file_option
from mlpipe.release.checkout import add_worktree, find_run_code
from mlpipe.run.session import remote_of, workspace_for


@click.command("checkout")
@click.argument("run", metavar="RUN")
@file_option
@click.option(
    "--to",
    "dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Check the code out into this new directory (a git worktree); without it, only fetch the ref.",
)
@click.option(
    "--cache",
    default=None,
    metavar="oci://HOST/REPO",
    help="Where to find a run this clone does not have (default: $MLPIPE_CACHE when oci://).",
)
def command(run: str, file: str | None, dest: Path | None, cache: str | None) -> None:
    """Bring back the code RUN (a run id or unique prefix) ran on: its commit, or for a run on uncommitted
    changes its snapshot ref, fetched from the registry when the run was pushed with --allow-dirty-push."""
    settings = cli_settings(cache)
    workspace = workspace_for(file, settings)
    found = find_run_code(workspace, run, registry=remote_of(settings))
    click.echo(f"run {found.run_id} ran on {found.code} (from {found.source})")
    for missing in found.unrecoverable:
        why = missing.get("reason") or "over the size limit"
        digest = f" sha256 {missing['sha256']}" if missing.get("sha256") else ""
        click.echo(f"  not in the snapshot ({why}): {missing.get('path')}{digest}")
    if dest is None:
        click.echo(
            f"check it out with: mlpipe checkout {found.run_id} --to DIR   (or git worktree add DIR {found.code})"
        )
        return
    add_worktree(workspace, found.code, dest)
    click.echo(f"checked out into {dest}")
