"""compare.py: which steps differ between two run records, and the metrics diff, as text, markdown and JSON."""

from __future__ import annotations

from typing import Any

from mlpipe.core.compare import DIFF_FORMAT, MetricDiff, diff_json, diff_markdown, diff_runs, diff_text
from mlpipe.runs import RunRecord, StepRecord


def parts(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"schema": 1, "run": ["python train.py"], "params": {"lr": 0.1}, "inputs": {}}
    base["code"] = "a" * 40
    return {**base, **overrides}


def record(run_id: str, commit: str, steps: dict[str, StepRecord]) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        pipeline="p",
        pipeline_file="mlpipe.yaml",
        started_at="2026-11-25T14:00:00.000Z",
        status="succeeded",
        git={"in_repo": True, "commit": commit},
        steps=steps,
    )


def step(fingerprint: str, status: str = "ran", metrics: Any = None, **part_overrides: Any) -> StepRecord:
    return StepRecord(
        status=status,  # type: ignore[arg-type]
        fingerprint=fingerprint,
        parts=parts(**part_overrides),
        metrics=metrics or {},
    )


BASE = record(
    "20261125T140000000Z-aaaa",
    "1" * 40,
    {
        "prepare": step("f1"),
        "train": step("f2", metrics={"scores": {"acc": 0.9, "loss": 0.3, "gone": 1.0}}),
        "old": step("f3"),
    },
)
HEAD = record(
    "20261125T150000000Z-bbbb",
    "2" * 40,
    {
        "prepare": step("f1", status="reused"),
        "train": step(
            "f4",
            metrics={"scores": {"acc": 0.95, "loss": 0.4, "new": 2.0}},
            code="b" * 40,
            params={"lr": 0.2},
        ),
        "report": step("f5"),
    },
)


def test_steps_that_differ_name_the_parts_that_changed() -> None:
    diff = diff_runs(BASE, HEAD, files={"train": ["train.py | 2 +-"], "prepare": ["x | 1 +"]})

    assert [(s.step, s.change, s.status) for s in diff.steps] == [
        ("prepare", "same", "reused"),
        ("train", "changed", "ran"),
        ("report", "added", "ran"),
        ("old", "removed", None),
    ]
    train = diff.steps[1]
    assert train.reasons() == ["code changed (aaaaaaaaaaaa -> bbbbbbbbbbbb)", "param lr: 0.1 -> 0.2"]
    assert train.files == ("train.py | 2 +-",)
    assert diff.steps[0].files == ()  # no code change: the stat is not shown


def test_a_metrics_own_direction_beats_its_outputs() -> None:
    directions = {("train", "scores"): True, ("train", "scores", "loss"): False}
    diff = diff_runs(BASE, HEAD, directions=directions)

    assert [(m.metric, m.verdict) for m in diff.metrics][:2] == [("acc", "better"), ("loss", "worse")]
    only_loss = diff_runs(BASE, HEAD, directions={("train", "scores", "loss"): False})
    assert [(m.metric, m.verdict) for m in only_loss.metrics][:2] == [("acc", "changed"), ("loss", "worse")]


def test_metrics_diff_has_value_base_delta_and_a_verdict_by_direction() -> None:
    diff = diff_runs(BASE, HEAD, directions={("train", "scores"): True})

    rows = [(m.metric, m.value, m.base, m.verdict) for m in diff.metrics]
    assert rows == [
        ("acc", 0.95, 0.9, "better"),
        ("loss", 0.4, 0.3, "better"),  # the direction is the output's: it holds for every metric in it
        ("new", 2.0, None, "added"),
        ("gone", None, 1.0, "removed"),
    ]
    assert abs((diff.metrics[0].delta or 0) - 0.05) < 1e-12


def test_verdicts() -> None:
    def verdict(value: float | None, base: float | None, better: bool | None) -> str:
        return MetricDiff(
            step="s", output="o", metric="m", value=value, base=base, higher_is_better=better
        ).verdict

    assert verdict(1.0, 1.0, True) == "same"
    assert verdict(2.0, 1.0, None) == "changed"
    assert verdict(2.0, 1.0, False) == "worse"
    assert verdict(0.5, 1.0, False) == "better"


def test_text() -> None:
    text = diff_text(diff_runs(BASE, HEAD, directions={("train", "scores"): False}))

    assert text.splitlines() == (
        [
            "base 20261125T140000000Z-aaaa (111111111111)",
            "head 20261125T150000000Z-bbbb (222222222222)",
            "",
            "step    change   why",
            "------  -------  -----------------------------------------------------------------",
            "train   changed  code changed (aaaaaaaaaaaa -> bbbbbbbbbbbb); param lr: 0.1 -> 0.2",
            "report  added    step added",
            "old     removed  step removed",
            "",
            "step   metric       value  base  change",
            "-----  -----------  -----  ----  -------  -----",
            "train  scores.acc   0.95   0.9   +0.05    worse",
            "train  scores.loss  0.4    0.3   +0.1     worse",
            "train  scores.new   2      -     added",
            "train  scores.gone  -      1     removed",
        ]
    )


def test_identical_runs() -> None:
    text = diff_text(diff_runs(BASE, BASE))

    assert text.splitlines()[3:] == ["no step differs", "", "no metric changed"]


def test_markdown_colours_by_direction() -> None:
    md = diff_markdown(
        diff_runs(BASE, HEAD, directions={("train", "scores"): True}, files={"train": ["a | 1 +"]})
    )

    assert (
        "| `train` | changed | code changed (aaaaaaaaaaaa -> bbbbbbbbbbbb)<br>param lr: 0.1 -> 0.2<br>`a \\| 1 +` |"
        in md
    )
    assert "| `train` | `scores.acc` | 0.95 | 0.9 | +0.05 | 🟢 ▲ |" in md
    assert "| `train` | `scores.loss` | 0.4 | 0.3 | +0.1 | 🟢 ▲ |" in md
    assert "| `train` | `scores.new` | 2 | - | added |  |" in md


def test_json_envelope() -> None:
    data = diff_json(diff_runs(BASE, HEAD, directions={("train", "scores"): True}))

    assert data["format"] == DIFF_FORMAT
    assert data["base"] == {"run_id": BASE.run_id, "commit": "1" * 40, "status": "succeeded"}
    train = data["steps"][1]
    assert train["change"] == "changed"
    assert {"part": "params", "item": "lr", "old": 0.1, "new": 0.2} in train["changes"]
    assert data["metrics"][0] == {
        "step": "train",
        "output": "scores",
        "metric": "acc",
        "value": 0.95,
        "base": 0.9,
        "delta": data["metrics"][0]["delta"],
        "higher_is_better": True,
        "verdict": "better",
    }
    assert data["steps"][0]["reasons"] == []


def test_the_github_summary_shows_the_comparison_or_why_there_is_none() -> None:
    from mlpipe.github.summary import render

    compared = render(HEAD, compared=diff_runs(BASE, HEAD, directions={("train", "scores"): False}))
    missing = render(HEAD, compared_note="no run of the base commit 111111111111 is recorded")

    assert "### Compared with 20261125T140000000Z-aaaa (111111111111)" in compared
    assert "| `train` | `scores.acc` | 0.95 | 0.9 | +0.05 | 🔴 ▲ |" in compared
    assert (
        "No comparison with the base branch: no run of the base commit 111111111111 is recorded." in missing
    )
    assert "Compared" not in render(HEAD)
