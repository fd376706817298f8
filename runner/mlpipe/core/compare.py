"""Two run records side by side: which steps differ and why, and the metrics diff (`dvc metrics diff`'s shape).

Pure: records and the metrics' declared directions in, a `RunDiff` and its text, markdown and JSON out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import field
from typing import Any, Literal

from mlpipe.core.fingerprint import changes, describe_change
from mlpipe.core.reasons import FileChange, describe_code
from mlpipe.frozen import frozen
from mlpipe.runs import RunRecord
from mlpipe.text import table

DIFF_FORMAT = "mlpipe.diff/1"

StepChange = Literal["changed", "added", "removed", "same"]
Verdict = Literal["better", "worse", "same", "changed", "added", "removed"]


@frozen(kw_only=True)
class Change:
    """One fingerprint part that differs: `params`/`lr`, `code`/``, `inputs`/`data`, ..."""

    part: str
    item: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return describe_change(self.part, self.item, self.old, self.new)


@frozen(kw_only=True)
class StepDiff:
    step: str
    change: StepChange
    status: str | None
    """What the step did in the head run (`ran`, `reused`, ...); None when the head run lacks it."""
    changes: tuple[Change, ...] = ()
    files: tuple[str, ...] = ()
    """For a code change: `git diff --stat` lines of the step's code dir, where the caller could get them."""
    code_files: tuple[FileChange, ...] = ()
    """For a code change: the changed files by repository path, where the caller could get them."""

    def reasons(self) -> list[str]:
        if self.change in {"added", "removed"}:
            return [f"step {self.change}"]
        said = [
            describe_code(str(c.old), str(c.new), list(self.code_files))
            if c.part == "code" and self.code_files
            else str(c)
            for c in self.changes
        ]
        return said or (["fingerprint changed"] if self.change == "changed" else [])


@frozen(kw_only=True)
class MetricDiff:
    step: str
    output: str
    metric: str
    value: float | None
    base: float | None
    higher_is_better: bool | None = None

    @property
    def delta(self) -> float | None:
        if self.value is None or self.base is None:
            return None
        return self.value - self.base

    @property
    def verdict(self) -> Verdict:
        if self.base is None:
            return "added"
        if self.value is None:
            return "removed"
        delta = self.value - self.base
        if delta == 0 or math.isclose(self.value, self.base, rel_tol=1e-12, abs_tol=0.0):
            return "same"
        if self.higher_is_better is None:
            return "changed"
        return "better" if (delta > 0) == self.higher_is_better else "worse"


@frozen(kw_only=True)
class RunDiff:
    base: RunRecord
    head: RunRecord
    steps: tuple[StepDiff, ...] = ()
    metrics: tuple[MetricDiff, ...] = field(default_factory=tuple)

    def differing(self) -> tuple[StepDiff, ...]:
        return tuple(s for s in self.steps if s.change != "same")

    def metric_changes(self) -> tuple[MetricDiff, ...]:
        return tuple(m for m in self.metrics if m.verdict != "same")


def diff_runs(
    base: RunRecord,
    head: RunRecord,
    *,
    directions: Mapping[tuple[str, ...], bool] | None = None,
    files: Mapping[str, Sequence[str]] | None = None,
    code_files: Mapping[str, Sequence[FileChange]] | None = None,
    order: Sequence[str] = (),
) -> RunDiff:
    """`directions`: (step, metrics output) or (step, metrics output, metric) -> higher-is-better, the metric's
    own direction first; `files`: step -> diff stat lines of its code; `code_files`: step -> the changed files
    of its code; `order`: the pipeline's steps in file order (records keep theirs sorted); others follow."""
    directions = directions or {}
    files = files or {}
    code_files = code_files or {}
    rank = {name: i for i, name in enumerate(order)}
    names = sorted(_names(base.steps, head.steps), key=lambda n: rank.get(n, len(rank)))
    steps = [_step_diff(name, base, head, files.get(name, ()), code_files.get(name, ())) for name in names]
    metrics = []
    for name in names:
        old = base.steps[name].metrics if name in base.steps else {}
        new = head.steps[name].metrics if name in head.steps else {}
        for output in _names(old, new):
            a, b = old.get(output, {}), new.get(output, {})
            for metric in _names(a, b):
                better = directions.get((name, output, metric), directions.get((name, output)))
                metrics.append(
                    MetricDiff(
                        step=name,
                        output=output,
                        metric=metric,
                        value=b.get(metric),
                        base=a.get(metric),
                        higher_is_better=better,
                    )
                )
    return RunDiff(base=base, head=head, steps=tuple(steps), metrics=tuple(metrics))


def _names(first: Mapping[str, Any], second: Mapping[str, Any]) -> list[str]:
    """Keys in the head's order, then those only the base has."""
    return list(dict.fromkeys([*second, *first]))


