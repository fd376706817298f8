"""`mlpipe ci-run`: what CI runs, and what users run to do what CI does."""

from __future__ import annotations

import json
import os
import sys
from typing import IO, TYPE_CHECKING

import click

from mlpipe.cli.options import given_settings, json_option, pipeline_options, remote_of, selection_options
from mlpipe.core.compare import RunDiff, diff_text
from mlpipe.errors import CacheError, PipelineFailed, UsageError
from mlpipe.inputs.base import RegistryAccess
from mlpipe.ownvars import step_environment
from mlpipe.release.baseline import Baseline, baseline_for, compare_runs
from mlpipe.release.manifest import build_manifest, push_release, release_tag, require_clean, save_local
from mlpipe.report.logs import failure_tails
from mlpipe.report.terminal import choose_reporter
from mlpipe.report.text import run_summary
from mlpipe.report.traffic import traffic_display
from mlpipe.run.leftovers import start_run
from mlpipe.run.locks import lock_timeout
from mlpipe.run.prepare import Selected, prepare
from mlpipe.run.runner import Runner, RunOptions
from mlpipe.run.session import Session, open_session
from mlpipe.runs import RunRecord, new_run_id

if TYPE_CHECKING:
    from mlpipe.cache.tiered import RemoteSettings


@click.command("ci-run")
@pipeline_options
@selection_options
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Steps run at once (default: $MLPIPE_JOBS, else the config files, else cores).",
)
@click.option("--fail-fast", is_flag=True, help="Stop every running step when one fails.")
@click.option(
    "--snapshot-max-file-size",
    type=click.IntRange(min=0),
    default=100 * 2**20,
    envvar="MLPIPE_SNAPSHOT_MAX_FILE_SIZE",
    show_default=True,
    metavar="BYTES",
    help="Files above this size are left out of a dirty run's code commit (listed as not recoverable).",
)
@click.option(
    "--publish-checks/--no-publish-checks",
    default=True,
    envvar="MLPIPE_PUBLISH_CHECKS",
    help="In GitHub Actions, publish a check run with annotations (else only log annotations and the job summary).",
)
@click.option(
    "--since",
    default=None,
    metavar="REF",
    help="Compare with the latest run of REF's commit (here, or in the registry): steps that differ and metrics.",
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
    jobs: int | None,
    fail_fast: bool,
    snapshot_max_file_size: int,
    publish_checks: bool,
    since: str | None,
    as_json: bool,
) -> None:
    """Plan, run or reuse every selected step, record the run, and print a summary.

    Exits 0 only when every selected step ran or was reused successfully.
    """
    session = open_session(file, params, given_settings(cache))
    run_id = new_run_id()
    say = lambda text: click.echo(f"mlpipe: {text}", err=True)
    locks = start_run(
        session.workspace, session.pipeline, run_id, timeout_s=lock_timeout(session.settings.environ), say=say
    )
    click.get_current_context().call_on_close(locks.release)
    # Found before any compute: a --since REF without a run is an error, not a surprise at the end.
    baseline = baseline_for(
        session.workspace, since=since, environ=session.settings.environ, registry=remote_of(session.settings)
    )
    # With --json, stdout carries only the record; progress goes to stderr.
    stream = sys.stderr if as_json else sys.stdout
    selected = Selected(only=only, from_=from_, with_upstream=with_upstream, no_reuse=no_reuse)
    with traffic_display(stream):  # planning fetches the results a registry has
        prepared = prepare(
            session.pipeline, session.workspace, session.store, selected, hasher=session.hasher
        )
    tag = release_tag(session.settings.environ)
    if tag is not None:  # before any compute: a release is the tagged commit and nothing else
        require_clean(tag, prepared.git)
    missing = prepared.plan.missing()
    if missing:
        names = ", ".join(missing)
        raise UsageError(
            f"upstream step(s) {names} have no stored result for the current code, params and inputs; "
            "run them first, or add --with-upstream"
        )
    grace = session.settings.kill_grace_s
    options = RunOptions(
        jobs=jobs or session.settings.jobs or os.cpu_count() or 1,
        fail_fast=fail_fast,
        kill_grace_s=grace,
        max_recoverable_file=snapshot_max_file_size,
        step_environment=step_environment(session.settings.environ),
        registry_access=RegistryAccess(
            insecure=session.settings.insecure_registry, environ=session.settings.environ
        ),
    )
    reporter = choose_reporter(stream)
    if (
        session.settings.environ.get("GITHUB_ACTIONS") == "true"
    ):  # check run, annotations, job summary, step outputs
        from mlpipe.github.checks import with_github

        reporter = with_github(
            reporter,
            prepared,
            publish_checks=publish_checks,
            stream=stream,
            compare=(lambda done: _compare(session, baseline, done)) if baseline else None,
        )
    record = Runner(prepared.work(), prepared.site(), reporter, options, run_id=run_id).run()
    if as_json:
        click.echo(json.dumps(record.to_json(), indent=1, sort_keys=True))
    else:
        click.echo(run_summary(record, failure_tails(record, session.workspace.root)))
        compared, note = _compare(session, baseline, record) if baseline else (None, "")
        if compared is not None:
            click.echo("\n" + diff_text(compared))
        elif note:
            click.echo(f"\nno comparison with the base: {note}")
    if tag is not None and record.status == "succeeded":
        _release(session, tag, record, remote_of(session.settings), stream)
    if record.status == "cancelled":
        raise PipelineFailed(f"run {record.run_id} was cancelled", exit_code=130)
    if record.status != "succeeded":
        failed = [n for n, s in record.steps.items() if s.status not in {"ran", "reused"}]
        raise PipelineFailed(f"run {record.run_id} failed: {', '.join(failed)} did not succeed")


def _say(text: str) -> None:
    click.echo(f"mlpipe: {text}", err=True)


def _compare(session: Session, baseline: Baseline, record: RunRecord) -> tuple[RunDiff | None, str]:
    if baseline.record is None:
        return None, baseline.note
    return compare_runs(session.workspace, baseline.record, record, pipeline=session.pipeline), ""


def _release(
    session: Session, tag: str, record: RunRecord, registry: RemoteSettings | None, stream: IO[str]
) -> None:
    manifest = build_manifest(tag, record)
    path = save_local(session.workspace, manifest)
    try:
        where = push_release(registry, session.workspace, manifest) if registry else "no registry given"
    except CacheError as error:  # a release whose manifest is not where `verify` looks for it is not done
        raise CacheError(
            f"release {tag}: the manifest is saved at {path} but was not pushed: {error}"
        ) from None
    stream.write(f"mlpipe: release manifest for {tag}: {path} ({where})\n")
