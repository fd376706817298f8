"""Each metric's trend over the last runs of a branch, as mermaid `xychart-beta` line charts for the job summary.

Pure: run records in, markdown lines out. The records may come from a registry any runner writes to, so every
name and value is checked before it reaches the chart: names keep a few safe characters, values are finite
numbers, and the number of points and charts is bounded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from mlpipe.report.text import run_metrics
from mlpipe.runs import RunRecord

POINTS = 20
"""Runs shown per chart, the newest (this run last)."""
CHARTS = 8
"""Metrics charted; the rest are named in a line."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/ ()+-]")
_NAME_CHARS = 60


def trend_charts(branch: str, history: Sequence[RunRecord], current: RunRecord) -> list[str]:
    """Markdown: a line chart per metric over `history` (the branch's runs, newest first) and `current`.

    A metric gets a chart when at least two of the runs recorded it. Nothing when no metric has a history.
    """
    earlier = [record for record in history if record.run_id != current.run_id]
    runs = [*reversed(earlier[: POINTS - 1]), current]
    values = [run_metrics(record) for record in runs]
    labels = _labels(runs, current)
    names = list(dict.fromkeys(name for found in values for name in found))
    charted = [name for name in names if sum(name in found for found in values) >= 2]
    if not charted:
        return []
    lines = [
        "",
        f"### Metrics over the last {len(runs) - 1} run(s) of `{_safe(branch)}` and this run",
    ]
    for name in charted[:CHARTS]:
        points = [(label, found[name]) for label, found in zip(labels, values, strict=True) if name in found]
        lines += _chart(name, points)
    if len(charted) > CHARTS:
        rest = ", ".join(f"`{_safe(name)}`" for name in charted[CHARTS:])
        lines += ["", f"Not charted ({len(charted) - CHARTS} more): {rest}."]
    return lines


def _chart(name: str, points: Sequence[tuple[str, float]]) -> list[str]:
    shown = _safe(name)
    axis = ", ".join(f'"{label}"' for label, _ in points)
    line = ", ".join(_number(value) for _, value in points)
    return [
        "",
        "```mermaid",
        "xychart-beta",
        f'  title "{shown}"',
        f"  x-axis [{axis}]",
        f'  y-axis "{_safe(name.rsplit(".", 1)[-1])}"',
        f"  line [{line}]",
        "```",
    ]


def _labels(runs: Sequence[RunRecord], current: RunRecord) -> list[str]:
    """Each run's short commit (`abc1234`, then `abc1234 (2)` for a second run of it); `this run` last."""
    labels: list[str] = []
    seen: dict[str, int] = {}
    for record in runs:
        if record is current:
            labels.append("this run")
            continue
        commit = record.git.get("commit") if isinstance(record.git, dict) else None
        short = commit[:7] if isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{7,64}", commit) else "?"
        seen[short] = seen.get(short, 0) + 1
        labels.append(short if seen[short] == 1 else f"{short} ({seen[short]})")
    return labels


def _safe(text: str) -> str:
    """A name inside a quoted mermaid string or markdown code: no quote, backtick, newline or markup."""
    return _UNSAFE.sub("_", text)[:_NAME_CHARS]


def _number(value: float) -> str:
    """Plain decimal notation (mermaid's charts read no exponents), six significant digits."""
    if value == 0:
        return "0"
    digits = min(20, max(0, 5 - math.floor(math.log10(abs(value)))))
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
