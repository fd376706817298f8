"""What a run shows while it happens: a live status display on a terminal, plain greppable lines elsewhere,
and in GitHub Actions a live log that keeps `::group::` where a group hides nothing: a step running alone
streams inside a group of its own; steps running in parallel stream prefixed lines, and each one's last lines
are printed again in a group when it ends. Nothing holds a step's whole output: memory stays bounded however
long a step runs or however much it prints."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import IO, Any

from mlpipe.core.plan import Plan
from mlpipe.events import Notice
from mlpipe.report.events import Reporter
from mlpipe.report.text import where
from mlpipe.report.traffic import TrafficMeter
from mlpipe.runs import RunRecord, StepRecord
from mlpipe.text import escape_data

SYMBOLS = {"ran": "✔", "reused": "↺", "failed": "✘", "skipped": "-", "cancelled": "■", "running": "▶"}


def step_outcome_line(name: str, step: StepRecord) -> str:
    if step.status == "reused":
        source = (step.reused_from or {}).get("run_id") or "?"
        return f"{name}: reused (from run {source})"
    if step.status == "ran":
        extra = " [nondeterministic: output differs from the stored result]" if step.nondeterministic else ""
        return f"{name}: ran in {step.duration_s:.1f}s{extra}"
    detail = f": {step.error}" if step.error else ""
    return f"{name}: {step.status}{detail}"


def stdout_closed(stream: IO[str]) -> None:
    """Point a stream whose reader left (EPIPE) at /dev/null: later writes, and Python's flush at exit, succeed
    silently instead of raising in whichever thread writes next."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a real file (a test's StringIO): nothing more to do
        pass


TAIL_LINES = 50
"""In GitHub Actions, a step whose output was interleaved with another's has its last lines printed again, in a
group of its own, when it ends."""
TAIL_LINE_CHARS = 2000
"""A line kept for that tail is cut to this many characters (it streamed whole)."""


class PlainReporter:
    """One line per event, every output line prefixed with its step: greppable, safe to interleave.

    When the reader of the output goes away (`mlpipe ci-run | head -1`), the run goes on without output: its
    steps' logs are still written, and the record says how it ended.
    """

    def __init__(self, stream: IO[str] | None = None, *, github: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.github = github
        self._lock = threading.Lock()
        self._closed = False
        self._group: str | None = None
        """GitHub Actions: the step whose output streams, unprefixed, in the open group (it runs alone)."""
        self._running: set[str] = set()
        self._tails: dict[str, deque[str]] = {}
        """GitHub Actions: the last lines of each running step whose output was interleaved with another's."""

    def _print(self, text: str) -> None:
        with self._lock:
            self._write(text)

    def _write(self, text: str) -> None:
        """Called with the lock held."""
        if self._closed:
            return
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError):  # ValueError: the stream was closed
            self._closed = True
            stdout_closed(self.stream)
            _say(
                "the output was closed (its reader exited): no more progress is printed, but that alone "
                "does not stop the run; `mlpipe show` gives its summary"
            )

    def run_started(self, record: RunRecord, plan: Plan) -> None:
        runs = sum(1 for s in plan.steps.values() if s.action == "run")
        reuses = sum(1 for s in plan.steps.values() if s.action == "reuse")
        self._print(
            f"mlpipe: run {record.run_id} of {record.pipeline} {where(record)}: {runs} to run, {reuses} to reuse"
        )

    def step_started(self, name: str, step: StepRecord) -> None:
        with self._lock:
            self._write(f"mlpipe: {name}: started ({'; '.join(step.reasons)})")
            if self.github:
                self._github_started(name)

    def _github_started(self, name: str) -> None:
        if not self._running:  # alone: its output streams in its own group
            self._group = name
            self._write(f"::group::{_group_title(name)}")
        else:
            if self._group is not None:  # the group must close: a second step's lines would land in it
                self._write("::endgroup::")
                self._tails[self._group] = deque(maxlen=TAIL_LINES)
                self._group = None
            shown = ", ".join(sorted(self._running | {name}))
            self._write(
                f"mlpipe: {shown} run in parallel: output streams prefixed with [step]; "
                f"each step's last {TAIL_LINES} lines are grouped when it ends"
            )
            self._tails[name] = deque(maxlen=TAIL_LINES)
        self._running.add(name)

    def step_line(self, name: str, line: str) -> None:
        with self._lock:
            if self.github and (self._group == name or _step_command(line)):
                # Alone, a step's output is its group's, as a plain `run:` step's would be. In parallel, its
                # workflow commands (`::add-mask::` before it prints a secret, `::warning::`) still reach
                # GitHub, in order and once: unprefixed, and left out of its tail.
                self._write(line)
                return
            tail = self._tails.get(name)
            if tail is not None:
                tail.append(line[:TAIL_LINE_CHARS])
            self._write(f"[{name}] {line}")

    def step_finished(self, name: str, step: StepRecord) -> None:
        with self._lock:
            if self.github:
                self._github_finished(name, step)
            # No `::error` here: in Actions the GitHub reporter annotates each failure once, at its file and
            # line, in the check run (or as a workflow command when it cannot write checks).
            self._write(f"mlpipe: {step_outcome_line(name, step)}")

    def _github_finished(self, name: str, step: StepRecord) -> None:
        self._running.discard(name)
        if self._group == name:
            self._write("::endgroup::")
            self._group = None
        tail = self._tails.pop(name, None)
        if tail:
            self._write(f"::group::{_group_title(name)} ({step.status}): its last {len(tail)} lines")
            for line in tail:
                self._write(line)
            self._write("::endgroup::")

    def run_finished(self, record: RunRecord) -> None:
        pass

    def message(self, text: str) -> None:
        self._print(f"mlpipe: {text}")

    def notice(self, notice: Notice) -> None:
        """On stderr, as a backend's notice always was: stdout keeps the progress (and `--json` its record)."""
        with self._lock:  # from any thread: the store's push threads, the steps' workers
            try:
                sys.stderr.write(notice.line + "\n")
                sys.stderr.flush()
            except (OSError, ValueError):  # stderr went with stdout (`2>&1 | head`)
                stdout_closed(sys.stderr)


