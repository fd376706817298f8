"""What the test workflow runner (actions_testing.py) works with: the simulated runners and events a test sets
up, the runs it produces (instances, steps, logs, outputs), and the workflow file and file commands it reads."""

from __future__ import annotations

import itertools
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from actions_expressions import to_text

JOB_KEYS = {
    "name",
    "needs",
    "if",
    "runs-on",
    "strategy",
    "outputs",
    "steps",
    "env",
    "permissions",
    "timeout-minutes",
    "defaults",
}


class WorkflowError(Exception):
    """The workflow asks for something the runner does not understand or GitHub would refuse."""


# -- what the test sets up -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SimulatedRunner:
    name: str
    labels: frozenset[str]
    slots: int = 1
    """How many jobs it runs at once (a hosted pool: many; a self-hosted machine: one)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """The runner's `.env` file: variables every job on it sees."""
    path: tuple[Path, ...] = ()
    """Directories put first on PATH (tools installed on this machine)."""
    self_hosted: bool = False

    def serves(self, wanted: frozenset[str]) -> bool:
        return wanted <= {label.lower() for label in self.labels}


def hosted_runner(name: str = "hosted", slots: int = 20) -> SimulatedRunner:
    return SimulatedRunner(name=name, labels=frozenset({"ubuntu-latest", "ubuntu-24.04"}), slots=slots)


def gpu_runner(bin_dir: Path, name: str = "gpu-box") -> SimulatedRunner:
    """A self-hosted runner labelled `self-hosted, linux, gpu`; its `.env` names `gpu` for mlpipe."""
    return SimulatedRunner(
        name=name,
        labels=frozenset({"self-hosted", "linux", "x64", "gpu"}),
        env={"MLPIPE_RUNNER_LABELS": "gpu"},
        path=(bin_dir,),
        self_hosted=True,
    )


@dataclass(frozen=True)
class Event:
    name: str
    payload: dict[str, Any]
    sha: str
    ref: str


@dataclass
class RunnerDeath:
    """Kill every process of the first instance of `job` (attempt `attempt`) once `when()` holds."""

    job: str
    when: Callable[[], bool]
    attempt: int = 1
    fired: bool = False


@dataclass(frozen=True)
class StepContext:
    """What a replaced step gets: its evaluated env, the job's workspace and RUNNER_TEMP."""

    env: Mapping[str, str]
    workspace: Path
    temp: Path


@dataclass
class JobState:
    """What the steps of one job instance share: its files, environment additions and limits."""

    run: WorkflowRun
    instance: JobRun
    home: Path
    workspace: Path
    base_env: dict[str, str]
    defaults: dict[str, Any]
    timeout: float
    extra_env: dict[str, str] = field(default_factory=dict)
    """GITHUB_ENV lines of earlier steps."""
    extra_path: list[str] = field(default_factory=list)
    counter: Iterator[int] = field(default_factory=itertools.count)


# -- what a run produces ---------------------------------------------------------------------------------------
@dataclass
class StepRun:
    name: str
    id: str
    result: str  # success, failure, skipped, cancelled
    log: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class JobRun:
    """One instance of a job (a matrix entry, or the job itself) in one attempt."""

    job: str
    matrix: dict[str, Any] | None
    attempt: int
    runner: str = ""
    result: str = "pending"
    message: str = ""
    steps: list[StepRun] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    processes: list[subprocess.Popen[str]] = field(default_factory=list, repr=False)

    title: str = ""
    """The job's `name:`, evaluated for this instance."""

    @property
    def name(self) -> str:
        if self.title:
            return f"{self.job} ({self.title})"
        if not self.matrix:
            return self.job
        return f"{self.job} ({', '.join(to_text(v, self.job) for v in self.matrix.values() if _scalar(v))})"

    @property
    def log(self) -> str:
        return "\n".join(f"## {step.name}: {step.result}\n{step.log}" for step in self.steps)


@dataclass
class JobResult:
    result: str  # success, failure, cancelled, skipped
    instances: list[JobRun]
    outputs: dict[str, str]


@dataclass
class WorkflowRun:
    inputs: dict[str, Any]
    run_id: str
    attempt: int = 1
    jobs: dict[str, JobResult] = field(default_factory=dict)
    history: list[JobRun] = field(default_factory=list)
    """Every instance of every attempt, in the order they finished."""
    outputs: dict[str, str] = field(default_factory=dict)
    cancelled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def result(self, job: str) -> str:
        return self.jobs[job].result

    def instances(self, job: str) -> list[JobRun]:
        return self.jobs[job].instances

    def explain(self) -> str:
        """Every instance of every attempt with its steps' logs: what a failed assertion should show."""
        lines = []
        for run in self.history:
            lines.append(
                f"=== {run.name} attempt {run.attempt} on {run.runner or '-'}: {run.result} {run.message}"
            )
            lines.append(run.log)
        return "\n".join(lines)


# -- reading -------------------------------------------------------------------------------------------------
def load_workflow(path: Path) -> dict[str, Any]:
    text = yaml.safe_load(path.read_text())
    if not isinstance(text, dict):
        raise WorkflowError(f"{path}: not a workflow")
    on = text.get("on", text.get(True))  # YAML 1.1 reads the key `on` as true
    if not isinstance(on, dict) or "workflow_call" not in on:
        raise WorkflowError(f"{path}: the test runner runs reusable workflows (on: workflow_call)")
    jobs = text.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        raise WorkflowError(f"{path}: no jobs")
    for name, job in jobs.items():
        unknown = set(job) - JOB_KEYS
        if unknown:
            raise WorkflowError(
                f"{path}: jobs.{name}: keys the test runner does not support: {sorted(unknown)}"
            )
        for need in needs_of(job):
            if need not in jobs:
                raise WorkflowError(f"{path}: jobs.{name}.needs: no job {need!r}")
        defaults = job.get("defaults", {})
        if set(defaults) - {"run"} or set(defaults.get("run", {})) - {"shell", "working-directory"}:
            raise WorkflowError(f"{path}: jobs.{name}.defaults: only run.shell and run.working-directory")
    return {**text, "on": {"workflow_call": on["workflow_call"] or {}}}


def needs_of(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def parse_file_command(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT / GITHUB_ENV as the runner reads them: `name=value` lines and `name<<DELIMITER` blocks."""
    values: dict[str, str] = {}
    lines = path.read_text().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    i = 0
    while i < len(lines):
        line = lines[i]
        equals, heredoc = line.find("="), line.find("<<")
        if heredoc > 0 and (equals < 0 or heredoc < equals):
            name, delimiter = line[:heredoc], line[heredoc + 2 :]
            try:
                end = lines.index(delimiter, i + 1)
            except ValueError:
                raise WorkflowError(f"{path.name}: matching delimiter not found '{delimiter}'") from None
            values[name] = "\n".join(lines[i + 1 : end])
            i = end + 1
        elif equals > 0:
            values[line[:equals]] = line[equals + 1 :]
            i += 1
        elif line.strip():
            raise WorkflowError(f"Unable to process file command '{path.name}': invalid format {line!r}")
        else:
            i += 1
    return values


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)
