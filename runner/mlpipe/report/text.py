"""Run records and plans as text tables and versioned JSON. Pure: data in, strings and dicts out."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from mlpipe.core.plan import Plan
from mlpipe.records import run_url
from mlpipe.runs import RunRecord
from mlpipe.text import table

PLAN_FORMAT = "mlpipe.plan/1"
RUNS_FORMAT = "mlpipe.runs/1"


def _metrics_text(metrics: dict[str, dict[str, float]], limit: int = 3) -> str:
    flat = [(k, v) for values in metrics.values() for k, v in values.items()]
    shown = ", ".join(f"{k}={v:.4g}" for k, v in flat[:limit])
    return shown + (", ..." if len(flat) > limit else "")


def gpus_text(gpus: Sequence[Mapping[str, Any]] | None) -> str:
    """The GPUs a step ran on, as recorded: `GPUs 0,1: NVIDIA H100 (81559 MiB, driver 550.54)`."""
    if not gpus:
        return ""
    models = [_gpu_model(gpu) for gpu in gpus]
    noun = "GPU" if len(gpus) == 1 else "GPUs"
    if len(set(models)) == 1:
        return f"{noun} {','.join(str(gpu.get('index')) for gpu in gpus)}: {models[0]}"
    return f"{noun} " + "; ".join(
        f"{gpu.get('index')}: {model}" for gpu, model in zip(gpus, models, strict=True)
    )


def _gpu_model(gpu: Mapping[str, Any]) -> str:
    facts = [
        f"{gpu['memory_mib']} MiB" if gpu.get("memory_mib") else "",
        f"driver {gpu.get('driver') or '?'}",
    ]
    return f"{gpu.get('name') or 'unknown model'} ({', '.join(f for f in facts if f)})"


def where(record: RunRecord) -> str:
    """The code a run ran on, in words: a commit, a dirty tree, or no git at all."""
    git = record.git
    if not git.get("in_repo"):
        return "outside a git repository (no commit recorded)"
    commit = (git.get("commit") or "")[:12] or "an unborn branch"
    dirty = f" + {len(git.get('dirty_paths') or [])} uncommitted change(s)" if git.get("dirty") else ""
    return f"at {commit}{dirty}"


def run_summary(record: RunRecord, tails: Mapping[str, Sequence[str]] | None = None) -> str:
    """The run's head line and step table; with `tails` (failed step -> its log's last lines, from
    `report.logs.failure_tails`), each failed step's error, log path and last lines below the table."""
    return _summary(record) + failures_text(record, tails or {})


def failures_text(record: RunRecord, tails: Mapping[str, Sequence[str]]) -> str:
    """What to act on for each failed step: its error, where its whole log is, its last lines."""
    blocks = []
    for name, step in record.steps.items():
        shown = tails.get(name) or []
        if step.status != "failed" or not (step.log or shown):  # the table said all there is
            continue
        where_log = f" (log: {step.log})" if step.log else ""
        lines = [f"{name} failed: {step.error or 'no error recorded'}{where_log}"]
        if shown:
            lines.append(f"  last {len(shown)} line(s) of its log:")
            # `  | `: a log line never starts a printed line, so it cannot pass for a workflow command.
            lines.extend(f"  | {line}" for line in shown)
        blocks.append("\n".join(lines))
    return "".join("\n\n" + block for block in blocks)


def _summary(record: RunRecord) -> str:
    rows = []
    for name, step in record.steps.items():
        if step.status == "reused":
            source = (step.reused_from or {}).get("run_id") or ""
            detail = f"from {source}"
        elif step.status == "ran":
            detail = "; ".join(step.reasons)
            if step.nondeterministic:
                detail = "NONDETERMINISTIC: output differs from the stored result; " + detail
        else:
            detail = step.error or ""
        if step.gpus:
            detail = "; ".join(d for d in (detail, gpus_text(step.gpus)) if d)
        duration = f"{step.duration_s:.1f}s" if step.duration_s is not None else ""
        rows.append([name, step.status, duration, _metrics_text(step.metrics), detail])
    counts = record.counts()
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    head = f"run {record.run_id}: {record.status} ({tally}) {where(record)}"
    return head + "\n" + table(["step", "status", "time", "metrics", "detail"], rows)


def plan_text(plan: Plan) -> str:
    rows = []
    for name, step in plan.steps.items():
        action = {"missing": "MISSING"}.get(step.action, step.action)
        rows.append([name, action, "; ".join(step.reasons)])
    return table(["step", "action", "why"], rows)


