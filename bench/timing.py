"""Wall time, CPU time and peak RSS of whole processes, repeated, reported as median and min-max.

Peak RSS comes from os.wait4's rusage: the largest resident set of the command or of any descendant it
waited for (a maximum over processes, not a sum), so no `/usr/bin/time` is needed. Linux counts the forked
copy of this harness into that maximum (fork copies the high-water mark, exec keeps it), so a value at the
harness's own peak RSS (`floor_kib`) means "at most this much". CPU time (user + system) comes from the same
rusage and sums the command and every descendant it waited for; on a busy machine it is steadier than wall time.
"""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

LAUNCHER = "import sys; sys.path.insert(0, {src!r}); from mlpipe.cli.main import main; sys.exit(main())"
"""`python -c` code that runs the mlpipe CLI from the source tree `src` (a directory holding the `mlpipe`
package), put first on sys.path rather than through PYTHONPATH, which the steps would inherit."""


class CommandFailed(RuntimeError):
    def __init__(self, argv: Sequence[str], cwd: Path, code: int, log: Path) -> None:
        tail = log.read_text(errors="replace")[-3000:]
        super().__init__(f"{shlex.join(argv)} (in {cwd}) exited {code}; end of {log}:\n{tail}")


@dataclass(frozen=True)
class Sample:
    seconds: float
    max_rss_kib: int
    cpu_seconds: float = 0.0
    """User + system CPU time of the command and the descendants it waited for."""
    floor_kib: int = 0
    """This harness's peak RSS when it forked the command (the forked copy inherits it as its own peak)."""
    inner_seconds: float | None = None
    """Time the command measured itself, after interpreter start-up (limits.py only)."""


@dataclass(frozen=True, kw_only=True)
class Spec:
    """One command to time: `before(rep)` runs untimed ahead of each repetition."""

    case: str
    tool: str
    argv: Sequence[str]
    cwd: Path | Callable[[int], Path]
    """A directory, or the directory for repetition `rep`."""
    before: Callable[[int], Any] | None = None
    inner_report: Path | None = None


@dataclass
class Result:
    case: str
    tool: str
    command: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def low(self) -> float:
        return min(s.seconds for s in self.samples)

    @property
    def high(self) -> float:
        return max(s.seconds for s in self.samples)

    @property
    def cpu_median(self) -> float:
        return statistics.median(s.cpu_seconds for s in self.samples)

    @property
    def inner_median(self) -> float | None:
        inner = [s.inner_seconds for s in self.samples if s.inner_seconds is not None]
        return statistics.median(inner) if inner else None

    @property
    def peak_rss_kib(self) -> int:
        return max(s.max_rss_kib for s in self.samples)

    @property
    def at_floor(self) -> bool:
        """The command's own peak is hidden under the fork floor."""
        return all(s.max_rss_kib <= s.floor_kib * 1.02 for s in self.samples)

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "tool": self.tool,
            "command": self.command,
            "median_s": self.median,
            "min_s": self.low,
            "max_s": self.high,
            "cpu_median_s": self.cpu_median,
            "inner_median_s": self.inner_median,
            "peak_rss_kib": self.peak_rss_kib,
            "peak_rss_at_fork_floor": self.at_floor,
            "samples": [vars(s) for s in self.samples],
        }


def run_once(argv: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path) -> Sample:
    log.parent.mkdir(parents=True, exist_ok=True)
    floor = own_rss_kib()
    with open(log, "ab") as out:
        out.write(f"\n$ {shlex.join(argv)}   # in {cwd}\n".encode())
        out.flush()
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise CommandFailed(argv, cwd, proc.returncode, log)
    cpu = usage.ru_utime + usage.ru_stime
    return Sample(seconds=seconds, max_rss_kib=usage.ru_maxrss, cpu_seconds=cpu, floor_kib=floor)


def own_rss_kib() -> int:
    with open("/proc/self/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("VmHWM:")))


def measure(specs: Sequence[Spec], reps: int, env: Mapping[str, str], logs: Path) -> list[Result]:
    """Runs every spec `reps` times, alternating between specs so drift hits all of them alike."""
    results = [Result(s.case, s.tool, shlex.join(s.argv)) for s in specs]
    for rep in range(reps):
        for spec, result in zip(specs, results, strict=True):
            if spec.before is not None:
                spec.before(rep)
            cwd = spec.cwd(rep) if callable(spec.cwd) else spec.cwd
            sample = run_once(spec.argv, cwd, env, logs / f"{spec.case}-{_slug(spec.tool)}.log")
            if spec.inner_report is not None:
                inner = float(spec.inner_report.read_text())
                sample = replace(sample, inner_seconds=inner)
            result.samples.append(sample)
    return results


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")
