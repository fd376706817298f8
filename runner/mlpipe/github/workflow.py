"""What a job step hands back to GitHub Actions through files and commands: outputs, the job summary, masks."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path

from mlpipe.github.summary import JOB_SUMMARY_LIMIT, truncate


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
