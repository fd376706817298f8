"""Where a run's problems show on GitHub: failures at the line that raised, reruns and dirty runs as notes.

Pure: the run record, each step's sources and the failed steps' logs in; annotations out. Paths are relative to
the repository root, as the Checks API and `::error file=…` want them.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any, Literal

from mlpipe.frozen import frozen
from mlpipe.runs import RunRecord
from mlpipe.text import escape_data, escape_property

Level = Literal["notice", "warning", "failure"]

PER_REQUEST = 50
"""Annotations the Checks API takes in one request; more go in further updates."""

_TRACEBACK_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+)')
_COMPILER = re.compile(r"^(?P<path>[^\s:\"'][^:\"']*?):(?P<line>\d+):(?:\d+:)?\s")
_SNAPSHOT = re.compile(r"/snapshots/trees/[0-9a-f]{40,64}/(?P<rest>.+)$")
LOG_TAIL_LINES = 15
MAX_LINE = 10_000_000


@frozen(kw_only=True)
class Annotation:
    path: str
    line: int
    level: Level
    title: str
    message: str

    def to_api(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "start_line": self.line,
            "end_line": self.line,
            "annotation_level": self.level,
            "title": self.title[:255],
            "message": self.message[:64_000],
        }

    def to_command(self) -> str:
        """The workflow command that shows this annotation without the Checks API."""
        command = {"failure": "error"}.get(self.level, self.level)
        props = f"file={escape_property(self.path)},line={self.line},title={escape_property(self.title)}"
        return f"::{command} {props}::{escape_data(self.message)}"


@frozen(kw_only=True)
class StepSource:
    """What locates one step's problems in the repository."""

    code: str
    """The step's code dir, relative to the repository root ('' for the root)."""
    files: frozenset[str]
    """The step's snapshot files, relative to the repository root."""
    line: int
    """The step's line in the pipeline file."""


@frozen(kw_only=True)
class Layout:
    repo_root: str
    """Absolute path of the repository (or workspace, outside git)."""
    workspace: str
    """The workspace (the pipeline file's dir), relative to the repository root ('' for the root)."""
    pipeline_file: str
    """Relative to the repository root."""
    steps: Mapping[str, StepSource]


def collect(record: RunRecord, layout: Layout, logs: Mapping[str, str]) -> list[Annotation]:
    """Failures first (they matter most and the first request carries them), then warnings, then notices."""
    found: list[Annotation] = []
    notes: list[Annotation] = []
    warnings: list[Annotation] = []
    for name, step in record.steps.items():
        source = layout.steps.get(name)
        step_line = source.line if source else 1
        if step.status == "failed":
            where = failure_location(logs.get(name, ""), layout, source) if source else None
            path, line = where or (layout.pipeline_file, step_line)
            message = step.error or "failed"
            tail = _tail(logs.get(name, ""))
            if tail:
                message += "\n\n" + tail
            found.append(
                Annotation(
                    path=path,
                    line=line,
                    level="failure",
                    title=f"mlpipe: step {name} failed",
                    message=message,
                )
            )
        elif step.status == "ran":
            if step.nondeterministic:
                warnings.append(
                    Annotation(
                        path=layout.pipeline_file,
                        line=step_line,
                        level="warning",
                        title=f"mlpipe: step {name} is nondeterministic",
                        message="It ran again under a stored fingerprint and its output differs from the stored result.",
                    )
                )
            path, line = change_location(step.changed_at, layout, source) or (layout.pipeline_file, step_line)
            notes.append(
                Annotation(
                    path=path,
                    line=line,
                    level="notice",
                    title=f"mlpipe: step {name} ran",
                    message="Why: " + ("; ".join(step.reasons) or "no stored result"),
                )
            )
    git = record.git
    if git.get("dirty"):
        paths = list(git.get("dirty_paths") or [])
        shown = ", ".join(paths[:20]) + (", …" if len(paths) > 20 else "")
        ref = f" The code that ran is at {git['snapshot_ref']}." if git.get("snapshot_ref") else ""
        warnings.insert(
            0,
            Annotation(
                path=layout.pipeline_file,
                line=1,
                level="warning",
                title="mlpipe: run on uncommitted changes",
                message=f"{len(paths)} uncommitted path(s): {shown}.{ref}",
            ),
        )
    return found + warnings + notes


def change_location(
    changed_at: Mapping[str, Any] | None, layout: Layout, source: StepSource | None
) -> tuple[str, int] | None:
    """Where a step that ran for a change shows its notice: the changed file's first changed line, when the file
    is one of the step's snapshot files (a repository path, so within the repository), or a line of the pipeline
    file (a changed param or input); None otherwise (the step's line then)."""
    if not isinstance(changed_at, Mapping) or source is None:
        return None
    path, line = changed_at.get("path"), changed_at.get("line")
    if type(line) is not int or not 1 <= line <= MAX_LINE:
        return None
    if path is None:
        return layout.pipeline_file, line
    if isinstance(path, str) and posixpath.normpath(path) == path and path in source.files:
        return path, line
    return None


def failure_location(log: str, layout: Layout, source: StepSource) -> tuple[str, int] | None:
    """The innermost traceback frame in one of the step's files, else the first `file:line:` error in one."""
    frame: tuple[str, int] | None = None
    compiler: tuple[str, int] | None = None
    for text in log.splitlines():
        match = _TRACEBACK_FRAME.match(text)
        if match:
            path = resolve(match["path"], layout, source)
            if path:
                frame = (path, int(match["line"]))
            continue
        match = _COMPILER.match(text.strip())
        if match and compiler is None:
            path = resolve(match["path"], layout, source)
            if path:
                compiler = (path, int(match["line"]))
    return frame or compiler


def resolve(shown: str, layout: Layout, source: StepSource) -> str | None:
    """The repository path of a path as a log shows it, if it is one of the step's snapshot files."""
    shown = shown.strip()
    candidates: list[str] = []
    if shown.startswith("/"):
        inside = _SNAPSHOT.search(shown)
        if inside:  # a path into the materialized snapshot the step ran in
            candidates.append(_join(source.code, inside["rest"]))
        root = layout.repo_root.rstrip("/") + "/"
        if shown.startswith(root):
            candidates.append(shown[len(root) :])
    else:
        # Logs show workspace paths (the snapshot dir rewritten to the code dir); tools print cwd-relative ones.
        candidates += [_join(layout.workspace, shown), _join(source.code, shown), shown]
    for candidate in candidates:
        normal = posixpath.normpath(candidate)
        if normal in source.files:
            return normal
    return None


def batches(items: list[Annotation], size: int = PER_REQUEST) -> list[list[Annotation]]:
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


def _join(prefix: str, path: str) -> str:
    return posixpath.join(prefix, path) if prefix not in {"", "."} else path


def _tail(log: str) -> str:
    lines = [line for line in log.splitlines() if line.strip()]
    return "\n".join(lines[-LOG_TAIL_LINES:])
