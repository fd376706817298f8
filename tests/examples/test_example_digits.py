"""The digits example end to end, as the README shows it: a real scikit-learn pipeline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlpipe_testing import Project, example_project

if os.environ.get("CI"):
    import sklearn  # noqa: F401 - in CI a missing dependency fails the run instead of skipping
else:
    pytest.importorskip("sklearn", reason="the example needs the [example] extra (scripts/test installs it)")


def statuses(record: dict) -> dict[str, str]:
    return {name: step["status"] for name, step in record["steps"].items()}


@pytest.fixture
def digits(tmp_path: Path) -> Project:
    return example_project("digits", tmp_path)


def test_digits_runs_then_reuses_then_reruns_only_what_a_param_touches(digits: Project) -> None:
    digits.run("validate").assert_success()
    digits.run("ci-run", timeout=300).assert_success()
    first = digits.record()
    assert statuses(first) == {"prepare": "ran", "featurize": "ran", "train": "ran", "evaluate": "ran"}
    accuracy = first["steps"]["evaluate"]["metrics"]["metrics"]["accuracy"]
    assert accuracy > 0.95
    assert json.loads((digits.root / "metrics.json").read_text())["accuracy"] == accuracy
    assert digits.git("status", "--porcelain") == ""  # outputs and state are ignored: the run stays clean

    digits.run("ci-run").assert_success()
    assert set(statuses(digits.record()).values()) == {"reused"}

    plan = digits.run("plan", "-p", "C=5", "--json").assert_success().json()
    assert {s["name"]: s["action"] for s in plan["steps"]} == {
        "prepare": "reuse",
        "featurize": "reuse",
        "train": "run",
        "evaluate": "run",
    }
    digits.run("ci-run", "-p", "C=5", timeout=300).assert_success()
    third = digits.record()
    assert statuses(third) == {"prepare": "reused", "featurize": "reused", "train": "ran", "evaluate": "ran"}
    assert third["steps"]["train"]["reasons"] == ["param C: 10.0 -> 5.0"]


def test_amlignored_notebook_changes_rerun_nothing(digits: Project) -> None:
    digits.run("ci-run", timeout=300).assert_success()
    digits.write({"steps/train/explore.ipynb": "{}", "steps/train/scratch/try.py": "print(1)\n"})
    digits.commit("notebooks")
    plan = digits.run("plan", "--json").assert_success().json()
    assert {s["action"] for s in plan["steps"]} == {"reuse"}
