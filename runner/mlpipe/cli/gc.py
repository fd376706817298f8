"""`mlpipe gc --keep-days N | --keep-last N [--dry-run]`: drop old entries locally and in a registry."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from mlpipe.cache.gc import GcReport, Keep, gc_local
from mlpipe.cli.options import cli_settings, file_option, json_option
from mlpipe.errors import MlpipeError, UsageError
from mlpipe.run.session import remote_of
from mlpipe.runs import RunHistory

if TYPE_CHECKING:
    from mlpipe.paths import Workspace
    from mlpipe.spec.model import Pipeline
from mlpipe.run.session import workspace_for


@click.command("gc")
@file_option
@click.option(
    "--keep-days",
    type=click.FloatRange(min=0),
    default=None,
    metavar="N",
    help="Keep runs of the last N days.",
)
@click.option(
    "--keep-last", type=click.IntRange(min=0), default=None, metavar="N", help="Keep the newest N runs."
)
@click.option("--dry-run", is_flag=True, help="Say what would go; remove nothing.")
@click.option(
    "--cache",
    default=None,
    metavar="DIR|oci://HOST/REPO",
    help="The store to clean; with oci:// the local store and that registry repository.",
)
@json_option
def command(
    file: str | None,
    keep_days: float | None,
    keep_last: int | None,
    dry_run: bool,
    cache: str | None,
    as_json: bool,
) -> None:
    """Remove cache entries no kept run points to, from the local store and from a registry."""
    if (keep_days is None) == (keep_last is None):
        raise UsageError("give exactly one of --keep-days N and --keep-last N")
    keep = Keep(last=keep_last, days=keep_days)
    settings = cli_settings(cache)
    workspace = workspace_for(file, settings)
    root = workspace.root
    reports = {"local": _gc_local(file, workspace, keep, dry_run=dry_run, timeout_s=settings.lock_timeout_s)}
    records = list(RunHistory(workspace.runs).records())  # as they are now that no run is going on
    remote = remote_of(settings)
    if remote is not None:
        from mlpipe.run.stores import registry_gc

        reports["registry"] = registry_gc(remote, workspace.cache, root, records, keep, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps({name: r.to_json() for name, r in reports.items()}, indent=1))
        return
    for name, report in reports.items():
        click.echo(_line(name, report))


def _gc_local(
    file: str | None, workspace: Workspace, keep: Keep, *, dry_run: bool, timeout_s: float
) -> GcReport:
    """Without --dry-run, gc holds the store alone (waiting for the runs that use it) and clears leftovers.

    The run records are read once it holds the store: a run that was going on has recorded what it used.
    """
    from mlpipe.run.leftovers import clear_store_tmp, clear_workspace
    from mlpipe.run.locks import store_exclusive
    from mlpipe.run.session import local_store

    store = local_store(workspace)
    history = RunHistory(workspace.runs)
    if dry_run:
        return gc_local(store, list(history.records()), keep, dry_run=True)
    say = lambda text: click.echo(f"mlpipe: {text}", err=True)
    with store_exclusive(workspace.cache, timeout_s=timeout_s, say=say):
        clear_store_tmp(workspace.cache)
        report = gc_local(store, list(history.records()), keep, dry_run=False)
    clear_workspace(workspace, _pipeline_or_none(file))
    return report


def _pipeline_or_none(file: str | None) -> Pipeline | None:
    """The pipeline, to find its outputs' checkout temps; gc works on a broken file too (without them)."""
    from mlpipe.run.session import load

    try:
        return load(file)
    except MlpipeError:
        return None


def _line(name: str, report: GcReport) -> str:
    verb = "would remove" if report.dry_run else "removed"
    tags = f", {len(report.removed_tags)} manifests" if name == "registry" else ""
    objects = f", {report.removed_objects} objects ({report.freed_bytes} bytes)" if name == "local" else ""
    return (
        f"{name}: {verb} {len(report.removed_entries)} entries{objects}{tags}; "
        f"kept {report.kept_entries} entries of {report.kept_runs} kept runs"
    )
