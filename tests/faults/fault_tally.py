"""Counts of what the fault suite did, for the table in README's "What mlpipe guarantees".

Each scenario records the faults it injected, the mlpipe runs that completed after them, and what it checked:
results reused that differ from what the step produces, and files outside the store and workspace that
changed. The tests assert those last two are zero; the tally only counts, and tests/faults/conftest.py prints
the table at the end of the test run (and writes it as JSON where MLPIPE_FAULT_TALLY names a file).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass


@dataclass
class Row:
    injected: int = 0
    runs_completed: int = 0
    wrong_results: int = 0
    touched_outside: int = 0


_rows: dict[str, Row] = {}
_lock = threading.Lock()


def record(
    fault: str,
    *,
    injected: int = 1,
    runs_completed: int = 0,
    wrong_results: int = 0,
    touched_outside: int = 0,
) -> None:
    """Add to the row of `fault` (a short name: "hostile registry entry", "kill -9 of mlpipe", ...)."""
    with _lock:
        row = _rows.setdefault(fault, Row())
        row.injected += injected
        row.runs_completed += runs_completed
        row.wrong_results += wrong_results
        row.touched_outside += touched_outside


def rows() -> dict[str, dict[str, int]]:
    with _lock:
        return {name: asdict(row) for name, row in sorted(_rows.items())}


def markdown() -> str:
    table = rows()
    lines = [
        "| fault | injected | runs completed | wrong results | files touched outside |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in table.items():
        lines.append(
            f"| {name} | {row['injected']} | {row['runs_completed']} | {row['wrong_results']} "
            f"| {row['touched_outside']} |"
        )
    total = {k: sum(r[k] for r in table.values()) for k in Row.__dataclass_fields__}
    lines.append(
        f"| **all** | {total['injected']} | {total['runs_completed']} | {total['wrong_results']} "
        f"| {total['touched_outside']} |"
    )
    return "\n".join(lines)
