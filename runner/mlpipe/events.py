"""What the backends have to say while they work (a registry given up, an entry refused, a transfer and its
time), as events instead of prints. A backend is handed a `Sink` where it is made and calls it with a `Notice`;
the default sink, `to_stderr`, prints each notice as one line on stderr. A leaf: every part may import it, so
no backend needs the terminal reporter to be heard."""

from __future__ import annotations

import sys
import threading
from typing import Literal, Protocol

from mlpipe.frozen import frozen

NoticeKind = Literal["warning", "cache", "message"]
"""`warning`: something was ignored or given up and the run goes on; `cache`: what a registry transfer did and
took; `message`: anything else worth a line."""

_PREFIXES: dict[NoticeKind, str] = {
    "warning": "mlpipe: warning: ",
    "cache": "mlpipe: cache: ",
    "message": "mlpipe: ",
}


@frozen(kw_only=True)
class Notice:
    """A message for the user: an info line, a warning or an error."""

    kind: NoticeKind
    text: str

    @property
    def line(self) -> str:
        """The notice as the user reads it."""
        return _PREFIXES[self.kind] + self.text


class Sink(Protocol):
    def __call__(self, notice: Notice, /) -> None: ...


def to_stderr(notice: Notice) -> None:
    """The sink a backend gets when its caller names none: one line on stderr, flushed."""
    print(notice.line, file=sys.stderr, flush=True)


class Relay:
    """A sink whose receiver is chosen later: a run's store is opened before its reporters exist. Notices go to
    `fallback` until `attach` names the receiver (a run's reporters), from then on to it. Called from any thread
    (the store's push threads, the steps' workers); the receiver is swapped under a lock."""

    def __init__(self, fallback: Sink = to_stderr) -> None:
        self._receiver = fallback
        self._lock = threading.Lock()

    def attach(self, receiver: Sink) -> None:
        with self._lock:
            self._receiver = receiver

    def __call__(self, notice: Notice, /) -> None:
        with self._lock:
            receiver = self._receiver
        receiver(notice)


def warning(text: str) -> Notice:
    return Notice(kind="warning", text=text)


def cache_note(text: str) -> Notice:
    return Notice(kind="cache", text=text)


def message(text: str) -> Notice:
    return Notice(kind="message", text=text)


class Traffic:
    """Bytes this process moved over the network so far (registry blobs both ways, URL downloads): counted by
    the backends as the bytes pass, read by a live meter on a terminal (`report.terminal`). Counting is a lock
    and two additions per chunk of a megabyte or so."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent = 0
        self._received = 0

    def add(self, *, sent: int = 0, received: int = 0) -> None:
        with self._lock:
            self._sent += sent
            self._received += received

    def totals(self) -> tuple[int, int]:
        """(sent, received) bytes so far."""
        with self._lock:
            return self._sent, self._received


TRAFFIC = Traffic()
"""The process's one counter: every transfer adds to it, whichever store or fetcher moves the bytes."""
