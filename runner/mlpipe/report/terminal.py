"""What a run shows while it happens: a live status display on a terminal, plain greppable lines elsewhere,
and one `::group::` per step in GitHub Actions (steps run in parallel, so each group is written when its
step ends, as turborepo's grouped log order does)."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import IO, Any

from mlpipe.core.plan import Plan
from mlpipe.report.events import Reporter
from mlpipe.report.text import where
from mlpipe.report.traffic import TrafficMeter
from mlpipe.runs import RunRecord, StepRecord

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


class PlainReporter:
    """One line per event, every output line prefixed with its step: greppable, safe to interleave.

    When the reader of the output goes away (`mlpipe ci-run | head -1`), the run goes on without output: its
    steps' logs are still written, and the record says how it ended.
    """

    def __init__(self, stream: IO[str] | None = None, *, github: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.github = github
        self._lock = threading.Lock()
        self._buffers: dict[str, list[str]] = {}
        self._closed = False

    def _print(self, text: str) -> None:
        with self._lock:
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
        self._buffers[name] = []
        self._print(f"mlpipe: {name}: started ({'; '.join(step.reasons)})")

    def step_line(self, name: str, line: str) -> None:
        if self.github:
            with self._lock:
                self._buffers.setdefault(name, []).append(line)
        else:
            self._print(f"[{name}] {line}")

    def step_finished(self, name: str, step: StepRecord) -> None:
        if self.github and name in self._buffers:
            lines = self._buffers.pop(name)
            self._print("\n".join([f"::group::{name} ({step.status})", *lines, "::endgroup::"]))
        self._print(f"mlpipe: {step_outcome_line(name, step)}")
        if self.github and step.status == "failed":
            self._print(f"::error title=mlpipe step {name} failed::{_escape(step.error or 'failed')}")

    def run_finished(self, record: RunRecord) -> None:
        pass

    def message(self, text: str) -> None:
        self._print(f"mlpipe: {text}")


def _say(text: str) -> None:
    try:
        sys.stderr.write(f"mlpipe: {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr went with stdout (`2>&1 | head`)
        stdout_closed(sys.stderr)


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


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

    def _print(self, text: str) -> None:
        with self._lock:
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


def choose_reporter(stream: IO[str] | None = None) -> Reporter:
    stream = stream or sys.stdout
    if os.environ.get("GITHUB_ACTIONS") == "true":
        return PlainReporter(stream, github=True)
    if os.environ.get("CI") or not stream.isatty() or os.environ.get("TERM") == "dumb":
        return PlainReporter(stream)
    return TerminalReporter(stream)
