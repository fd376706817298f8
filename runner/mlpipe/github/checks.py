"""One check run per pipeline run, kept current as steps finish; a Reporter that composes with the console.

The check run goes on the commit the run is about (the PR head on pull requests), is created `in_progress`
with the plan, updated at most every `throttle_s` seconds as steps finish, and completed with the summary and
every annotation, 50 per request. When the token may not write checks (fork PRs, read-only tokens: 403) the
annotations become workflow commands and the summary still reaches the job summary. Nothing here may fail
the pipeline or hide its result: every problem is one warning line, then the fallback.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from mlpipe.core.compare import RunDiff
from mlpipe.core.plan import Plan
from mlpipe.errors import present
from mlpipe.events import Notice
from mlpipe.github import summary as md
from mlpipe.github.annotations import Annotation, Layout, StepSource, batches, collect
from mlpipe.github.client import GitHubAPI, GitHubAPIError
from mlpipe.github.context import GitHubContext, from_env
from mlpipe.github.history import trend_charts
from mlpipe.github.workflow import append_job_summary, mask, write_outputs
from mlpipe.report.events import Reporter, Reporters
from mlpipe.runs import RunRecord, StepRecord

if TYPE_CHECKING:
    from mlpipe.git.provenance import GitInfo
    from mlpipe.git.snapshot import Snapshot
    from mlpipe.spec.model import Pipeline

COMMANDS_PER_LEVEL = 10
"""GitHub Actions shows at most 10 error and 10 warning annotations per step from workflow commands."""
LOG_TAIL_BYTES = 256 * 1024
WARNINGS_ANNOTATED = COMMANDS_PER_LEVEL
"""The backends' warnings (a registry given up, an entry refused) that become annotations; the rest are in the
log only."""


class CheckRun:
    """The Checks API calls for one check run."""

    def __init__(self, api: GitHubAPI, repository: str) -> None:
        self.api = api
        self.base = f"/repos/{repository}/check-runs"
        self.id: int | None = None
        self.url = ""

    def create(self, body: dict[str, Any]) -> None:
        data = self.api.request("POST", self.base, body)
        self.id = int(data["id"])
        self.url = str(data.get("html_url") or "")

    def update(self, body: dict[str, Any]) -> None:
        self.api.request("PATCH", f"{self.base}/{self.id}", body)


class GitHubReporter:
    """Forwards a run's events to a check run, and writes the job summary and step outputs at the end."""

    def __init__(
        self,
        ctx: GitHubContext,
        layout: Layout,
        upstream: Mapping[str, Sequence[str]],
        *,
        api: GitHubAPI | None,
        stream: IO[str] | None = None,
        throttle_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ctx = ctx
        self.layout = layout
        self.upstream = upstream
        self.stream = stream or sys.stdout
        self.throttle_s = throttle_s
        self.clock = clock
        self.check = CheckRun(api, ctx.repository) if api is not None else None
        self.fallback_reason = "" if api is not None else "check runs not published"
        self.plan: Plan | None = None
        self.record: RunRecord | None = None
        self._last_update = 0.0
        self._stale = False
        self.compare: Callable[[RunRecord], tuple[RunDiff | None, str]] | None = None
        """Set on pull requests: the finished run against the base branch's run, or why there is none."""
        self.compared: RunDiff | None = None
        self.compared_note = ""
        self.history: Callable[[], tuple[str, Sequence[RunRecord]]] | None = None
        """The branch this run is measured against (a PR's base, else its own) and its latest runs, newest first;
        read when the run ends, for the metric trends."""
        self.trends: list[str] = []
        self._warnings: list[str] = []
        """The backends' warnings heard during the run (`notice`), distinct, for annotations at the end: appended
        from any thread (the store's push threads, the steps' workers) under `_warnings_lock`."""
        self._warnings_lock = threading.Lock()

    # -- Reporter ------------------------------------------------------------------------------------------
    def run_started(self, record: RunRecord, plan: Plan) -> None:
        self.record, self.plan = record, plan
        self._guard(self._create)

    def step_started(self, name: str, step: StepRecord) -> None:
        pass

    def step_line(self, name: str, line: str) -> None:
        pass

    def step_finished(self, name: str, step: StepRecord) -> None:
        self._stale = True
        if self.check and self.check.id and self.clock() - self._last_update >= self.throttle_s:
            self._guard(self._update)

    def run_finished(self, record: RunRecord) -> None:
        self.record = record
        self._guard(self._finish)

    def message(self, text: str) -> None:
        pass

    def notice(self, notice: Notice) -> None:
        """A warning becomes an annotation on the pipeline file (in the check run, else a `::warning` line)."""
        if notice.kind != "warning":
            return
        text = self._redact(notice.text)
        with self._warnings_lock:
            if text not in self._warnings and len(self._warnings) < WARNINGS_ANNOTATED:
                self._warnings.append(text)

    def _warning_annotations(self) -> list[Annotation]:
        with self._warnings_lock:
            texts = list(self._warnings)
        return [
            Annotation(
                path=self.layout.pipeline_file, line=1, level="warning", title="mlpipe warning", message=text
            )
            for text in texts
        ]

    # -- check run -----------------------------------------------------------------------------------------
    def _create(self) -> None:
        if self.check is None or self.record is None:
            return
        record = self.record
        body: dict[str, Any] = {
            "name": f"mlpipe / {record.pipeline}",
            "head_sha": self.ctx.sha,
            "external_id": record.run_id,
            "status": "in_progress",
            "started_at": _timestamp(record.started_at),
            "output": self._output(annotations=None),
        }
        if self.ctx.run_url:
            body["details_url"] = self.ctx.run_url
        self.check.create(body)
        self._last_update = self.clock()

    def _update(self) -> None:
        present(self.check, "a check run updated before it was created").update(
            {"status": "in_progress", "output": self._output(annotations=None)}
        )
        self._last_update = self.clock()
        self._stale = False

    def _output(self, annotations: list[Annotation] | None) -> dict[str, Any]:
        record = present(self.record, "a check run's output before the run began")
        output: dict[str, Any] = {
            "title": md.title(record),
            "summary": md.truncate(self._markdown()),
        }
        if annotations:
            output["annotations"] = [a.to_api() for a in annotations]
        return output

    def _markdown(self) -> str:
        text = md.render(
            present(self.record, "a check run's summary before the run began"),
            self.plan,
            upstream=self.upstream,
            run_url=self.ctx.run_url,
            compared=self.compared,
            compared_note=self.compared_note,
        )
        return text + "".join(line + "\n" for line in self.trends)

    # -- the end -------------------------------------------------------------------------------------------
    def _finish(self) -> None:
        record = present(self.record, "a check run finished before the run began")
        found = collect(record, self.layout, self._logs(record))
        # After the run's own failures and warnings, before its notes: failures go in the first request.
        notes = [a for a in found if a.level == "notice"]
        found = [a for a in found if a.level != "notice"] + self._warning_annotations() + notes
        if self.compare is not None:
            try:
                self.compared, self.compared_note = self.compare(record)
            except Exception as error:  # noqa: BLE001 - the comparison is extra: the check run still completes
                self.compared_note = f"the comparison failed: {self._redact(str(error))}"
        if self.history is not None:
            try:
                branch, runs = self.history()
                self.trends = trend_charts(branch, runs, record)
            except Exception as error:  # noqa: BLE001 - the trends are extra: the check run still completes
                self.trends = [
                    "",
                    f"No metric trends: reading the branch's runs failed: {self._redact(str(error))}.",
                ]
        markdown = self._markdown()
        published = False
        if self.check is not None and self.check.id is not None:
            published = self._guard(lambda: self._complete(record, found))
        if not published:
            self._commands(found)
        if published and self.check is not None and self.check.url:
            markdown += f"\nCheck run: {self.check.url}\n"
        self._guard(lambda: self._write_files(record, markdown))

    def _complete(self, record: RunRecord, found: list[Annotation]) -> None:
        check = present(self.check, "a check run completed before it was created")
        groups = batches(found)
        for group in groups[:-1]:
            check.update({"status": "in_progress", "output": self._output(group)})
        check.update(
            {
                "status": "completed",
                "conclusion": md.conclusion(record),
                "completed_at": _timestamp(record.ended_at),
                "output": self._output(groups[-1]),
            }
        )

    def _commands(self, found: list[Annotation]) -> None:
        shown: dict[str, int] = {}
        for annotation in found:
            shown[annotation.level] = shown.get(annotation.level, 0) + 1
            if shown[annotation.level] <= COMMANDS_PER_LEVEL:
                self._print(annotation.to_command())
        hidden = sum(max(0, n - COMMANDS_PER_LEVEL) for n in shown.values())
        if hidden:
            self._print(
                f"mlpipe: {hidden} more annotation(s) not shown (GitHub shows {COMMANDS_PER_LEVEL} per kind)"
            )

    def _write_files(self, record: RunRecord, markdown: str) -> None:
        directory = (self.ctx.temp or Path(tempfile.gettempdir())) / "mlpipe" / record.run_id
        directory.mkdir(parents=True, exist_ok=True)
        summary_file = directory / "summary.md"
        results_file = directory / "results.json"
        summary_file.write_text(markdown, encoding="utf-8")
        results_file.write_text(
            json.dumps(record.to_json(), indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )
        if self.ctx.step_summary is not None:
            append_job_summary(self.ctx.step_summary, markdown)
        if self.ctx.output is not None:
            counts = record.counts()
            values = {
                "run-id": record.run_id,
                "status": record.status,
                **{
                    f"steps-{s}": str(counts.get(s, 0))
                    for s in ("ran", "reused", "failed", "skipped", "cancelled")
                },
                "summary-file": str(summary_file),
                "results-file": str(results_file),
                "check-run-id": str(self.check.id) if self.check and self.check.id else "",
                "check-run-url": self.check.url if self.check else "",
            }
            write_outputs(self.ctx.output, values)

    def _logs(self, record: RunRecord) -> dict[str, str]:
        logs = {}
        root = Path(self.layout.repo_root) / self.layout.workspace
        for name, step in record.steps.items():
            if step.status == "failed" and step.log:
                logs[name] = _read_tail(root / step.log)
        return logs

    # -- never fail the run --------------------------------------------------------------------------------
    def _guard(self, action: Callable[[], None]) -> bool:
        try:
            action()
            return True
        except GitHubAPIError as error:
            self._give_up(error, permission=error.forbidden)
        except Exception as error:  # noqa: BLE001 - reporting must never fail the pipeline
            self._give_up(error, permission=False)
        return False

    def _give_up(self, error: Exception, *, permission: bool) -> None:
        if self.check is None:
            self._print(f"::warning title=mlpipe::reporting to GitHub failed: {self._redact(str(error))}")
            return
        self.check = None
        if permission:
            why = "the token cannot write checks" + (" (a pull request from a fork)" if self.ctx.fork else "")
            self.fallback_reason = why
            self._print(
                f"mlpipe: {why}: {self._redact(str(error))}; reporting with annotations in the log instead"
            )
        else:
            self.fallback_reason = "the Checks API failed"
            self._print(
                f"::warning title=mlpipe::publishing the check run failed: {self._redact(str(error))}; "
                "reporting with annotations in the log instead"
            )

    def _redact(self, text: str) -> str:
        return text.replace(self.ctx.token, "***") if self.ctx.token else text

    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def publish_plan(ctx: GitHubContext, *, name: str, title: str, markdown: str, stream: IO[str]) -> str:
    """A completed, neutral check run with the plan, and the job summary; returns the check's URL or ''.

    Never raises for GitHub's sake: a token that cannot write checks (fork PRs) leaves the job summary only.
    """
    url = ""
    if ctx.token and ctx.repository:
        stream.write(mask(ctx.token) + "\n")
        check = CheckRun(GitHubAPI(ctx.api_url, ctx.token, backoff_s=ctx.backoff_s), ctx.repository)
        body: dict[str, Any] = {
            "name": name,
            "head_sha": ctx.sha,
            "status": "completed",
            "conclusion": "neutral",
            "completed_at": _timestamp(None),
            "output": {"title": title, "summary": md.truncate(markdown)},
        }
        if ctx.run_url:
            body["details_url"] = ctx.run_url
        try:
            check.create(body)
            url = check.url
        except GitHubAPIError as error:
            text = str(error).replace(ctx.token, "***")
            why = "the token cannot write checks" if error.forbidden else "publishing the check run failed"
            stream.write(f"::warning title=mlpipe::{why}: {text}; the plan is in the job summary only\n")
    if ctx.step_summary is not None:
        append_job_summary(ctx.step_summary, markdown + (f"\nCheck run: {url}\n" if url else ""))
    return url


class PreparedRun(Protocol):
    """What GitHub's reporting reads of a prepared run (run/prepare.py `Prepared` is one): the pipeline, the
    steps in order, their code snapshots and the repository root. A protocol, so github/ never imports run/."""

    @property
    def pipeline(self) -> Pipeline: ...

    @property
    def git(self) -> GitInfo: ...

    @property
    def snapshots(self) -> Mapping[str, Snapshot]: ...

    @property
    def order(self) -> Sequence[str]: ...


def layout_for(prepared: PreparedRun) -> Layout:
    """Repository-relative paths of the pipeline file and of each step's code and snapshot files."""
    root = Path(os.path.realpath(prepared.git.root if prepared.git.in_repo else prepared.pipeline.root))
    workspace = _relative(Path(os.path.realpath(prepared.pipeline.root)), root)
    steps = {}
    for name in prepared.order:
        step = prepared.pipeline.steps[name]
        code = _join(workspace, step.code)
        snapshot = prepared.snapshots[step.code]
        steps[name] = StepSource(
            code=code, files=frozenset(_join(code, f.path) for f in snapshot.files), line=step.loc.line
        )
    pipeline_file = _relative(Path(os.path.realpath(prepared.pipeline.file)), root)
    return Layout(repo_root=str(root), workspace=workspace, pipeline_file=pipeline_file, steps=steps)


def github_reporter(
    prepared: PreparedRun,
    ctx: GitHubContext,
    *,
    publish_checks: bool,
    stream: IO[str] | None = None,
    throttle_s: float = 10.0,
) -> GitHubReporter:
    api = (
        GitHubAPI(ctx.api_url, ctx.token, backoff_s=ctx.backoff_s)
        if publish_checks and ctx.token and ctx.repository
        else None
    )
    upstream = {name: prepared.pipeline.steps[name].upstream() for name in prepared.order}
    return GitHubReporter(ctx, layout_for(prepared), upstream, api=api, stream=stream, throttle_s=throttle_s)


def _relative(path: Path, root: Path) -> str:
    try:
        text = path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
    return "" if text == "." else text


def _join(prefix: str, path: str) -> str:
    if path in {"", "."}:
        return prefix
    return f"{prefix}/{path}" if prefix else path


def _read_tail(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _timestamp(value: str | None) -> str:
    """ISO 8601 without milliseconds, as the Checks API documents it."""
    if not value:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return value.split(".")[0].rstrip("Z") + "Z"


def with_github(
    console: Reporter,
    prepared: PreparedRun,
    *,
    publish_checks: bool,
    stream: IO[str],
    environ: Mapping[str, str],
    throttle_s: float = 10.0,
    compare: Callable[[RunRecord], tuple[RunDiff | None, str]] | None = None,
    history: Callable[[], tuple[str, Sequence[RunRecord]]] | None = None,
) -> Reporter:
    """The console reporter, plus GitHub's check run and job summary when running in GitHub Actions (as
    `environ`, the command's settings' environment, says); `throttle_s`: the least time between two updates."""
    ctx = from_env(environ)
    if ctx is None:
        return console
    if ctx.token:  # before anything is printed that could hold it
        stream.write(mask(ctx.token) + "\n")
    reporter = github_reporter(
        prepared, ctx, publish_checks=publish_checks, stream=stream, throttle_s=throttle_s
    )
    reporter.compare = compare
    reporter.history = history
    return Reporters(console, reporter)
