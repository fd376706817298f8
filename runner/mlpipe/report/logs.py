"""The end of a failed step's log, for the run summary and `mlpipe show`: bounded, printable, and only from
the workspace's own log directory (a record's `log` field is data, not a path to follow anywhere)."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from mlpipe.paths import STATE_DIR
from mlpipe.runs import RunRecord

TAIL_LINES = 10
TAIL_BYTES = 16 * 1024
"""Read at most this much of the log's end: a step that printed gigabytes costs no more than one that did not."""
LINE_CHARS = 300

_ESCAPES = r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])"
"""ANSI/VT escape sequences (colours, cursor moves, OSC titles and links); compiled on first use (re's
cache): only a failed step's log tail needs it."""


def failure_tails(record: RunRecord, root: Path) -> dict[str, list[str]]:
    """Failed step -> the last lines of its log (none when the log is gone or empty)."""
    tails = {}
    for name, step in record.steps.items():
        if step.status == "failed" and step.log:
            tails[name] = log_tail(root, step.log)
    return tails


def log_tail(root: Path, log: str, lines: int = TAIL_LINES) -> list[str]:
    path = _log_path(root, log)
    if path is None:
        return []
    try:
        with open(path, "rb") as file:
            size = file.seek(0, 2)
            file.seek(max(0, size - TAIL_BYTES))
            data = file.read(TAIL_BYTES)
    except OSError:  # removed, or not readable: the summary names the path anyway
        return []
    text = data.decode("utf-8", "replace")
    if len(data) == TAIL_BYTES and size > TAIL_BYTES:
        text = text.partition("\n")[2]  # the first line is cut: drop it
    kept = [printable(line) for line in text.split("\n")]
    return [line for line in kept if line.strip()][-lines:]


def printable(line: str) -> str:
    """One log line as it is safe to print: no escape sequences or control characters, at most LINE_CHARS."""
    import unicodedata  # loaded for a failed step's tail only: a run that succeeds prints none

    line = re.sub(_ESCAPES, "", line.replace("\t", "    "))
    line = "".join(c for c in line.split("\r")[-1] if not unicodedata.category(c).startswith("C"))
    return line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1] + "…"


def _log_path(root: Path, log: str) -> Path | None:
    """`log` when it names a file under the workspace's `.mlpipe/logs/`, else None."""
    parts = PurePosixPath(log).parts
    if len(parts) < 3 or parts[:2] != (STATE_DIR, "logs") or ".." in parts or "\\" in log or "\0" in log:
        return None
    path = root.joinpath(*parts)
    logs = (root / STATE_DIR / "logs").resolve()
    try:
        return path if path.resolve().is_relative_to(logs) and path.is_file() else None
    except (OSError, RuntimeError):  # a link loop
        return None
