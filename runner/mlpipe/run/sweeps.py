"""Matrix steps at run time: the `[*]` input directory, and the table comparing the instances' metrics."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mlpipe.runs import RunRecord
from mlpipe.spec.refs import split
from mlpipe.text import table


def gather_dir(path: Path, outputs: Mapping[str, Path], output: str) -> Path:
    """A `[*]` input: one subdirectory per instance, named by the instance, holding its stored output (a
    directory output is the subdirectory itself; a file output lies in it under the output's name)."""
    path.mkdir(parents=True)
    for instance, stored in outputs.items():
        if stored.is_dir():
            (path / instance).symlink_to(stored, target_is_directory=True)
        else:
            (path / instance).mkdir()
            (path / instance / output).symlink_to(stored)
    return path


def instance_values(name: str) -> dict[str, str] | None:
    """`train[lr=0.1,C=1]` -> {'lr': '0.1', 'C': '1'}; None for a step that is no instance."""
    _, selector = split(name)
    if not selector or selector == "*":
        return None
    pairs = [item.partition("=") for item in selector.split(",")]
    return {key: value for key, _, value in pairs}


def sweep_tables(record: RunRecord) -> str:
    """For each matrix step with metrics: one row per instance, a column per matrix key and per metric."""
    groups: dict[str, list[str]] = {}
    for name in record.steps:
        if instance_values(name) is not None:
            groups.setdefault(split(name)[0], []).append(name)
    out = []
    for base, names in groups.items():
        rows_metrics = {n: _flat(record.steps[n].metrics) for n in names}
        metrics = list(dict.fromkeys(m for row in rows_metrics.values() for m in row))
        if not metrics:
            continue
        keys = list(dict.fromkeys(k for n in names for k in instance_values(n) or {}))
        rows = [
            [
                *[(instance_values(n) or {}).get(k, "") for k in keys],
                *[_number(rows_metrics[n].get(m)) for m in metrics],
                record.steps[n].status,
            ]
            for n in names
        ]
        out.append(f"matrix {base}:\n" + table([*keys, *metrics, "status"], rows))
    return "\n\n".join(out)


def _flat(metrics: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Metric names as `run_summary` shows them: bare when one metrics output, else `output.name`."""
    if len(metrics) == 1:
        return dict(next(iter(metrics.values())))
    return {f"{output}.{name}": value for output, values in metrics.items() for name, value in values.items()}


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"
