"""This runner's labels, against which steps' `runs-on` is checked.

Labels come from `MLPIPE_RUNNER_LABELS` (comma-separated; set it in a self-hosted runner's `.env`) and, in
GitHub Actions, from the runner's own variables: `self-hosted` on a self-hosted runner, its OS (`linux`), its
architecture (`x64`) and its name. GitHub does not expose a runner's custom labels to jobs, so a label such
as `gpu` must be listed in `MLPIPE_RUNNER_LABELS`. Outside CI with neither, nothing is known and `runs-on`
is not checked. Labels compare case-insensitively, as GitHub's do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mlpipe.frozen import frozen


@frozen(kw_only=True)
class RunnerLabels:
    """The labels of the machine mlpipe runs on, for `runs-on:`."""

    labels: frozenset[str]
    source: str
    """Where they came from, for messages."""

    def missing(self, runs_on: Sequence[str]) -> list[str]:
        return [label for label in runs_on if label.lower() not in self.labels]

    def explain(self, runs_on: Sequence[str]) -> str:
        missing = self.missing(runs_on)
        have = ", ".join(sorted(self.labels)) or "none"
        return (
            f"runs-on: this runner lacks {', '.join(missing)} (its labels: {have}, from {self.source}); "
            "run this step on a runner with those labels, or add them to MLPIPE_RUNNER_LABELS"
        )


def runner_labels(env: Mapping[str, str]) -> RunnerLabels | None:
    labels: set[str] = set()
    sources = []
    listed = env.get("MLPIPE_RUNNER_LABELS")
    if listed is not None:
        labels.update(label.strip().lower() for label in listed.split(",") if label.strip())
        sources.append("MLPIPE_RUNNER_LABELS")
    if env.get("GITHUB_ACTIONS") == "true":
        if env.get("RUNNER_ENVIRONMENT") == "self-hosted":
            labels.add("self-hosted")
        labels.update(
            env[name].lower() for name in ("RUNNER_OS", "RUNNER_ARCH", "RUNNER_NAME") if env.get(name)
        )
        sources.append("GitHub's RUNNER_* variables")
    if not sources:
        return None
    return RunnerLabels(labels=frozenset(labels), source=" and ".join(sources))
