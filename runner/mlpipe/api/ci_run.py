"""`ci_run()`: plan, run or reuse every selected step, record the run, compare it with its base, publish a
release; the result says whether the run failed (the exit policy), and the caller prints it."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from mlpipe.api.source import Selected, Source, find_baseline, open_source, prepare_steps
from mlpipe.errors import CacheError, MlpipeError, PipelineFailed, UsageError
from mlpipe.events import Relay, Sink, message, to_stderr
from mlpipe.frozen import frozen
from mlpipe.inputs.base import RegistryAccess
from mlpipe.ownvars import step_environment
from mlpipe.report.events import Reporter
from mlpipe.report.terminal import choose_reporter
from mlpipe.report.traffic import traffic_display
from mlpipe.run.leftovers import start_run
from mlpipe.run.prepare import Prepared
from mlpipe.run.runner import Runner, RunOptions
from mlpipe.run.runners import runner_labels
from mlpipe.run.session import Session, remote_of
from mlpipe.runs import RunRecord, new_run_id

if TYPE_CHECKING:  # the comparison's, release's and GitHub's modules load only where they are used
    from mlpipe.core.compare import RunDiff
    from mlpipe.github.context import GitHubContext
    from mlpipe.release.baseline import Baseline

DEFAULT_MAX_RECOVERABLE_FILE = 100 * 2**20


@frozen(kw_only=True, eq=False, repr=False)
class CiRunOptions:
    """How `ci_run` runs: which steps, how many at once, what it publishes."""

    selection: Selected = field(default_factory=Selected)
    jobs: int | None = None
    """Steps run at once (None: the settings' `jobs`, else the cores)."""
    fail_fast: bool = False
    """Stop every running step when one fails."""
    snapshot_max_file_size: int = DEFAULT_MAX_RECOVERABLE_FILE
    """Files above this size are left out of a dirty run's code commit (listed as not recoverable)."""
    publish_checks: bool = True
    """In GitHub Actions, publish a check run with annotations (else only log annotations and the job summary)."""
    since: str | None = None
    """Compare with the latest run of this revision's commit (a missing run is an error, found before compute)."""
    run_id: str | None = None
    """The run's id (None: a new one); a fan-out run's jobs all run under the fan-out run's id."""


@frozen(kw_only=True, eq=False, repr=False)
class Released:
    """A release run's manifest: where it was saved, and where it was pushed (or why not)."""

    tag: str
    path: Path
    where: str


@frozen(kw_only=True, eq=False, repr=False)
class RunResult:
    """A finished run: its record, the comparison with a base run, a release."""

    record: RunRecord
    comparison: RunDiff | None = None
    """The run compared with its base (`since`, or a pull request's base commit), when a base run was found."""
    comparison_note: str = ""
    """Why there is no comparison with a base that was looked for."""
    released: Released | None = None
    failure: MlpipeError | None = None
    """Why the run did not succeed, with its exit code: a step that did not succeed, a cancelled run, or a
    release that was not pushed. None: every selected step ran or was reused, exit 0."""


def ci_run(
    source: Source,
    options: CiRunOptions,
    *,
    stream: IO[str] | None = None,
    reporter: Reporter | None = None,
    notices: Sink = to_stderr,
) -> RunResult:
    """`stream` (default stdout) hears the run's progress and GitHub's workflow commands; `reporter` is the
    console's (default: chosen for `stream`). What the run's parts say on the side (the store's warnings and
    transfers, locks waited for, images built) goes to `notices` until the run starts, and from then on to the
    run's reporters (`Reporter.notice`: the console, and in GitHub Actions annotations). Errors found before
    any compute (the pipeline, the selection, a dirty release, a `since` without a run) raise; the run's own
    outcome is in the result."""
    stream = stream or sys.stdout
    relay = Relay(notices)
    session = open_source(source, sink=relay)
    run_id = options.run_id or new_run_id()
    locks = start_run(
        session.workspace,
        session.pipeline,
        run_id,
        timeout_s=session.settings.lock_timeout_s,
        say=lambda text: relay(message(text)),
    )
    try:
        console = reporter or choose_reporter(stream, session.settings.environ)
        return _run(session, options, run_id, stream, console, relay)
    finally:
        locks.release()


def _run(
    session: Session, options: CiRunOptions, run_id: str, stream: IO[str], console: Reporter, relay: Relay
) -> RunResult:
    # Found before any compute: a `since` REF without a run is an error, not a surprise at the end.
    registry = remote_of(session.settings)
    baseline = find_baseline(session, since=options.since, registry=registry)
    with traffic_display(
        session.settings.environ, stream
    ):  # planning fetches the results a registry has: a meter on a terminal
        prepared = prepare_steps(
            session,
            options.selection,
            sink=relay,
            base=baseline.record if baseline else None,  # reasons name what changed since the base's run
            registry=registry,
            ahead=True,  # the Runner looks each result up again before it uses it
        )
    tag = _release_tag(session.settings.environ)
    if tag is not None:  # before any compute: a release is the tagged commit and nothing else
        from mlpipe.release.manifest import require_clean

        require_clean(tag, prepared.git)
    missing = prepared.plan.missing()
    if missing:
        raise UsageError(
            f"upstream step(s) {', '.join(missing)} have no stored result for the current code, params and inputs; "
            "run them first, or add --with-upstream"
        )
    compare = _Comparison(session, baseline)
    reporter = _with_github(session, prepared, console, options, stream, compare)
    relay.attach(reporter.notice)
    record = Runner(
        prepared.work(), prepared.site(), reporter, run_options(session, options, relay), run_id=run_id
    ).run()
    comparison, note = compare(record) if baseline is not None else (None, "")
    released = None
    failure: MlpipeError | None = _failure(record)
    if tag is not None and failure is None:
        try:
            released = _release(session, tag, record, relay)
        except CacheError as error:
            failure = error
    return RunResult(
        record=record, comparison=comparison, comparison_note=note, released=released, failure=failure
    )


def run_options(session: Session, options: CiRunOptions, sink: Sink = to_stderr) -> RunOptions:
    """How a runner runs the steps, from the command's settings; `sink` hears `oci://` inputs' registries."""
    settings = session.settings
    github = _github(settings.environ)
    return RunOptions(
        jobs=options.jobs or settings.jobs or os.cpu_count() or 1,
        fail_fast=options.fail_fast,
        kill_grace_s=settings.kill_grace_s,
        max_recoverable_file=options.snapshot_max_file_size,
        step_environment=step_environment(settings.environ),
        labels=runner_labels(settings.environ),
        registry_access=RegistryAccess(plain_http=settings.plain_http, environ=settings.environ, sink=sink),
        run_url=github.run_url if github is not None else "",
    )


def _with_github(
    session: Session,
    prepared: Prepared,
    console: Reporter,
    options: CiRunOptions,
    stream: IO[str],
    compare: _Comparison,
) -> Reporter:
    """In GitHub Actions: the console plus the check run, annotations, job summary and step outputs."""
    if session.settings.environ.get("GITHUB_ACTIONS") != "true":
        return console
    from mlpipe.github.checks import with_github

    return with_github(
        console,
        prepared,
        publish_checks=options.publish_checks,
        stream=stream,
        environ=session.settings.environ,
        throttle_s=session.settings.github_throttle_s,
        compare=compare if compare.baseline is not None else None,
        history=_branch_history(session, prepared.git.branch),
    )


def _branch_history(
    session: Session, checked_out: str | None
) -> Callable[[], tuple[str, list[RunRecord]]] | None:
    """The branch a CI run's metrics are charted against and a reader of its latest runs: on a pull request its
    base branch's, here and in the registry (a fresh clone has none of its own); else the branch's own, here only
    (a run that reuses everything from the local store makes no registry request)."""
    github = _github(session.settings.environ)
    if github is None:
        return None
    pushed = github.ref.removeprefix("refs/heads/") if github.ref.startswith("refs/heads/") else None
    branch = github.base_ref or checked_out or pushed
    if not branch:
        return None
    registry = remote_of(session.settings) if github.base_ref else None
    from mlpipe.github.history import POINTS
    from mlpipe.release.baseline import branch_runs

    return lambda: (branch, branch_runs(session.workspace, branch, limit=POINTS - 1, registry=registry))


class _Comparison:
    """The run compared with its base, made once: the check run's summary and the result share it."""

    def __init__(self, session: Session, baseline: Baseline | None) -> None:
        self.session = session
        self.baseline = baseline
        self._made: dict[str, tuple[RunDiff | None, str]] = {}

    def __call__(self, record: RunRecord) -> tuple[RunDiff | None, str]:
        if self.baseline is None:
            return None, ""
        if record.run_id not in self._made:
            self._made[record.run_id] = self._compare(self.baseline, record)
        return self._made[record.run_id]

    def _compare(self, baseline: Baseline, record: RunRecord) -> tuple[RunDiff | None, str]:
        if baseline.record is None:
            return None, baseline.note
        from mlpipe.release.baseline import compare_runs

        diff = compare_runs(self.session.workspace, baseline.record, record, pipeline=self.session.pipeline)
        return diff, ""


def _github(environ: Mapping[str, str]) -> GitHubContext | None:
    """The GitHub Actions job's context (`github.context.from_env`); outside a job None, without loading it."""
    if environ.get("GITHUB_ACTIONS") != "true":
        return None
    from mlpipe.github.context import from_env

    return from_env(environ)


def _release_tag(environ: Mapping[str, str]) -> str | None:
    """The tag a GitHub Actions job runs for (`release.manifest.release_tag`); outside a job None, without
    loading the release's modules."""
    if environ.get("GITHUB_ACTIONS") != "true":
        return None
    from mlpipe.release.manifest import release_tag

    return release_tag(environ)


def _failure(record: RunRecord) -> PipelineFailed | None:
    """The exit policy: a cancelled run exits 130, any step that neither ran nor was reused fails the run."""
    if record.status == "cancelled":
        return PipelineFailed(f"run {record.run_id} was cancelled", exit_code=130)
    if record.status != "succeeded":
        failed = [n for n, s in record.steps.items() if s.status not in {"ran", "reused"}]
        return PipelineFailed(f"run {record.run_id} failed: {', '.join(failed)} did not succeed")
    return None


def _release(session: Session, tag: str, record: RunRecord, sink: Sink) -> Released:
    """Save the release manifest and push it; a release whose manifest is not where `verify` looks is not done."""
    from mlpipe.release.manifest import build_manifest, push_release, save_local

    manifest = build_manifest(tag, record)
    path = save_local(session.workspace, manifest)
    registry = remote_of(session.settings)
    try:
        where = push_release(registry, session.workspace, manifest, sink) if registry else "no registry given"
    except CacheError as error:
        raise CacheError(
            f"release {tag}: the manifest is saved at {path} but was not pushed: {error}"
        ) from None
    return Released(tag=tag, path=path, where=where)
