"""A live meter of the bytes mlpipe moves over the network (registry pushes and pulls, URL downloads) on a
terminal: bytes so far and the current rate. In CI and when piped there is no meter; each transfer says what it
moved and took in one line when it ends (`mlpipe: cache: ...`)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import IO

from mlpipe.events import TRAFFIC
from mlpipe.text import human_size

WINDOW_S = 2.0
"""The rate is over the last this many seconds, so it follows a transfer that speeds up or stalls."""


class TrafficMeter:
    """Bytes moved since the meter was made, and their recent rate, as one line."""

    def __init__(
        self,
        totals: Callable[[], tuple[int, int]] = TRAFFIC.totals,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._totals = totals
        self._clock = clock
        self._start = totals()
        self._samples: deque[tuple[float, int, int]] = deque()

    def line(self) -> str:
        """`network: ↓ 40.0 MiB (12.5 MiB/s) ↑ 3.0 MiB (1.0 MiB/s)`, or "" while nothing has moved."""
        sent_total, received_total = self._totals()
        sent, received = sent_total - self._start[0], received_total - self._start[1]
        now = self._clock()
        self._samples.append((now, sent, received))
        while len(self._samples) > 2 and now - self._samples[1][0] >= WINDOW_S:
            self._samples.popleft()  # the base stays the newest sample at least WINDOW_S old
        if not sent and not received:
            return ""
        then, sent_then, received_then = self._samples[0]
        span = now - then
        parts = []
        for arrow, moved, before in (("↓", received, received_then), ("↑", sent, sent_then)):
            if moved:
                rate = f" ({human_size(int((moved - before) / span))}/s)" if span > 0 else ""
                parts.append(f"{arrow} {human_size(moved)}{rate}")
        return "network: " + " ".join(parts)


def wants_meter(stream: IO[str], environ: Mapping[str, str]) -> bool:
    """A person is watching `stream`: a terminal, not CI, not a dumb terminal."""
    if environ.get("CI") or environ.get("GITHUB_ACTIONS") == "true" or environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (ValueError, OSError):
        return False


@contextlib.contextmanager
def traffic_display(environ: Mapping[str, str], stream: IO[str] | None = None) -> Iterator[None]:
    """While the block runs (a `pull`, a `data push`), a live network meter on a terminal's stderr; nothing
    elsewhere. `environ`: the settings' environment (CI, GITHUB_ACTIONS, TERM)."""
    stream = stream or sys.stderr
    if not wants_meter(stream, environ):
        yield
        return
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    meter = TrafficMeter()
    live = Live(
        console=Console(file=stream, highlight=False),
        refresh_per_second=4,
        transient=True,
        get_renderable=lambda: Text(meter.line()),
        # Lines printed meanwhile (a transfer's own line on stderr) go above the meter, not through it; stdout
        # is left alone when the meter is not on it (`--json` keeps stdout for the record).
        redirect_stdout=stream is sys.stdout,
        redirect_stderr=True,
    )
    with live:
        yield
