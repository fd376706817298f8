"""A run as GitHub-flavoured markdown: the check run's summary and the job summary. Pure: data in, text out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlpipe.core.compare import RunDiff, diff_markdown
from mlpipe.core.fingerprint import changes, describe_change
from mlpipe.core.plan import Plan, StepPlan
from mlpipe.records import RUN_ID, run_url
from mlpipe.report.text import gpus_text
from mlpipe.runs import RunRecord, StepRecord

CHECK_TEXT_LIMIT = 65_535
"""Characters in a check run's output.summary and output.text."""
JOB_SUMMARY_LIMIT = 1024 * 1024
"""Bytes in one step's job summary (GITHUB_STEP_SUMMARY)."""

ICONS = {
    "ran": "✅",
    "reused": "♻️",
    "failed": "❌",
    "skipped": "⏭️",
    "cancelled": "⏹️",
    "running": "▶️",
    "pending": "⏳",
}
RUN_ICONS = {"succeeded": "✅", "failed": "❌", "cancelled": "⏹️", "running": "▶️"}
COLOURS = {
    "ran": "fill:#2da44e,stroke:#1a7f37,color:#fff",
    "reused": "fill:#54aeff,stroke:#0969da,color:#fff",
    "failed": "fill:#cf222e,stroke:#a40e26,color:#fff",
    "skipped": "fill:#d0d7de,stroke:#8c959f,color:#24292f",
    "cancelled": "fill:#8c959f,stroke:#6e7781,color:#fff",
    "running": "fill:#bf8700,stroke:#9a6700,color:#fff",
    "pending": "fill:#f6f8fa,stroke:#8c959f,color:#24292f",
}


def title(record: RunRecord) -> str:
    counts = record.counts()
    parts = [f"{counts[s]} {s}" for s in ("ran", "reused", "failed", "skipped", "cancelled") if counts.get(s)]
    return f"{record.pipeline}: {record.status}" + (f" ({', '.join(parts)})" if parts else "")


def conclusion(record: RunRecord) -> str:
    """The check run conclusion for a finished run."""
    return {"succeeded": "success", "cancelled": "cancelled"}.get(record.status, "failure")


def render(
    record: RunRecord,
    plan: Plan | None = None,
    *,
    upstream: Mapping[str, Sequence[str]] | None = None,
    run_url: str = "",
    compared: RunDiff | None = None,
    compared_note: str = "",
) -> str:
    """The whole summary: heading, where the code came from, the steps table, the comparison with the base
    run (`compared`, or `compared_note` saying why there is none), the DAG, snapshots, params."""
    icon = RUN_ICONS.get(record.status, "")
    lines = [f"## {icon} mlpipe · {record.pipeline}: {record.status}", "", *_where(record, run_url), ""]
    lines += _steps_table(record, plan)
    lines += _gpus(record)
    if compared is not None:
        lines += ["", diff_markdown(compared).rstrip("\n")]
    elif compared_note:
        lines += ["", f"No comparison with the base branch: {compared_note}."]
    if upstream is not None:
        lines += ["", *mermaid(record, upstream)]
    lines += [*_cache(record), "", *_snapshots(record)]
    if record.params:
        lines += ["", "**Params:** " + ", ".join(f"`{k}={v}`" for k, v in record.params.items())]
    return "\n".join(lines) + "\n"


def plan_title(pipeline: str, plan: Plan) -> str:
    counts: dict[str, int] = {}
    for step in plan.steps.values():
        counts[step.action] = counts.get(step.action, 0) + 1
    words = {"run": "to run", "reuse": "reused", "missing": "missing a stored result"}
    shown = [f"{counts[a]} {words[a]}" for a in ("run", "reuse", "missing") if counts.get(a)]
    return f"{pipeline}: plan ({', '.join(shown) or 'no steps'})"


def render_plan(
    pipeline: str, plan: Plan, *, commit: str = "", run_url: str = "", base: RunRecord | None = None
) -> str:
    """`mlpipe plan --github`: what a run would cost, before any compute; with the base branch's run `base`,
    a step to run also says which fingerprint parts differ from the base's."""
    where = f" at commit `{commit}`" if commit else ""
    link = f" ([workflow run]({run_url}))" if run_url else ""
    lines = [f"## 📋 mlpipe · {pipeline}: plan", "", f"Planned{where}, before running anything{link}.", ""]
    lines += ["| step | will | why / source |", "|---|---|---|"]
    icons = {"run": "▶️ run", "reuse": f"{ICONS['reused']} reuse", "missing": "⚠️ missing"}
    for name, step in plan.steps.items():
        why = "; ".join(step.reasons)
        if step.action == "reuse" and step.result is not None:
            why = reused_from(step.result.provenance)
        elif step.action == "run" and base is not None:
            why = _against_base(step, base) or why
        lines.append(f"| `{_cell(name)}` | {icons.get(step.action, step.action)} | {_cell(why)} |")
    return "\n".join(lines) + "\n"


def _against_base(step: StepPlan, base: RunRecord) -> str:
    old = base.steps.get(step.name)
    if step.fingerprint is None or old is None or not old.parts:
        return ""
    found = [describe_change(*c) for c in changes(old.parts, step.fingerprint.parts)]
    return "vs base: " + "; ".join(found) if found else ""