def _step_diff(
    name: str, base: RunRecord, head: RunRecord, files: Sequence[str], code_files: Sequence[FileChange]
) -> StepDiff:
    old, new = base.steps.get(name), head.steps.get(name)
    if new is None:
        return StepDiff(step=name, change="removed", status=None)
    if old is None:
        return StepDiff(step=name, change="added", status=new.status)
    found = tuple(
        Change(part=p, item=i, old=a, new=b) for p, i, a, b in changes(old.parts or {}, new.parts or {})
    )
    same = old.fingerprint == new.fingerprint and not found
    code_changed = any(c.part == "code" for c in found)
    return StepDiff(
        step=name,
        change="same" if same else "changed",
        status=new.status,
        changes=found,
        files=tuple(files) if code_changed else (),
        code_files=tuple(code_files) if code_changed else (),
    )


# -- rendering ---------------------------------------------------------------------------------------------


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _delta(metric: MetricDiff) -> str:
    delta = metric.delta
    if delta is None:
        return metric.verdict
    return "0" if metric.verdict == "same" else f"{delta:+.6g}"


_MARKS = {"better": "better", "worse": "worse"}


def _arrow(metric: MetricDiff) -> str:
    """Green when better, red when worse; the arrow says which way the value went."""
    verdict, delta = metric.verdict, metric.delta or 0
    way = "▲" if delta > 0 else "▼"
    if verdict == "better":
        return f"🟢 {way}"
    if verdict == "worse":
        return f"🔴 {way}"
    if verdict == "changed":
        return way
    return ""


def _where(record: RunRecord) -> str:
    commit = (record.git.get("commit") or "")[:12]
    return f"{record.run_id}" + (f" ({commit})" if commit else "")


def diff_text(diff: RunDiff, *, all_metrics: bool = False) -> str:
    lines = [f"base {_where(diff.base)}", f"head {_where(diff.head)}", ""]
    differing = diff.differing()
    if differing:
        rows = [[s.step, s.change, "; ".join(s.reasons())] for s in differing]
        lines.append(table(["step", "change", "why"], rows))
        for s in differing:
            lines.extend(f"  {s.step}: {line}" for line in s.files)
    else:
        lines.append("no step differs")
    lines.append("")
    shown = diff.metrics if all_metrics else diff.metric_changes()
    if shown:
        rows = [
            [
                m.step,
                f"{m.output}.{m.metric}",
                _number(m.value),
                _number(m.base),
                _delta(m),
                _MARKS.get(m.verdict, ""),
            ]
            for m in shown
        ]
        lines.append(table(["step", "metric", "value", "base", "change", ""], rows))
    else:
        lines.append("no metric changed" if diff.metrics else "no metrics recorded")
    return "\n".join(lines)


def diff_markdown(diff: RunDiff, *, heading: str = "###") -> str:
    """For a job summary or a check run: the steps that differ from the base run and the metrics diff."""
    out = [f"{heading} Compared with {_where(diff.base)}", ""]
    differing = diff.differing()
    if differing:
        out += ["| step | change | why |", "| --- | --- | --- |"]
        for s in differing:
            why = "<br>".join(_md(r) for r in s.reasons())
            if s.files:
                why += "<br>" + "<br>".join(f"`{_md(f)}`" for f in s.files)
            out.append(f"| `{_md(s.step)}` | {s.change} | {why} |")
    else:
        out.append("No step differs from the base run.")
    out.append("")
    if diff.metrics:
        out += ["| step | metric | value | base | change | |", "| --- | --- | ---: | ---: | ---: | --- |"]
        for m in diff.metrics:
            out.append(
                f"| `{_md(m.step)}` | `{_md(m.output)}.{_md(m.metric)}` | {_number(m.value)} | "
                f"{_number(m.base)} | {_delta(m)} | {_arrow(m)} |"
            )
    else:
        out.append("No metrics recorded.")
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def diff_json(diff: RunDiff) -> dict[str, Any]:
    return {
        "format": DIFF_FORMAT,
        "base": _run_json(diff.base),
        "head": _run_json(diff.head),
        "steps": [
            {
                "step": s.step,
                "change": s.change,
                "status": s.status,
                "reasons": s.reasons() if s.change != "same" else [],
                "changes": [{"part": c.part, "item": c.item, "old": c.old, "new": c.new} for c in s.changes],
                "files": list(s.files),
            }
            for s in diff.steps
        ],
        "metrics": [
            {
                "step": m.step,
                "output": m.output,
                "metric": m.metric,
                "value": m.value,
                "base": m.base,
                "delta": m.delta,
                "higher_is_better": m.higher_is_better,
                "verdict": m.verdict,
            }
            for m in diff.metrics
        ],
    }


def _run_json(record: RunRecord) -> dict[str, Any]:
    return {"run_id": record.run_id, "commit": record.git.get("commit"), "status": record.status}
