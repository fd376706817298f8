"""Runs a step's command on this machine, in its own process group, streaming its output."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from typing import IO

from mlpipe.executors.base import StepOutcome, StepRequest


def shell_argv(command: str) -> list[str]:
    """bash with errexit and pipefail, as GitHub Actions runs `run:` steps; plain sh where bash is missing."""
    bash = shutil.which("bash")
    if bash:
        return [bash, "--noprofile", "--norc", "-eo", "pipefail", "-c", command]
    return ["/bin/sh", "-e", "-c", command]


class HostExecutor:
    def start(self, request: StepRequest) -> HostStep:
        return HostStep(request)


class HostStep:
    def __init__(self, request: StepRequest) -> None:
        self.request = request
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._cancelled = False
        self._timed_out = False
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(request.log_path, "wb")  # noqa: SIM115 - closed in wait()
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
        except OSError as error:
            self.process = None
            self._error = f"could not start the step's shell: {error}"
        self._reader = threading.Thread(target=self._pump, daemon=True)
        if self.process is not None:
            self._reader.start()

    def _pump(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        stream: IO[bytes] = self.process.stdout
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            for prefix, replacement in self.request.rewrites:
                line = line.replace(prefix, replacement)
            self._log.write(line.encode() + b"\n")
            self._log.flush()
            self.request.on_line(self.request.step, line)

    def wait(self) -> StepOutcome:
        if self.process is None:
            self._log.close()
            return StepOutcome(exit_code=127, duration_s=0.0, error=self._error)
        timeout = self.request.timeout_s
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._timed_out = True
            self._escalate()
            code = self.process.wait()
        # Whatever the step left running in its group goes with it.
        self._signal(signal.SIGKILL)
        self._reader.join(timeout=5)
        self._log.close()
        duration = time.monotonic() - self._started
        error = None
        if self._timed_out:
            error = f"timed out after {timeout / 60:g} minutes" if timeout else "timed out"
        return StepOutcome(
            exit_code=code,
            duration_s=duration,
            timed_out=self._timed_out,
            cancelled=self._cancelled,
            error=error,
        )

    def cancel(self) -> None:
        if self.process is None or self._cancelled:
            return
        self._cancelled = True
        threading.Thread(target=self._escalate, daemon=True).start()

    def _escalate(self) -> None:
        """SIGINT, then SIGTERM, then SIGKILL, each after a bounded wait."""
        assert self.process is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=self.request.kill_grace_s)
                return
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)
