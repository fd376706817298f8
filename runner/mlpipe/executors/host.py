"""Runs a step's command on this machine, in its own process group, streaming its output.

Steps die with their runner: a guardian process, started with the first step, reads the step groups' ids from
a pipe that only mlpipe holds open. When mlpipe ends, even by kill -9, the pipe closes and the guardian stops
every group still listed (SIGTERM, then SIGKILL). What the guardian cannot cover (it was killed too, or a step
moved a child into a session of its own) is found at the next start: each running step's group is recorded
in a file with its leader's start time and mlpipe's, and `orphans.reap_host_steps` stops the groups whose
mlpipe is gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from mlpipe.errors import present
from mlpipe.executors.base import (
    MAX_LINE_BYTES,
    ContainerSpec,
    Placed,
    StepOutcome,
    StepPaths,
    StepRequest,
)
from mlpipe.executors.lines import LineSplitter
from mlpipe.executors.orphans import forget_host_step, record_host_step
from mlpipe.executors.steplog import StepLog
from mlpipe.executors.stopping import Stopper

_READ_BYTES = 1 << 16


def shell_argv(command: str) -> list[str]:
    """bash with errexit and pipefail, as GitHub Actions runs `run:` steps; plain sh where bash is missing."""
    bash = shutil.which("bash")
    if bash:
        return [bash, "--noprofile", "--norc", "-eo", "pipefail", "-c", command]
    return ["/bin/sh", "-e", "-c", command]


# Run with -I -S: nothing from the environment or site-packages, and a quick start. It ignores the signals a
# terminal or CI sends to mlpipe's group: it ends when its pipe closes, and only then acts.
GUARDIAN = """
import os, signal, sys, time
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
    signal.signal(s, signal.SIG_IGN)
groups = set()
for line in sys.stdin:
    if line[:1] == "+":
        groups.add(int(line[1:]))
    elif line[:1] == "-":
        groups.discard(int(line[1:]))
def alive():
    left = set()
    for g in groups:
        try:
            os.killpg(g, 0)
            left.add(g)
        except OSError:
            pass
    return left
grace = float(sys.argv[1])
for sig in (signal.SIGTERM, signal.SIGKILL):
    for g in alive():
        try:
            os.killpg(g, sig)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    while groups and time.monotonic() < deadline and alive():
        time.sleep(0.05)
"""


class Guardian:
    """The process that stops this mlpipe's step groups when mlpipe ends without doing so itself."""

    def __init__(self, grace_s: float) -> None:
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", GUARDIAN, str(grace_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not in mlpipe's group: a signal to that group leaves it to do its job
        )

    def tell(self, line: str) -> None:
        stdin = present(self._process.stdin, "the guardian started without its pipe")
        with (
            self._lock,
            contextlib.suppress(OSError, ValueError),
        ):  # it died: steps are still stopped by mlpipe
            stdin.write(line.encode() + b"\n")
            stdin.flush()


class HostExecutor:
    def __init__(self, records: Path | None = None) -> None:
        self.records = records
        """Where running steps' groups are recorded for `orphans.reap_host_steps`; None: not recorded."""
        self._guardian: Guardian | None = None

    def place(self, paths: StepPaths, container: ContainerSpec | None) -> Placed:
        """On this machine a step sees its paths as they are."""
        if container is not None:
            raise ValueError(
                f"a step with image {container.image_ref!r} runs in a container, not on the host"
            )
        return Placed(paths=paths)

    def start(self, request: StepRequest) -> HostStep:
        if self._guardian is None:
            # If no second interpreter can start, the record read at the next start still reaps.
            with contextlib.suppress(OSError):
                self._guardian = Guardian(request.kill_grace_s)
        return HostStep(request, guardian=self._guardian, records=self.records)


class HostStep:
    def __init__(
        self, request: StepRequest, *, guardian: Guardian | None = None, records: Path | None = None
    ) -> None:
        self.request = request
        self._guardian = guardian
        self._record: Path | None = None
        self._started = time.monotonic()
        self._stopper = Stopper(
            send=self._signal, ended=self._ended, timeout_s=request.timeout_s, grace_s=request.kill_grace_s
        )
        self._log = StepLog(request)
        try:
            self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
                shell_argv(request.command),
                cwd=request.cwd,
                env=dict(request.env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: signals reach the whole step
            )
            self._error: str | None = None
            if guardian is not None:
                guardian.tell(f"+{self.process.pid}")
            if records is not None:
                self._record = record_host_step(records, self.process.pid)
        except OSError as error:
            self.process = None
            self._error = f"could not start the step's shell: {error}"
        self._reader = threading.Thread(target=self._pump, daemon=True)
        if self.process is not None:
            self._reader.start()

    def _pump(self) -> None:
        process = present(self.process, "a step's output read before it started")
        stream: IO[bytes] = present(process.stdout, "a step started without its output pipe")
        lines = LineSplitter(MAX_LINE_BYTES)
        # read1: whatever the pipe holds now, so a progress bar's redraws arrive as they are written
        for chunk in iter(lambda: stream.read1(_READ_BYTES), b""):  # type: ignore[attr-defined]
            for raw in lines.feed(chunk):
                self._log.line(raw)
        for raw in lines.close():
            self._log.line(raw)

    def wait(self) -> StepOutcome:
        if self.process is None:
            self._log.close()
            return StepOutcome(exit_code=127, duration_s=0.0, error=self._error)
        self._stopper.wait()
        code = self.process.wait()
        # Whatever the step left running in its group goes with it.
        self._signal(signal.SIGKILL)
        if self._guardian is not None:
            self._guardian.tell(f"-{self.process.pid}")
        if self._record is not None:
            forget_host_step(self._record)
        self._reader.join(timeout=5)
        self._log.close()
        return StepOutcome(
            exit_code=code,
            duration_s=time.monotonic() - self._started,
            timed_out=self._stopper.timed_out,
            cancelled=self._stopper.cancelled,
            error=self._stopper.timeout_error(),
        )

    def cancel(self) -> None:
        if self.process is not None:
            self._stopper.cancel()

    def _ended(self, timeout: float | None) -> bool:
        if self.process is None:
            return True
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)