def _where(record: RunRecord, run_url: str) -> list[str]:
    git = record.git
    run = f"[`{record.run_id}`]({run_url})" if run_url else f"`{record.run_id}`"
    if not git.get("in_repo"):
        return [f"Run {run}, outside a git repository (no commit recorded)."]
    commit = git.get("commit") or "an unborn branch"
    branch = f" on `{git['branch']}`" if git.get("branch") else ""
    lines = [f"Run {run} at commit `{commit}`{branch}."]
    if git.get("dirty"):
        paths = list(git.get("dirty_paths") or [])
        shown = ", ".join(f"`{p}`" for p in paths[:10]) + (", …" if len(paths) > 10 else "")
        lines += ["", f"> [!WARNING]\n> Ran on uncommitted changes ({len(paths)} path(s): {shown})."]
        if git.get("snapshot_ref"):
            lines[-1] += f"\n> The code that ran is at `{git['snapshot_ref']}`."
    else:
        lines[-1] += " Clean working tree."
    return lines


def _steps_table(record: RunRecord, plan: Plan | None) -> list[str]:
    rows = ["| step | status | time | why / source | metrics |", "|---|---|---|---|---|"]
    for name, step in record.steps.items():
        status = step.status
        if status == "pending" and plan is not None and name in plan.steps:
            status_text = f"{ICONS['pending']} will {plan.steps[name].action}"
        else:
            status_text = f"{ICONS.get(status, '')} {status}"
        time = f"{step.duration_s:.1f}s" if step.duration_s is not None else ""
        rows.append(
            f"| `{_cell(name)}` | {status_text} | {time} | {_cell(_detail(name, step, plan))} "
            f"| {_cell(_metrics(step))} |"
        )
    return rows


def _detail(name: str, step: StepRecord, plan: Plan | None) -> str:
    if step.status == "reused":
        return reused_from(step.reused_from or {})
    if step.status in {"failed", "skipped", "cancelled"}:
        return step.error or ""
    reasons = step.reasons or (list(plan.steps[name].reasons) if plan and name in plan.steps else [])
    text = "; ".join(reasons)
    if step.nondeterministic:
        text = "nondeterministic: output differs from the stored result; " + text
    return text


def reused_from(source: Mapping[str, Any]) -> str:
    """`from run <id> at <commit>`, the run a link to its workflow run when the result was made in CI."""
    run = str(source.get("run_id") or "?")
    url = run_url(source.get("run_url"))
    shown = f"[{run}]({url})" if url and RUN_ID.fullmatch(run) else run
    commit = str(source.get("commit") or "")[:12]
    return f"from run {shown}" + (f" at {commit}" if commit else "")


def _gpus(record: RunRecord) -> list[str]:
    """A line per step that had GPUs: which ones, model, memory and driver."""
    lines = [f"- `{name}`: {gpus_text(step.gpus)}" for name, step in record.steps.items() if step.gpus]
    return ["", "**GPUs:**", "", *lines] if lines else []


def _metrics(step: StepRecord, limit: int = 4) -> str:
    flat = [(k, v) for values in step.metrics.values() for k, v in values.items()]
    shown = ", ".join(f"{k}={v:.4g}" for k, v in flat[:limit])
    return shown + (", …" if len(flat) > limit else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def mermaid(record: RunRecord, upstream: Mapping[str, Sequence[str]]) -> list[str]:
    """A flowchart of the steps, each node coloured by its status."""
    ids = {name: f"s{i}" for i, name in enumerate(record.steps)}
    lines = ["```mermaid", "flowchart LR"]
    for name, step in record.steps.items():
        label = name.replace('"', "#quot;")
        lines.append(f'  {ids[name]}["{label}"]:::{step.status}')
    for name in record.steps:
        lines.extend(f"  {ids[up]} --> {ids[name]}" for up in upstream.get(name, ()) if up in ids)
    used = sorted({step.status for step in record.steps.values()})
    lines.extend(f"  classDef {status} {COLOURS[status]}" for status in used if status in COLOURS)
    lines.append("```")
    return lines


def _cache(record: RunRecord) -> list[str]:
    """Where the results were shared: the registry, the repository written, the run record's tag."""
    cache = record.options.get("cache")
    if not isinstance(cache, dict) or not cache.get("registry"):
        return []
    counts = ", ".join(f"{cache[k]} {k}" for k in ("pushed", "exists", "failed") if cache.get(k))
    text = f"**Cache:** `{cache['registry']}`"
    if cache.get("write"):
        text += f"; results written to `{cache['write']}`" + (f" ({counts})" if counts else "")
        if cache.get("run_tag"):
            text += f", this run's record as `{cache['write']}:{cache['run_tag']}`"
    else:
        text += "; read only"
    if cache.get("why"):
        text += f" ({cache['why']})"
    if cache.get("unavailable"):
        text += "; **the registry was unavailable**: " + "; ".join(cache.get("errors") or [])
    return ["", text + "."]


def _snapshots(record: RunRecord) -> list[str]:
    lines = [
        "<details><summary>Code snapshots (git tree hashes)</summary>",
        "",
        "| code | tree |",
        "|---|---|",
    ]
    lines.extend(f"| `{code}` | `{tree}` |" for code, tree in sorted(record.snapshots.items()))
    lines += ["", "</details>"]
    return lines


def truncate(text: str, limit: int = CHECK_TEXT_LIMIT, *, unit: str = "chars") -> str:
    """`text` cut to `limit` characters (or UTF-8 bytes), ending with a note that it was cut."""
    size = len(text.encode()) if unit == "bytes" else len(text)
    if size <= limit:
        return text
    note = f"\n\n… truncated: the full summary is {size:,} {unit}, over GitHub's limit of {limit:,}.\n"
    room = limit - (len(note.encode()) if unit == "bytes" else len(note))
    head = text.encode()[:room].decode("utf-8", "ignore") if unit == "bytes" else text[:room]
    return head + note
