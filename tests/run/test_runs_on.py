"""The runner's labels for `runs-on`: MLPIPE_RUNNER_LABELS and GitHub's RUNNER_* variables."""

from __future__ import annotations

from mlpipe.run.runners import RunnerLabels, runner_labels


def test_no_labels_outside_ci():
    assert runner_labels({}) is None
    assert runner_labels({"RUNNER_OS": "Linux"}) is None  # not in GitHub Actions


def test_labels_from_mlpipe_runner_labels():
    labels = runner_labels({"MLPIPE_RUNNER_LABELS": "GPU, a100 ,,self-hosted"})
    assert labels == RunnerLabels(
        labels=frozenset({"gpu", "a100", "self-hosted"}), source="MLPIPE_RUNNER_LABELS"
    )
    assert labels.missing(["self-hosted", "Gpu"]) == []
    assert labels.missing(["gpu", "h100"]) == ["h100"]


def test_labels_from_github_runner_variables_and_the_list():
    env = {
        "GITHUB_ACTIONS": "true",
        "RUNNER_ENVIRONMENT": "self-hosted",
        "RUNNER_OS": "Linux",
        "RUNNER_ARCH": "X64",
        "RUNNER_NAME": "box-1",
        "MLPIPE_RUNNER_LABELS": "gpu",
    }
    labels = runner_labels(env)
    assert labels is not None
    assert labels.labels == {"self-hosted", "linux", "x64", "box-1", "gpu"}
    hosted = runner_labels({**env, "RUNNER_ENVIRONMENT": "github-hosted", "MLPIPE_RUNNER_LABELS": ""})
    assert hosted is not None and "self-hosted" not in hosted.labels
    assert hosted.explain(["self-hosted", "gpu"]) == (
        "runs-on: this runner lacks self-hosted, gpu (its labels: box-1, linux, x64, from MLPIPE_RUNNER_LABELS "
        "and GitHub's RUNNER_* variables); run this step on a runner with those labels, or add them to "
        "MLPIPE_RUNNER_LABELS"
    )
