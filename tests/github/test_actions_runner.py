"""The test workflow runner (tests/actions_testing.py) on small workflows of its own: what GitHub would do."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from actions_expressions import ExpressionError, Status, Strict, condition, evaluate, substitute
from actions_model import Event, RunnerDeath, WorkflowError, gpu_runner, hosted_runner, parse_file_command
from actions_testing import WorkflowRunner
from github_testing import pull_request_payload, push_payload
from mlpipe_testing import git, make_repo

BIN = Path(__file__).resolve().parents[1] / "bin"
OK = Status(success=True, failure=False, cancelled=False)


# -- expressions -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("needs.plan.outputs.wave-1-jobs != '0'", False),
        ("needs.plan.outputs.wave-2-jobs != '0'", True),
        ("needs.plan.outputs.wave-1-jobs == 0", True),  # mismatched types compare as numbers
        ("'ABC' == 'abc'", True),  # strings compare case-insensitively
        ("needs.PLAN.result", "success"),  # context names are case-insensitive
        ("needs.plan.outputs['wave-2-jobs']", "3"),
        ("fromJSON(needs.plan.outputs.matrix).include[0]", None),  # no [n] on lists: the key 0 is missing
        ("fromJSON(needs.plan.outputs.matrix).runs-on", ["self-hosted", "gpu"]),
        ("!cancelled() && needs.plan.result == 'success'", True),
        ("'' || 'fallback'", "fallback"),
        ("'a' && 'b'", "b"),
        ("null == 0 && true != false", True),
        ("toJSON(fromJSON('[1, 2]'))", "[\n  1,\n  2\n]"),
        ("'it''s'", "it's"),
    ],
)
def test_expressions_follow_githubs_semantics(text: str, expected: Any) -> None:
    contexts = {
        "needs": Strict(
            "needs",
            {
                "plan": Strict(
                    "needs.plan",
                    {
                        "result": "success",
                        "outputs": {
                            "wave-1-jobs": "0",
                            "wave-2-jobs": "3",
                            "matrix": json.dumps({"include": [], "runs-on": ["self-hosted", "gpu"]}),
                        },
                    },
                )
            },
        )
    }
    if text.endswith("include[0]"):
        with pytest.raises(ExpressionError, match="only string indexes"):
            evaluate(text, contexts, OK)
        return
    assert evaluate(text, contexts, OK) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("contains(github.ref, 'main')", "contains() is not supported"),
        ("secrets.TOKEN", "unknown context 'secrets'"),
        ("needs.build.result", "has no 'build'"),
        ("inputs.a < 3", "cannot read ' < 3'"),
        ("inputs.a ==", "ends early"),
        ("fromJSON('{nope')", "not JSON"),
    ],
)
def test_expressions_the_runner_does_not_understand_are_refused(text: str, message: str) -> None:
    contexts = {"needs": Strict("needs", {}), "inputs": Strict("inputs", {"a": 1}), "github": {"ref": "x"}}
    with pytest.raises(ExpressionError, match=re.escape(message)):
        evaluate(text, contexts, OK)


def test_if_without_a_status_function_means_success_and() -> None:
    contexts = {"inputs": Strict("inputs", {"go": True})}
    failed = Status(success=False, failure=True, cancelled=False)
    assert condition("inputs.go", contexts, OK) is True
    assert condition("${{ inputs.go }}", contexts, failed) is False
    assert condition("${{ always() && inputs.go }}", contexts, failed) is True
    assert condition("failure()", contexts, failed) is True
    cancelled = Status(success=True, failure=False, cancelled=True)
    assert condition("!cancelled()", contexts, cancelled) is False
    assert condition("success()", contexts, cancelled) is False
    with pytest.raises(ExpressionError, match="mixes text"):
        condition("x ${{ inputs.go }}", contexts, OK)


def test_a_lone_expression_keeps_its_type_and_text_interpolates() -> None:
    contexts = {"matrix": Strict("matrix", {"runs-on": ["self-hosted", "gpu"], "n": 3})}
    assert substitute("${{ matrix.runs-on }}", contexts, "runs-on") == ["self-hosted", "gpu"]
    assert substitute("n=${{ matrix.n }}!", contexts, "x") == "n=3!"
    with pytest.raises(ExpressionError, match="wrap it in toJSON"):
        substitute("labels ${{ matrix.runs-on }}", contexts, "x")


def test_file_commands_are_parsed_as_the_runner_parses_them(tmp_path: Path) -> None:
    path = tmp_path / "output"
    path.write_text("a=1\nb<<EOF_x\nline 1\nline=2\nEOF_x\nc=x=y\n")
    assert parse_file_command(path) == {"a": "1", "b": "line 1\nline=2", "c": "x=y"}
    path.write_text("b<<EOF\nnever closed\n")
    with pytest.raises(WorkflowError, match="matching delimiter not found 'EOF'"):
        parse_file_command(path)
    path.write_text("not a command\n")
    with pytest.raises(WorkflowError, match="invalid format"):
        parse_file_command(path)


# -- workflows -------------------------------------------------------------------------------------------------
def _repo(tmp_path: Path) -> tuple[Path, str]:
    origin = make_repo(tmp_path / "origin", {"README.md": "hello\n", "data/a.txt": "a\n"})
    git(origin, "commit", "-q", "--allow-empty", "-m", "second")
    return origin, git(origin, "rev-parse", "HEAD").strip()


def _runner(tmp_path: Path, workflow: str, **options: Any) -> WorkflowRunner:
    origin, sha = _repo(tmp_path)
    path = tmp_path / "workflow.yml"
    path.write_text(textwrap.dedent(workflow))
    options.setdefault("event", Event("push", push_payload(sha), sha, "refs/heads/main"))
    options.setdefault("runners", [hosted_runner(), gpu_runner(BIN)])
    return WorkflowRunner(path, root=tmp_path / "runs", origin=origin, **options)


WAVES = """
on:
  workflow_call:
    inputs:
      fail: {type: string, default: ""}
    outputs:
      status: {value: "${{ jobs.report.outputs.status }}"}
