"""What a job step hands back to GitHub Actions through files and commands: outputs, the job summary, masks."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from mlpipe.errors import Problem
from mlpipe.github.summary import JOB_SUMMARY_LIMIT, truncate
from mlpipe.text import escape_data, escape_property


def write_outputs(path: Path, values: Mapping[str, str]) -> None:
    """Append step outputs to GITHUB_OUTPUT; a multi-line value gets a random heredoc delimiter."""
    lines = []
    for name, value in values.items():
        if "\n" in value:
            delimiter = f"mlpipe_{secrets.token_hex(8)}"
            lines.append(f"{name}<<{delimiter}\n{value}\n{delimiter}")
        else:
            lines.append(f"{name}={value}")
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def append_job_summary(path: Path, markdown: str) -> None:
    """Append to GITHUB_STEP_SUMMARY within its 1 MiB limit (counting what the step already wrote)."""
    try:
        used = path.stat().st_size
    except OSError:
        used = 0
    room = JOB_SUMMARY_LIMIT - used - 1
    if room < 256:  # the step's summary is full: nothing fits, not even the note that it was cut
        return
    with path.open("a", encoding="utf-8") as handle:
        handle.write(truncate(markdown, room, unit="bytes") + "\n")


def mask(value: str) -> str:
    """The command that hides `value` in the rest of the job's log."""
    return f"::add-mask::{value}"


def problem_commands(problems: Sequence[Problem], repository_path: Callable[[str], str]) -> list[str]:
    """One `::error file=…,line=…,col=…::` per pipeline-file problem, located in the repository: GitHub shows
    it on the file's line (and in the pull request's diff), and the log line still reads `file:line:col: …`.

    `repository_path`: a problem's file (as messages name it) as a path relative to the repository root.
    """
    commands = []
    for problem in problems:
        props = (
            f"file={escape_property(repository_path(problem.file))},line={max(problem.line, 1)},"
            f"col={max(problem.col, 1)},title={escape_property('mlpipe: invalid pipeline file')}"
        )
        commands.append(f"::error {props}::{escape_data(str(problem))}")
    return commands