def plan_json(pipeline: str, plan: Plan) -> dict[str, Any]:
    return {
        "format": PLAN_FORMAT,
        "pipeline": pipeline,
        "steps": [
            {
                "name": name,
                "action": s.action,
                "selected": s.selected,
                "forced": s.forced,
                "fingerprint": s.fingerprint.key if s.fingerprint else None,
                "reasons": list(s.reasons),
                "reused_from": dict(s.result.provenance).get("run_id") if s.result else None,
                # As the run record's: a repository path, or None for the pipeline file.
                "changed_at": {"path": s.spot.path, "line": s.spot.line} if s.spot else None,
            }
            for name, s in plan.steps.items()
        ],
    }


def runs_json(records: Sequence[RunRecord], *, metrics: bool = False) -> dict[str, Any]:
    """With `metrics`, each run also has its `params` and `metrics` (`step.output.key` -> value)."""
    rows = [
        {**run_row(r), "params": dict(r.params), "metrics": run_metrics(r)} if metrics else run_row(r)
        for r in records
    ]
    return {"format": RUNS_FORMAT, "runs": rows}


LARGEST_METRIC = 1e15
"""Larger values are left out of tables and charts (a record from a registry may hold anything)."""


def run_metrics(record: RunRecord) -> dict[str, float]:
    """`step.output.key` -> value, for every finite number the run's steps recorded (ran or reused)."""
    found: dict[str, float] = {}
    steps = record.steps if isinstance(record.steps, dict) else {}
    for name, step in steps.items():
        metrics = getattr(step, "metrics", None)
        if not isinstance(metrics, dict):
            continue
        for output, values in metrics.items():
            if not isinstance(values, dict):
                continue
            for key, value in values.items():
                if type(value) in (int, float) and math.isfinite(value) and abs(value) < LARGEST_METRIC:
                    found[f"{name}.{output}.{key}"] = float(value)
    return found


def runs_metrics_text(records: Sequence[RunRecord]) -> str:
    """`mlpipe runs --metrics`: a row per run, a column per param and per metric, as `dvc exp show` has them."""
    params = list(dict.fromkeys(k for r in records if isinstance(r.params, dict) for k in r.params))
    found = [run_metrics(r) for r in records]
    metrics = list(dict.fromkeys(name for values in found for name in values))
    rows = []
    for record, values in zip(records, found, strict=True):
        given = record.params if isinstance(record.params, dict) else {}
        commit = (str(record.git.get("commit") or "-"))[:10] + ("*" if record.git.get("dirty") else "")
        rows.append(
            [
                _cell(record.run_id),
                _cell(record.status),
                _cell(commit),
                *(_param(given[p]) if p in given else "-" for p in params),
                *(f"{values[m]:.4g}" if m in values else "-" for m in metrics),
            ]
        )
    headers = ["run", "status", "commit", *(_cell(p) for p in params), *(_cell(m) for m in metrics)]
    return table(headers, rows)


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return _cell(text)


def _cell(text: str, limit: int = 40) -> str:
    """One printable table cell: what a record holds may come from any runner's registry pushes."""
    shown = "".join(c if c.isprintable() else "?" for c in str(text))
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def run_row(record: RunRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "pipeline": record.pipeline,
        "status": record.status,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "commit": record.git.get("commit"),
        "branch": record.git.get("branch"),
        "dirty": bool(record.git.get("dirty")),
        "steps": record.counts(),
    }


def runs_text(records: Sequence[RunRecord]) -> str:
    rows = []
    for r in records:
        row = run_row(r)
        counts = ", ".join(f"{n} {s}" for s, n in sorted(row["steps"].items()))
        commit = (row["commit"] or "-")[:10] + ("*" if row["dirty"] else "")
        rows.append([r.run_id, r.pipeline, r.status, commit, counts])
    return table(["run", "pipeline", "status", "commit", "steps"], rows)


def show_text(record: RunRecord, tails: Mapping[str, Sequence[str]] | None = None) -> str:
    git = record.git
    lines = [
        f"run:       {record.run_id}",
        f"pipeline:  {record.pipeline} ({record.pipeline_file})",
        f"status:    {record.status}",
        f"started:   {record.started_at}",
        f"ended:     {record.ended_at or '-'}",
        f"commit:    {git.get('commit') or '-'} on {git.get('branch') or git.get('ref') or '-'}",
        f"dirty:     {'yes' if git.get('dirty') else 'no'}"
        + (f" ({len(git.get('dirty_paths') or [])} paths)" if git.get("dirty") else ""),
    ]
    if git.get("snapshot_ref"):
        lines.append(f"code ref:  {git['snapshot_ref']}")
    ci_run = run_url(record.ci.get("run_url")) if isinstance(record.ci, dict) else None
    if ci_run:
        lines.append(f"CI run:    {ci_run}")
    if record.params:
        lines.append("params:    " + ", ".join(f"{k}={v}" for k, v in record.params.items()))
    lines.append("")
    lines.append(run_summary(record, tails).split("\n", 1)[1])
    return "\n".join(lines)