jobs:
  plan:
    runs-on: ubuntu-latest
    outputs:
      wave-1: ${{ steps.plan.outputs.wave-1 }}
      wave-1-jobs: ${{ steps.plan.outputs.wave-1-jobs }}
      wave-2: ${{ steps.plan.outputs.wave-2 }}
      wave-2-jobs: ${{ steps.plan.outputs.wave-2-jobs }}
    steps:
      - id: plan
        run: |
          echo "$GITHUB_RUN_ATTEMPT" >> "$RUNNER_TEMP/../../../../plan-ran"
          {
            echo 'wave-1={"include": [{"job": "a", "runs-on": "ubuntu-latest"}, {"job": "b", "runs-on": ["self-hosted", "gpu"]}]}'
            echo 'wave-1-jobs=2'
            echo 'wave-2={"include": []}'
            echo 'wave-2-jobs=0'
          } >> "$GITHUB_OUTPUT"
  wave-1:
    needs: [plan]
    if: ${{ !cancelled() && needs.plan.outputs.wave-1-jobs != '0' }}
    strategy:
      fail-fast: false
      matrix: ${{ fromJSON(needs.plan.outputs.wave-1) }}
    runs-on: ${{ matrix.runs-on }}
    steps:
      - env:
          JOB: ${{ matrix.job }}
          FAIL: ${{ inputs.fail }}
        run: |
          echo "$JOB $RUNNER_NAME $GITHUB_RUN_ATTEMPT" >> "$RUNNER_TEMP/../../../../wave-1-ran"
          command -v nvidia-smi > /dev/null && echo "gpu tools: ${MLPIPE_RUNNER_LABELS}" || echo "no gpu tools"
          if [ "$JOB" = "$FAIL" ] && [ "$GITHUB_RUN_ATTEMPT" = 1 ]; then echo "$JOB fails"; exit 3; fi
  wave-2:
    needs: [plan, wave-1]
    if: ${{ !cancelled() && needs.plan.outputs.wave-2-jobs != '0' }}
    strategy:
      matrix: ${{ fromJSON(needs.plan.outputs.wave-2) }}
    runs-on: ubuntu-latest
    steps:
      - run: exit 1
  after:
    needs: [wave-1]
    runs-on: ubuntu-latest
    steps:
      - run: echo "after ran"
  report:
    needs: [plan, wave-1, wave-2]
    if: ${{ always() && needs.plan.result == 'success' }}
    runs-on: ubuntu-latest
    outputs:
      status: ${{ steps.r.outputs.status }}
    steps:
      - if: cancelled()
        run: echo "CANCELLED=true" >> "$GITHUB_ENV"
      - id: r
        if: always()
        env:
          WAVE1: ${{ needs.wave-1.result }}
          WAVE2: ${{ needs.wave-2.result }}
        run: echo "status=$WAVE1/$WAVE2/${CANCELLED:-false}" >> "$GITHUB_OUTPUT"
