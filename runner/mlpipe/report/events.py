"""The events a run emits, as the `Reporter` protocol: what the runner calls while it works, and what the
terminal, plain-CI and GitHub reporters implement. The runner and GitHub's check run depend on this module
only, never on the terminal. (What backends say on the side, warnings and transfer notes, is `mlpipe.events`.)"""

from __future__ import annotations

from typing import Protocol

from mlpipe.core.plan import Plan
from mlpipe.events import Notice
from mlpipe.runs import RunRecord, StepRecord


class Reporter(Protocol):
    def run_started(self, record: RunRecord, plan: Plan) -> None: ...
    def step_started(self, name: str, step: StepRecord) -> None: ...
    def step_line(self, name: str, line: str) -> None:
        """Called from reader threads as output arrives."""
        ...

    def step_finished(self, name: str, step: StepRecord) -> None: ...
    def run_finished(self, record: RunRecord) -> None: ...
    def message(self, text: str) -> None: ...
    def notice(self, notice: Notice) -> None:
        """What a backend says on the side (`mlpipe.events`: a warning, a transfer); called from any thread."""
        ...


class Reporters:
    """Several reporters as one (the console and GitHub's check run): each event goes to each, in order."""

    def __init__(self, *reporters: Reporter) -> None:
        self.reporters = reporters

    def run_started(self, record: RunRecord, plan: Plan) -> None:
        for reporter in self.reporters:
            reporter.run_started(record, plan)

    def step_started(self, name: str, step: StepRecord) -> None:
        for reporter in self.reporters:
            reporter.step_started(name, step)

    def step_line(self, name: str, line: str) -> None:
        for reporter in self.reporters:
            reporter.step_line(name, line)

    def step_finished(self, name: str, step: StepRecord) -> None:
        for reporter in self.reporters:
            reporter.step_finished(name, step)

    def run_finished(self, record: RunRecord) -> None:
        for reporter in self.reporters:
            reporter.run_finished(record)

    def message(self, text: str) -> None:
        for reporter in self.reporters:
            reporter.message(text)

    def notice(self, notice: Notice) -> None:
        for reporter in self.reporters:
            reporter.notice(notice)
