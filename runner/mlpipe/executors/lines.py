"""Cuts a step's output stream into the lines its log and its live display get (pure: bytes in, lines out)."""

from __future__ import annotations

import time
from collections.abc import Callable

REDRAW_EVERY_S = 10.0
"""How often a progress line redrawn in place (`\\r`) is passed on while it keeps changing."""


class LineSplitter:
    """`\\n` and `\\r\\n` end a line. A bare `\\r` is a redraw in place, as progress bars (tqdm, pip, curl) write
    them: the text before it is the line's state so far. The first state is passed on at once, later ones at most
    once every `redraw_every_s`, and the last before the process ends, so a two-hour progress bar shows in a CI
    log while it runs without writing a line per redraw; a newline makes the state it ends the line, as a terminal
    shows it. A line longer than `max_bytes` is passed on in pieces of `max_bytes`, never held whole; a line of
    exactly `max_bytes` stays whole."""

    def __init__(
        self,
        max_bytes: int,
        *,
        redraw_every_s: float = REDRAW_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_bytes
        self._every = redraw_every_s
        self._clock = clock
        self._pending = bytearray()
        self._redrawn: bytes | None = None
        """The last redrawn state not passed on yet."""
        self._last_redraw_at: float | None = None
        self._after_return = False
        """The last read ended with `\r`: a `\n` first in the next one ends that line."""

    def feed(self, chunk: bytes) -> list[bytes]:
        lines: list[bytes] = []
        if self._after_return and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the `\r\n` a read cut in two: the line the `\r` drew ends here
            if self._redrawn is not None:
                lines.extend(self._pieces(self._redrawn))
                self._redrawn = None
        self._after_return = chunk.endswith(b"\r")
        self._pending += chunk
        start = 0
        pending = self._pending
        while True:
            newline = pending.find(b"\n", start)
            ret = pending.find(b"\r", start, newline if newline >= 0 else len(pending))
            if ret >= 0 and ret != newline - 1:
                self._redraw(bytes(pending[start:ret]), lines)
                start = ret + 1
            elif newline >= 0:
                end = newline - 1 if ret == newline - 1 else newline
                lines.extend(self._pieces(bytes(pending[start:end])))
                self._redrawn = None
                start = newline + 1
            else:
                break
        del pending[:start]
        while len(pending) > self._max:
            lines.append(bytes(pending[: self._max]))
            del pending[: self._max]
        return lines

    def close(self) -> list[bytes]:
        """What is left when the stream ends: an unfinished line, or the last redrawn state."""
        rest = bytes(self._pending)
        self._pending.clear()
        if rest:
            return self._pieces(rest)
        if self._redrawn:
            redrawn, self._redrawn = self._redrawn, None
            return self._pieces(redrawn)
        return []

    def _pieces(self, line: bytes) -> list[bytes]:
        if len(line) <= self._max:
            return [line]
        return [line[at : at + self._max] for at in range(0, len(line), self._max)]

    def _redraw(self, state: bytes, lines: list[bytes]) -> None:
        if not state:
            self._redrawn = None  # `\r` at a line's start, or twice: nothing drawn yet
            return
        now = self._clock()
        if self._last_redraw_at is None or now - self._last_redraw_at >= self._every:
            lines.extend(self._pieces(state))
            self._last_redraw_at = now
            self._redrawn = None
        else:
            self._redrawn = state