def _step_command(line: str) -> bool:
    """A workflow command a step prints, other than a group: its own groups would hide other steps' lines."""
    return line.startswith("::") and not line.startswith(("::group::", "::endgroup::"))


def _group_title(name: str) -> str:
    """A step name as a group's title: one line (names come from the pipeline file)."""
    return escape_data(name)


def _say(text: str) -> None:
    try:
        sys.stderr.write(f"mlpipe: {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr went with stdout (`2>&1 | head`)
        stdout_closed(sys.stderr)


class TerminalReporter(PlainReporter):
    """Prefixed live output above a status display of every step of the DAG (rich, imported only here)."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=stream, highlight=False)
        self._states: dict[str, str] = {}
        self._started: dict[str, float] = {}
        self._traffic = TrafficMeter()  # registry pushes and pulls, URL downloads: bytes and rate
        self._live = Live(
            console=self.console, refresh_per_second=8, transient=True, get_renderable=self._render
        )

    def _render(self) -> Any:
        from rich.table import Table

        table = Table.grid(padding=(0, 1))
        for name, state in self._states.items():
            symbol = SYMBOLS.get(state, "·")
            detail = state
            if state == "running":
                detail = f"running {time.monotonic() - self._started[name]:.0f}s"
            table.add_row(symbol, name, detail)
        if traffic := self._traffic.line():
            table.add_row("⇅", traffic, "")
        return table

    def _write(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def run_started(self, record: RunRecord, plan: Plan) -> None:
        self._states = dict.fromkeys(plan.steps, "pending")
        super().run_started(record, plan)
        self._live.start()

    def step_started(self, name: str, step: StepRecord) -> None:
        self._states[name] = "running"
        self._started[name] = time.monotonic()
        super().step_started(name, step)

    def step_finished(self, name: str, step: StepRecord) -> None:
        self._states[name] = step.status
        super().step_finished(name, step)

    def run_finished(self, record: RunRecord) -> None:
        self._live.stop()

    def notice(self, notice: Notice) -> None:
        """Above the live display, which a line on stderr would tear."""
        self._print(notice.line)


def choose_reporter(stream: IO[str] | None, environ: Mapping[str, str]) -> Reporter:
    """Plain lines in CI (with GitHub's workflow commands in Actions), when piped or on a dumb terminal, as
    `environ` (the command's settings' environment) says; live progress on a terminal."""
    stream = stream or sys.stdout
    if environ.get("GITHUB_ACTIONS") == "true":
        return PlainReporter(stream, github=True)
    if environ.get("CI") or not stream.isatty() or environ.get("TERM") == "dumb":
        return PlainReporter(stream)
    return TerminalReporter(stream)
