"""The markdown summary of a run: pure, from a record."""

from __future__ import annotations

from mlpipe.github.summary import conclusion, mermaid, render, title, truncate
from mlpipe.runs import RunRecord, StepRecord


def record(**git: object) -> RunRecord:
    return RunRecord(
        run_id="20260101T000000000Z-0123456789abcdef",
        pipeline="digits",
        pipeline_file="mlpipe.yaml",
        started_at="2026-01-01T00:00:00.000Z",
        status="failed",
        git={"in_repo": True, "commit": "f" * 40, "branch": "main", "dirty": False, **git},
        snapshots={"steps/train": "1" * 40, "steps/prepare": "2" * 40},
        params={"C": 5.0},
        steps={
            "prepare": StepRecord(
                status="reused", reused_from={"run_id": "20251231T000000000Z-aaaa", "commit": "e" * 40}
            ),
            "train": StepRecord(
                status="ran",
                duration_s=12.25,
                reasons=["param C: 10.0 -> 5.0"],
                metrics={"m": {"acc": 0.98765}},
            ),
            "eval[split=a|b]": StepRecord(status="failed", duration_s=1.0, error="exited with code 1"),
            "report": StepRecord(status="skipped", error="upstream eval did not succeed"),
        },
    )


def test_title_and_conclusion() -> None:
    r = record()
    assert title(r) == "digits: failed (1 ran, 1 reused, 1 failed, 1 skipped)"
    assert conclusion(r) == "failure"
    r.status = "succeeded"
    assert conclusion(r) == "success"
    r.status = "cancelled"
    assert conclusion(r) == "cancelled"


def test_the_summary_names_steps_sources_metrics_commit_and_snapshots() -> None:
    text = render(
        record(), upstream={"train": ["prepare"], "eval[split=a|b]": ["train"]}, run_url="https://x/runs/1"
    )
    lines = text.splitlines()
    assert lines[0] == "## ❌ mlpipe · digits: failed"
    assert (
        f"Run [`20260101T000000000Z-0123456789abcdef`](https://x/runs/1) at commit `{'f' * 40}` on `main`. Clean working tree."
        in lines
    )
    assert f"| `prepare` | ♻️ reused |  | from run 20251231T000000000Z-aaaa at {'e' * 12} |  |" in lines
    assert "| `train` | ✅ ran | 12.2s | param C: 10.0 -> 5.0 | acc=0.9877 |" in lines
    assert "| `eval[split=a\\|b]` | ❌ failed | 1.0s | exited with code 1 |  |" in lines
    assert f"| `steps/train` | `{'1' * 40}` |" in lines
    assert "**Params:** `C=5.0`" in lines


def test_the_mermaid_dag_colours_nodes_by_status() -> None:
    lines = mermaid(
        record(), {"train": ["prepare"], "eval[split=a|b]": ["train"], "report": ["eval[split=a|b]"]}
    )
    assert lines[:2] == ["```mermaid", "flowchart LR"]
    assert '  s0["prepare"]:::reused' in lines and '  s2["eval[split=a|b]"]:::failed' in lines
    assert "  s0 --> s1" in lines and "  s2 --> s3" in lines
    assert {line.split()[1] for line in lines if "classDef" in line} == {"failed", "ran", "reused", "skipped"}


def test_a_dirty_run_warns_and_names_its_code_ref() -> None:
    text = render(record(dirty=True, dirty_paths=["a.py", "b.py"], snapshot_ref="refs/mlpipe/runs/x"))
    assert (
        "> [!WARNING]\n> Ran on uncommitted changes (2 path(s): `a.py`, `b.py`).\n> The code that ran is at `refs/mlpipe/runs/x`."
        in text
    )
    assert "Clean working tree" not in text


def test_outside_git() -> None:
    assert "outside a git repository" in render(record(in_repo=False))


def test_truncation_keeps_within_the_limits_and_says_so() -> None:
    assert truncate("short") == "short"
    cut = truncate("x" * 70_000)
    assert len(cut) == 65_535 and cut.endswith("over GitHub's limit of 65,535.\n")
    cut_bytes = truncate("é" * 600_000, 1024 * 1024, unit="bytes")
    assert (
        len(cut_bytes.encode()) <= 1024 * 1024
        and "truncated: the full summary is 1,200,000 bytes" in cut_bytes
    )


def test_the_registry_the_results_went_to() -> None:
    r = record()
    r.options["cache"] = {
        "registry": "oci://ghcr.io/o/r/mlpipe-cache",
        "write": "o/r/mlpipe-cache",
        "pushed": 2,
        "exists": 1,
        "run_tag": "run.abc.r1",
        "why": "protected ref: writes the trusted repository",
        "unavailable": False,
    }
    assert (
        "**Cache:** `oci://ghcr.io/o/r/mlpipe-cache`; results written to `o/r/mlpipe-cache` (2 pushed, 1 exists), "
        "this run's record as `o/r/mlpipe-cache:run.abc.r1` (protected ref: writes the trusted repository)."
    ) in render(r).splitlines()
    r.options["cache"] = {
        "registry": "oci://x/y",
        "write": None,
        "why": "a pull request from a fork is untrusted: read-only",
    }
    assert (
        "**Cache:** `oci://x/y`; read only (a pull request from a fork is untrusted: read-only)." in render(r)
    )


def test_a_gpus_line_per_step_that_had_gpus() -> None:
    r = record()
    gpu = {"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559, "driver": "550.54.15"}
    r.steps["train"].gpus = [{"index": "0", **gpu}]
    r.steps["eval[split=a|b]"].gpus = [{"index": "1", **gpu}, {"index": "2", **gpu}]

    lines = render(r).splitlines()

    start = lines.index("**GPUs:**")
    assert lines[start - 2].startswith("| `report` |")
    assert lines[start : start + 5] == [
        "**GPUs:**",
        "",
        "- `train`: GPU 0: NVIDIA H100 80GB HBM3 (81559 MiB, driver 550.54.15)",
        "- `eval[split=a|b]`: GPUs 1,2: NVIDIA H100 80GB HBM3 (81559 MiB, driver 550.54.15)",
        "",
    ]


def test_no_gpus_no_gpus_section() -> None:
    assert "GPUs" not in render(record())
