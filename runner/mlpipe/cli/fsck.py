"""`mlpipe fsck [--cache DIR]`: check a local store is whole, one line per problem (like `git fsck`)."""

from __future__ import annotations

from pathlib import Path

import click

from mlpipe.cli.options import cli_settings, file_option
from mlpipe.errors import MlpipeError, UsageError


class StoreNotWhole(MlpipeError):
    exit_code = 1


@click.command("fsck")
@file_option
@click.option(
    "--cache",
    default=None,
    metavar="DIR",
    help="The store to check (default: $MLPIPE_CACHE, else the workspace's .mlpipe/cache).",
)
def command(file: str | None, cache: str | None) -> None:
    """Check that every object hashes to its name, every result's objects are stored, and no temp file is left.

    Exits 0 when the store is whole, 1 with one line per problem otherwise."""
    from mlpipe.cache.fsck import check_store
    from mlpipe.run.locks import store_idle

    root = _store_root(file, cache)
    if not root.is_dir():
        raise UsageError(f"no store at {root}; give --cache DIR, or run where a workspace's store is")
    with store_idle(root) as idle:
        report = check_store(root, idle=idle)
    for line in report.problems:
        click.echo(line)
    for line in report.warnings:
        click.echo(f"warning: {line}")
    if not idle:
        click.echo(f"note: a run uses the store {root}: its temp files were not counted as strays")
    counts = f"{report.objects} objects, {report.results} results"
    if not report.whole:
        raise StoreNotWhole(f"store {root} is not whole: {len(report.problems)} problems ({counts})")
    click.echo(f"store is whole: {counts}")


def _store_root(file: str | None, cache: str | None) -> Path:
    from mlpipe.run.session import workspace_for

    if cache and "://" not in cache:
        return Path(cache).expanduser().resolve()
    return workspace_for(
        file, cli_settings()
    ).cache  # with --cache oci://...: the store in front of the registry
