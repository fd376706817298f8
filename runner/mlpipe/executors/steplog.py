"""Where a step's output lines go: its log file, while the disk allows, and the live display."""

from __future__ import annotations

import contextlib

from mlpipe.executors.base import StepRequest


class StepLog:
    """Opened when the step starts, closed when it has ended. A full disk loses the log's lines, not the step,
    and a display that fails loses its lines, not the reading: the output must be drained whatever happens to
    either, or the step blocks on a full pipe."""

    def __init__(self, request: StepRequest) -> None:
        self._request = request
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(request.log_path, "wb")  # noqa: SIM115 - closed in close()
        self.lines = 0
        """Lines passed on so far: a reader that stops counting has reached the end of its stream."""

    def line(self, raw: bytes) -> None:
        self.lines += 1
        line = raw.decode("utf-8", "replace")
        for prefix, replacement in self._request.rewrites:
            line = line.replace(prefix, replacement)
        with contextlib.suppress(OSError):
            self._file.write(line.encode() + b"\n")
            self._file.flush()
        with contextlib.suppress(Exception):
            self._request.on_line(self._request.step, line)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
