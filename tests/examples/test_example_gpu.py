"""The GPU example (examples/digits-gpu): refused at plan time on a runner without GPUs, trained on a real one."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mlpipe_testing import Project, example_project


@pytest.fixture
def example(tmp_path: Path) -> Project:
    return example_project("digits-gpu", tmp_path)


def test_the_gpu_example_is_refused_at_plan_time_on_a_runner_without_gpus(example, monkeypatch):
    example.run("validate").assert_success()
    monkeypatch.setenv("MLPIPE_GPUS", "")  # keep none of this machine's GPUs, if it has any
    outcome = example.run("plan").assert_code(1)
    assert outcome.stderr.startswith("error: step 'train' needs 1 GPU, and this runner has none"), (
        outcome.output
    )
    assert not (example.root / ".mlpipe/runs").exists()


@pytest.mark.gpu
def test_the_gpu_example_trains_on_a_real_gpu_then_reuses_everything(example, monkeypatch):
    import torch  # scripts/test installs the example's requirements on a machine with a GPU

    assert torch.cuda.is_available(), f"torch {torch.__version__} cannot use this machine's GPU"
    monkeypatch.setenv("MLPIPE_RUNNER_LABELS", "gpu")
    example.run("ci-run", timeout=600).assert_success()
    record = example.record()
    train = record["steps"]["train"]
    smi = subprocess.run(
        ["nvidia-smi", "--query-gpu=index,name", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = dict(line.split(", ", 1) for line in smi.stdout.strip().splitlines())
    assert [g["name"] for g in train["gpus"]] == [names[train["gpus"][0]["index"]]]
    stats = train["metrics"]["stats"]
    assert stats["train_seconds"] > 0 and stats["peak_gpu_memory_mib"] > 0
    accuracy = record["steps"]["evaluate"]["metrics"]["metrics"]["accuracy"]
    assert accuracy > 0.9
    print("digits-gpu:", json.dumps({"gpu": train["gpus"][0], "stats": stats, "accuracy": accuracy}))

    example.run("ci-run").assert_success()
    assert {s["status"] for s in example.record()["steps"].values()} == {"reused"}
    example.run("ci-run", "-p", "epochs=61", timeout=600).assert_success()
    steps = example.record()["steps"]
    assert {n: s["status"] for n, s in steps.items()} == {
        "prepare": "reused",
        "train": "ran",
        "evaluate": "ran",
    }