"""


def _lines(path: Path) -> list[str]:
    return sorted(path.read_text().splitlines()) if path.exists() else []


def test_jobs_run_in_needs_order_with_matrices_runners_and_skips(tmp_path: Path) -> None:
    runner = _runner(tmp_path, WAVES)
    run = runner.run()
    assert {name: job.result for name, job in run.jobs.items()} == {
        "plan": "success",
        "wave-1": "success",
        "wave-2": "skipped",  # its matrix is empty: the if: guard keeps GitHub from failing the job
        "after": "success",
        "report": "success",
    }, run.explain()
    placed = {i.matrix["job"]: i.runner for i in run.instances("wave-1")}
    assert placed == {"a": "hosted", "b": "gpu-box"}
    logs = {i.matrix["job"]: i.log for i in run.instances("wave-1")}
    assert "gpu tools: gpu" in logs["b"] and "no gpu tools" in logs["a"]
    assert run.outputs == {"status": "success/skipped/false"}
    assert _lines(tmp_path / "runs/wave-1-ran") == ["a hosted 1", "b gpu-box 1"]


def test_a_failed_job_skips_its_dependents_and_rerun_failed_jobs_reruns_only_those(tmp_path: Path) -> None:
    runner = _runner(tmp_path, WAVES)
    run = runner.run({"fail": "b"})
    assert run.result("wave-1") == "failure" and run.result("after") == "skipped"
    assert run.result("report") == "success" and run.outputs == {"status": "failure/skipped/false"}
    assert {i.matrix["job"]: i.result for i in run.instances("wave-1")} == {"a": "success", "b": "failure"}
    assert "b fails" in run.instances("wave-1")[1].log or "b fails" in run.instances("wave-1")[0].log

    runner.rerun_failed(run)
    assert run.attempt == 2 and run.result("wave-1") == "success" and run.result("after") == "success"
    assert run.outputs == {"status": "success/skipped/false"}
    # The plan ran once: its outputs were kept; of wave-1 only b ran again.
    assert _lines(tmp_path / "runs/plan-ran") == ["1"]
    assert _lines(tmp_path / "runs/wave-1-ran") == ["a hosted 1", "b gpu-box 1", "b gpu-box 2"]
    assert {i.job for i in run.history if i.attempt == 2} == {"wave-1", "after", "report"}


def test_a_job_no_runner_serves_fails_after_the_queue_bound(tmp_path: Path) -> None:
    runner = _runner(tmp_path, WAVES, runners=[hosted_runner()], queue_timeout=0.3)
    run = runner.run()
    b = next(i for i in run.instances("wave-1") if i.matrix["job"] == "b")
    assert b.result == "failure" and b.steps == []
    assert b.message == (
        "no runner with the labels gpu, self-hosted picked the job up within 0.3 s "
        "(GitHub keeps it queued for 24 hours, then fails it)"
    )
    assert run.result("wave-1") == "failure" and run.result("report") == "success"


def test_cancelling_the_run_skips_what_has_not_started_and_runs_always_jobs(tmp_path: Path) -> None:
    holder: dict[str, WorkflowRunner] = {}

    def cancel_after_plan(run: Any, result: Any, name: str) -> None:
        if name == "plan":
            holder["runner"].cancel()

    runner = holder["runner"] = _runner(tmp_path, WAVES, on_job_done=cancel_after_plan)
    run = runner.run()
    assert run.cancelled
    assert (run.result("wave-1"), run.result("after"), run.result("report")) == (
        "skipped",
        "skipped",
        "success",
    )
    assert run.outputs == {"status": "skipped/skipped/true"}


def test_a_runner_that_dies_fails_its_job_and_nothing_more_runs_on_it(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    workflow = f"""
    on: {{workflow_call: {{}}}}
    jobs:
      long:
        runs-on: ubuntu-latest
        steps:
          - run: touch {marker}; sleep 60; echo sur'vi'ved
          - if: always()
            run: echo never
    """
    runner = _runner(tmp_path, workflow, faults=[RunnerDeath(job="long", when=marker.exists)])
    run = runner.run()
    (long,) = run.instances("long")
    assert (long.result, long.message) == ("failure", "The runner hosted lost communication with the server")
    assert [s.result for s in long.steps] == ["failure"]
    assert "survived" not in long.log


def test_checkout_makes_a_shallow_clone_at_the_commit_on_its_branch(tmp_path: Path) -> None:
    workflow = """
    on: {workflow_call: {}}
    jobs:
      look:
        runs-on: ubuntu-latest
        outputs:
          seen: ${{ steps.look.outputs.seen }}
        steps:
          - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
            with: {persist-credentials: false}
          - id: look
            run: |
              echo "seen=$(git rev-parse HEAD) $(git branch --show-current) $(git rev-list --count HEAD) $(git status --porcelain | wc -l) $(cat README.md)" >> "$GITHUB_OUTPUT"
              echo "FROM_ENV=carried" >> "$GITHUB_ENV"
              mkdir -p "$RUNNER_TEMP/tools" && printf '#!/bin/sh\\necho tool\\n' > "$RUNNER_TEMP/tools/mytool"
              chmod +x "$RUNNER_TEMP/tools/mytool" && echo "$RUNNER_TEMP/tools" >> "$GITHUB_PATH"
          - run: test "$FROM_ENV" = carried && mytool && test -z "${GITHUB_TOKEN:-}"
    """
    runner = _runner(tmp_path, workflow)
    run = runner.run()
    assert run.result("look") == "success", run.explain()
    assert run.jobs["look"].outputs["seen"] == f"{runner.event.sha} main 1 0 hello"

    pr = Event(
        "pull_request",
        pull_request_payload(5, runner.event.sha, runner.event.sha),
        runner.event.sha,
        "refs/pull/5/merge",
    )
    run = _runner(tmp_path / "pr", workflow, event=pr).run()
    assert (
        run.jobs["look"].outputs["seen"] == f"{runner.event.sha}  1 0 hello"
    )  # detached, as checkout leaves it


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (
            "{runs-on: ubuntu-latest, container: debian, steps: [{run: 'true'}]}",
            "keys the test runner does not support: ['container']",
        ),
        (
            "{runs-on: ubuntu-latest, steps: [{uses: 'actions/upload-artifact@v4'}]}",
            "does not know the action actions/upload-artifact@v4",
        ),
        ("{runs-on: ubuntu-latest, steps: [{run: 'true', shell: python}]}", "'python' is not supported"),
        (
            "{runs-on: ubuntu-latest, steps: [{run: 'true', continue-on-error: true}]}",
            "unsupported keys ['continue-on-error']",
        ),
        (
            "{runs-on: ubuntu-latest, if: \"startsWith(github.ref, 'refs/tags/')\", steps: [{run: 'true'}]}",
            "startsWith() is not supported",
        ),
        ("{runs-on: ubuntu-latest, needs: nothing, steps: [{run: 'true'}]}", "needs: no job 'nothing'"),
    ],
)
def test_the_runner_refuses_what_it_does_not_understand(tmp_path: Path, job: str, message: str) -> None:
    with pytest.raises(
        WorkflowError,
        match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]"),
    ):
        _runner(tmp_path, f"on: {{workflow_call: {{}}}}\njobs:\n  only: {job}\n").run()


def test_inputs_are_checked_as_github_checks_them(tmp_path: Path) -> None:
    runner = _runner(tmp_path, WAVES)
    with pytest.raises(WorkflowError, match=r"Invalid input\(s\) \['nope'\]"):
        runner.run({"nope": "x"})
    with pytest.raises(WorkflowError, match="expected a string"):
        runner.run({"fail": 3})


def test_steps_of_a_job_run_as_the_runner_runs_them(tmp_path: Path) -> None:
    workflow = """
    on: {workflow_call: {}}
    jobs:
      j:
        runs-on: ubuntu-latest
        steps:
          - shell: bash
            run: false | true
          - if: always()
            run: false | true
          - if: failure()
            run: echo "after a failure in ${{ github.job }}"
    """
    run = _runner(tmp_path, workflow).run()
    (job,) = run.instances("j")
    # shell: bash adds pipefail; the default shell (bash -e) does not.
    assert [s.result for s in job.steps] == ["failure", "success", "success"], run.explain()
    assert "after a failure in j" in job.log  # expressions in run: are evaluated first, as GitHub does


def test_fail_fast_cancels_a_failing_jobs_other_instances(tmp_path: Path) -> None:
    workflow = """
    on: {workflow_call: {}}
    jobs:
      m:
        strategy:
          matrix: {n: [1, 2]}
        runs-on: ubuntu-latest
        steps:
          - env: {N: "${{ matrix.n }}"}
            run: if [ "$N" = 1 ]; then exit 1; fi; sleep 60; echo sur'vi'ved
    """
    run = _runner(tmp_path, workflow).run()
    assert {i.matrix["n"]: i.result for i in run.instances("m")} == {1: "failure", 2: "cancelled"}
    assert run.result("m") == "failure" and "survived" not in run.explain()
