"""Run records: one versioned JSON file per run in `.mlpipe/runs/`, listed newest first."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlpipe.errors import UsageError

RUN_FORMAT = "mlpipe.run/1"

RunStatus = Literal["running", "succeeded", "failed", "cancelled", "interrupted"]
"""`interrupted`: recorded as running, but no process holds the run's lock any more (killed, crashed)."""
StepStatus = Literal["pending", "running", "ran", "reused", "failed", "skipped", "cancelled"]


def new_run_id(now: float | None = None) -> str:
    """Sortable by time (UTC, milliseconds) and unique across machines (64 random bits)."""
    now = time.time() if now is None else now
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    # os.urandom is what secrets.token_hex reads; `secrets` would import `random` into every start-up
    return f"{stamp}{int(now * 1000) % 1000:03d}Z-{os.urandom(8).hex()}"


def utc_now(now: float | None = None) -> str:
    """`now` (default: the time) in UTC to the millisecond, `2026-12-07T01:27:00.123Z`: what
    `datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")` says with `Z` for `+00:00` (microseconds
    rounded half to even, then cut to milliseconds), without importing `datetime` at start-up."""
    now = time.time() if now is None else now
    seconds = math.floor(now)
    micro = round((now - seconds) * 1e6)
    if micro >= 1_000_000:
        seconds, micro = seconds + 1, micro - 1_000_000
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{micro // 1000:03d}Z"


@dataclass(kw_only=True)
class StepRecord:
    """One step of a run record."""

    status: StepStatus = "pending"
    fingerprint: str | None = None
    parts: dict[str, Any] | None = None
    reasons: list[str] = field(default_factory=list)
    reused_from: dict[str, Any] | None = None
    """run_id and commit of the run that produced the reused result."""
    started_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    exit_code: int | None = None
    log: str | None = None
    error: str | None = None
    nondeterministic: bool = False
    code: str | None = None
    """The step's code dir and its snapshot tree."""
    tree: str | None = None
    image: dict[str, Any] | None = None
    """For a step run in a container: the image as named (`ref`), its `id` (config digest) and registry `digest`."""
    gpus: list[dict[str, Any]] | None = None
    """The GPUs the step ran on: index, name, memory_mib, driver."""
    changed_at: dict[str, Any] | None = None
    """For a step that ran for a change: where the first change is, `{"path": repository path, or None for the
    pipeline file, "line": 1-based}` (the changed file's first changed line, or the param's or input's line)."""


@dataclass(kw_only=True)
class RunRecord:
    """A run as stored under .mlpipe/runs: its steps, status and times."""

    run_id: str
    pipeline: str
    pipeline_file: str
    started_at: str
    status: RunStatus = "running"
    ended_at: str | None = None
    git: dict[str, Any] = field(default_factory=dict)
    snapshots: dict[str, str] = field(default_factory=dict)
    """Code dir -> tree hash."""
    params: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, StepRecord] = field(default_factory=dict)
    platform: str = ""
    mlpipe_version: str = ""
    ci: dict[str, Any] = field(default_factory=dict)
    """Where the run ran in CI: `run_url`, the GitHub Actions workflow run's page."""

    def to_json(self) -> dict[str, Any]:
        # Shallow: the fields hold JSON values already, and the record is written after every step.
        data = {"format": RUN_FORMAT, **vars(self)}
        data["steps"] = {name: dict(vars(step)) for name, step in self.steps.items()}
        data["order"] = list(self.steps)  # the pipeline's order: records are written with sorted keys
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> RunRecord:
        if data.get("format") != RUN_FORMAT:
            raise ValueError(f"unknown run record format {data.get('format')!r}")
        # Fields a newer mlpipe added under the same format are ignored, not fatal.
        known = {f.name for f in dataclasses.fields(RunRecord)} - {"steps"}
        step_known = {f.name for f in dataclasses.fields(StepRecord)}
        fields = {k: v for k, v in data.items() if k in known}
        steps = {
            name: StepRecord(**{k: v for k, v in s.items() if k in step_known})
            for name, s in data.get("steps", {}).items()
        }
        order = data.get("order")
        if (
            isinstance(order, list)
            and all(isinstance(n, str) for n in order)
            and sorted(order) == sorted(steps)
        ):
            steps = {name: steps[name] for name in order}
        return RunRecord(**fields, steps=steps)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for step in self.steps.values():
            counts[step.status] = counts.get(step.status, 0) + 1
        return counts


class RunHistory:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, run_id: str) -> Path:
        return self.directory / f"{run_id}.json"

    def write(self, record: RunRecord) -> Path:
        """Atomically (re)write a record; called as the run progresses, so a killed run still says how far it got."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(record.run_id)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        # Compact, so the C encoder does it: `mlpipe show --json` pretty-prints.
        temp.write_text(json.dumps(record.to_json(), sort_keys=True, separators=(",", ":")) + "\n")
        os.replace(temp, path)
        return path

    def ids(self) -> list[str]:
        """Run ids, newest first."""
        if not self.directory.is_dir():
            return []
        names = (p.name for p in os.scandir(self.directory))
        return sorted((n[:-5] for n in names if n.endswith(".json") and not n.startswith(".")), reverse=True)

    def _lock_path(self, run_id: str) -> Path:
        return self.directory / f".{run_id}.lock"

    @contextlib.contextmanager
    def active(self, run_id: str) -> Iterator[None]:
        """Hold the run's lock while it runs; the kernel drops it when the process dies, even on kill -9."""
        import fcntl

        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._lock_path(run_id)
        with open(path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                path.unlink(missing_ok=True)

    def is_active(self, run_id: str) -> bool:
        import fcntl

        try:
            with open(self._lock_path(run_id)) as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except FileNotFoundError:
            return False
        except BlockingIOError:
            return True
        return False

    def load(self, run_id: str) -> RunRecord:
        path = self.path(run_id)
        try:
            record = RunRecord.from_json(json.loads(path.read_text()))
            if record.status == "running" and not self.is_active(run_id):
                record.status = "interrupted"
            return record
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise UsageError(f"run record {path} is unreadable ({error}); delete it or restore it") from None

    def records(self) -> Iterator[RunRecord]:
        for run_id in self.ids():
            try:
                yield self.load(run_id)
            except (OSError, UsageError):  # unreadable, or JSON of the wrong shape
                continue

    def resolve(self, prefix: str) -> str:
        """A full run id from a unique prefix (or 'latest')."""
        if not self.ids():
            raise UsageError("no runs recorded yet; `mlpipe ci-run` makes one")
        found = self.find(prefix)
        if found is None:
            raise UsageError(f"no run matches {prefix!r}; `mlpipe runs` lists them")
        return found

    def find(self, prefix: str) -> str | None:
        """The run id `prefix` (or 'latest') names, None when none matches; an error when several do."""
        ids = self.ids()
        if prefix in {"latest", "last", "@"}:
            return ids[0] if ids else None
        return unique_match(prefix, [i for i in ids if i.startswith(prefix)])


def unique_match(prefix: str, matches: list[str]) -> str | None:
    """The one run id a prefix matches, None for none; several is an error naming a few of them."""
    if len(matches) <= 1:
        return matches[0] if matches else None
    shown = ", ".join(matches[:5])
    raise UsageError(
        f"run id prefix {prefix!r} is ambiguous ({len(matches)} runs: {shown}); give more characters"
    )
