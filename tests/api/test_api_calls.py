"""The library API called in-process, as the CLI and a fan-out call it: typed options in, a result object out,
the exit policy in the result (never printed, never a SystemExit)."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from mlpipe.api.ci_run import CiRunOptions, ci_run
from mlpipe.api.plan import PlanOptions, plan
from mlpipe.api.source import Selected, Source
from mlpipe.errors import PipelineFailed, UsageError
from mlpipe.events import message
from mlpipe.paths import Workspace
from mlpipe.run.locks import store_exclusive

PIPELINE = """\
name: demo
steps:
  make:
    run: echo made > ${{ outputs.out }}
    outputs:
      out:
        type: file
  check:
    run: |
      test "$(cat ${{ inputs.made }})" = made
      echo '{"score": 1}' > ${{ outputs.metrics }}
    inputs:
      made: ${{ steps.make.outputs.out }}
    outputs:
      metrics:
        kind: metrics
"""


@pytest.fixture
def source(project_factory):
    project = project_factory({"mlpipe.yaml": PIPELINE})
    return Source(file=str(project.root / "mlpipe.yaml"))


def statuses(result) -> dict[str, str]:
    return {name: step.status for name, step in result.record.steps.items()}


def test_ci_run_returns_the_record_and_reruns_reuse(source, capsys):
    progress = io.StringIO()
    first = ci_run(source, CiRunOptions(), stream=progress)
    assert (first.failure, statuses(first)) == (None, {"make": "ran", "check": "ran"})
    assert "make" in progress.getvalue()
    second = ci_run(source, CiRunOptions(), stream=io.StringIO())
    assert (second.failure, statuses(second)) == (None, {"make": "reused", "check": "reused"})
    assert second.record.run_id != first.record.run_id
    assert (second.comparison, second.comparison_note, second.released) == (None, "", None)
    assert capsys.readouterr().out == ""  # the library prints nothing of its own on stdout


def test_a_failed_step_is_the_results_failure_with_its_exit_code(project_factory):
    project = project_factory({"mlpipe.yaml": PIPELINE.replace("echo made", "echo broken")})
    result = ci_run(Source(file=str(project.root / "mlpipe.yaml")), CiRunOptions(), stream=io.StringIO())
    assert statuses(result) == {"make": "ran", "check": "failed"}
    assert isinstance(result.failure, PipelineFailed)
    assert result.failure.exit_code == 1
    assert str(result.failure) == f"run {result.record.run_id} failed: check did not succeed"


def test_since_compares_with_the_run_of_that_commit(source):
    ci_run(source, CiRunOptions(), stream=io.StringIO())
    result = ci_run(
        source, CiRunOptions(since="HEAD", selection=Selected(no_reuse=True)), stream=io.StringIO()
    )
    assert result.failure is None
    assert result.comparison is not None
    assert result.comparison_note == ""


def test_errors_found_before_compute_raise_and_run_nothing(source):
    with pytest.raises(UsageError, match="--since HEAD: no run of commit"):
        ci_run(source, CiRunOptions(since="HEAD"), stream=io.StringIO())
    with pytest.raises(UsageError, match=r"upstream step\(s\) make have no stored result"):
        ci_run(source, CiRunOptions(selection=Selected(only=("check",))), stream=io.StringIO())
    assert plan(source, PlanOptions()).plan.steps["make"].action == "run"  # nothing was run or stored


def test_plan_says_run_then_reuse(source):
    before = plan(source, PlanOptions())
    assert (before.pipeline, before.published) == ("demo", "")
    assert {n: s.action for n, s in before.plan.steps.items()} == {"make": "run", "check": "run"}
    ci_run(source, CiRunOptions(), stream=io.StringIO())
    after = plan(source, PlanOptions(selection=Selected(from_=("check",))))
    assert {n: s.action for n, s in after.plan.steps.items()} == {"make": "reuse", "check": "run"}


def test_what_the_run_says_on_the_side_goes_to_the_given_sink(source, capsys):
    store = Workspace(Path(source.file).parent).cache
    held, heard = threading.Event(), []

    def gc() -> None:  # holds the store as `mlpipe gc` does, until the run has said it waits
        with store_exclusive(store, timeout_s=10, say=print):
            held.set()
            waiting.wait(30)

    waiting = threading.Event()
    cleaner = threading.Thread(target=gc)
    cleaner.start()
    held.wait(30)
    try:
        result = ci_run(
            source, CiRunOptions(), stream=io.StringIO(), notices=lambda n: (heard.append(n), waiting.set())
        )
    finally:
        waiting.set()
        cleaner.join(30)
    assert result.failure is None
    assert heard == [message(f"waiting up to 600s: mlpipe gc is cleaning the store {store}")]
    assert capsys.readouterr().err == ""
