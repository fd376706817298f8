"""Stopping a step, for every executor: on its timeout or on cancel, SIGINT, then SIGTERM, then SIGKILL, each
after a bounded wait for the step to end (`kill_grace_s`). How a signal reaches the step (its process group on
the host, the container's init in a container) and how its end is awaited is the executor's part."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(kw_only=True)
class Stopper:
    """Waits for a step's end, stops it when its time is up or it is cancelled, and says which happened.

    `send(sig)` signals the step (a step already gone is no error); `ended(timeout)` waits at most `timeout`
    seconds (None: without end) for the step to end and says whether it did."""

    send: Callable[[signal.Signals], None]
    ended: Callable[[float | None], bool]
    timeout_s: float | None
    grace_s: float
    timed_out: bool = field(default=False, init=False)
    cancelled: bool = field(default=False, init=False)

    def wait(self) -> None:
        """Until the step ends; past its timeout, it is stopped first."""
        if not self.ended(self.timeout_s):
            self.timed_out = True
            self.escalate()
        self.ended(None)

    def cancel(self) -> None:
        """Stop the step from another thread; returns at once. A second cancel does nothing."""
        if self.cancelled:
            return
        self.cancelled = True
        threading.Thread(target=self.escalate, daemon=True).start()

    def escalate(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.send(sig)
            if self.ended(self.grace_s):
                return
        self.send(signal.SIGKILL)

    def timeout_error(self) -> str | None:
        """The step's error when its time ran out, else None."""
        if not self.timed_out:
            return None
        return f"timed out after {self.timeout_s / 60:g} minutes" if self.timeout_s else "timed out"
