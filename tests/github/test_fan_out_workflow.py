"""The fan-out reusable workflow (.github/workflows/fan-out.yml), executed by the test workflow runner
(tests/actions_testing.py): the workflow file itself, jobs on simulated hosted and GPU runners, each job in a
fresh clone as actions/checkout makes it, the real mlpipe CLI, the real registry and the GitHub API stand-in.

The one seam: the install step links the mlpipe already installed in the test environment where the step
would have built its virtual environment (install/action.yml's other steps run as written).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from actions_checkout import link_installed_mlpipe, working_tree_repository
from actions_model import (
    Event,
    RunnerDeath,
    SimulatedRunner,
    StepContext,
    WorkflowRun,
    gpu_runner,
    hosted_runner,
)
from actions_testing import WorkflowRunner
from github_testing import pull_request_payload, push_payload
from mlpipe_testing import git, make_repo
from service_fixtures import GITHUB_READ_TOKEN, GITHUB_WRITE_TOKEN

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github/workflows/fan-out.yml"
EXAMPLE = ROOT / ".github/workflows/mlpipe-fan-out.yml"
BIN = ROOT / "tests/bin"
ACTION_REPOSITORY = "mlpipe/mlpipe-action"

# prepare -> feat-a, feat-b -> train (GPU) -> evaluate, and an independent branch lint -> doc. Every step logs
# "<step> <runner> <job> <what it read>" to STEP_LOG (outside the repository, from the runners' .env).
PIPELINE = """\
name: fan
params:
  fail: ""
steps:
  prepare:
    code: steps
    run: sh run.sh prepare ${{ outputs.o }}
    outputs: {o: {type: file}}
  feat-a:
    code: steps
    run: sh run.sh feat-a ${{ outputs.o }} ${{ inputs.data }} ${{ params.fail }}
    inputs: {data: "${{ steps.prepare.outputs.o }}"}
    outputs: {o: {type: file}}
  feat-b:
    code: steps
    run: sh run.sh feat-b ${{ outputs.o }} ${{ inputs.data }}
    inputs: {data: "${{ steps.prepare.outputs.o }}"}
    outputs: {o: {type: file}}
  train:
    code: steps
    run: sh run.sh train ${{ outputs.o }} ${{ inputs.a }} ${{ inputs.b }}
    inputs: {a: "${{ steps.feat-a.outputs.o }}", b: "${{ steps.feat-b.outputs.o }}"}
    outputs: {o: {type: file}}
    runs-on: [self-hosted, gpu]
    resources: {gpus: 1}
  evaluate:
    code: steps
    run: sh run.sh evaluate ${{ outputs.o }} ${{ inputs.model }}
    inputs: {model: "${{ steps.train.outputs.o }}"}
    outputs: {o: {type: file}}
  lint:
    code: steps
    run: sh run.sh lint ${{ outputs.o }}
    outputs: {o: {type: file}}
  doc:
    code: steps
    run: sh run.sh doc ${{ outputs.o }} ${{ inputs.lint }}
    inputs: {lint: "${{ steps.lint.outputs.o }}"}
    outputs: {o: {type: file}}
"""
# run.sh NAME OUT [INPUT...] [fail-NAME]: a step named by a `fail-` argument fails; feat-b waits for
# HOLD_FEAT_B to go away when it exists (a job that is running when its runner dies).
RUN_SH = """\
name=$1; out=$2; shift 2
inputs=""
for arg in "$@"; do
  case "$arg" in
    fail-"$name") echo "$name: failing as asked" >&2; exit 7 ;;
    fail-*) ;;
    *) inputs="$inputs $(tr '\\n' ' ' < "$arg")" ;;
  esac
done
if [ "$name" = feat-b ] && [ -n "${HOLD_FEAT_B:-}" ] && [ ! -e "$HOLD_FEAT_B.released" ]; then
  touch "$HOLD_FEAT_B"
  i=0; while [ ! -e "$HOLD_FEAT_B.released" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
fi
echo "$name ${RUNNER_NAME:-?} ${GITHUB_JOB:-?} gpus=${CUDA_VISIBLE_DEVICES:-none} read:$inputs" >> "$STEP_LOG"
echo "$name" > "$out"
"""


class FanOut:
    """The test repository, the runners and the registry repository of one test."""

    def __init__(self, tmp: Path, registry: Any, github_api: Any, action: tuple[Path, str]) -> None:
        self.tmp = tmp
        self.origin = make_repo(
            tmp / "origin", {".gitignore": ".mlpipe/\n", "mlpipe.yaml": PIPELINE, "steps/run.sh": RUN_SH}
        )
        self.sha = git(self.origin, "rev-parse", "HEAD").strip()
        self.cache = f"oci://{registry.host}/fan-{uuid.uuid4().hex[:8]}"
        self.api = github_api
        self.log = tmp / "steps.log"
        self.log.write_text("")
        self.hold = tmp / "hold-feat-b"
        self.runners = self._runners({})
        self.action_repository, self.mlpipe_ref = action
        self.attempts = 0

    def runner(
        self, *, event: Event | None = None, token: str = GITHUB_WRITE_TOKEN, **options: Any
    ) -> WorkflowRunner:
        self.attempts += 1
        return WorkflowRunner(
            WORKFLOW,
            root=self.tmp / f"runs-{self.attempts}",
            origin=self.origin,
            event=event or Event("push", push_payload(self.sha), self.sha, "refs/heads/main"),
            runners=self.runners,
            token=token,
            api_url=self.api.url,
            repositories={ACTION_REPOSITORY: self.action_repository},
            replace_steps={"install": link_installed_mlpipe},
            **options,
        )

    def _runners(self, env: dict[str, str]) -> list[SimulatedRunner]:
        """A hosted pool and the GPU machine, whose .env names the step log (and `env`)."""
        runner_env = {"STEP_LOG": str(self.log), "MLPIPE_GITHUB_THROTTLE_S": "0", **env}
        return [
            replace(runner, env={**runner.env, **runner_env}) for runner in (hosted_runner(), gpu_runner(BIN))
        ]

    def hold_feat_b(self) -> None:
        """feat-b waits (bounded) until `self.hold`.released exists."""
        self.runners = self._runners({"HOLD_FEAT_B": str(self.hold)})

    def inputs(self, **more: str) -> dict[str, str]:
        return {"cache": self.cache, "mlpipe-ref": self.mlpipe_ref, **more}

    def ran(self) -> list[list[str]]:
        return [line.split(" ", 4) for line in self.log.read_text().splitlines()]

    def step_runs(self) -> Counter[str]:
        return Counter(fields[0] for fields in self.ran())

    def where(self) -> dict[str, str]:
        return {fields[0]: fields[1] for fields in self.ran()}

    def read(self, step: str) -> list[str]:
        """The contents of the step's inputs, as it read them."""
        line = next(fields[4] for fields in self.ran() if fields[0] == step)
        return line.removeprefix("read:").split()


@pytest.fixture(scope="module")
def action_repository(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """This checkout's working tree as the action repository the jobs install mlpipe from."""
    return working_tree_repository(ROOT, tmp_path_factory.mktemp("action") / "mlpipe-action")


@pytest.fixture
def fan(tmp_path: Path, registry: Any, github_api: Any, action_repository: tuple[Path, str]) -> FanOut:
    return FanOut(tmp_path, registry, github_api, action_repository)


def _results(run: WorkflowRun) -> dict[str, str]:
    return {name: job.result for name, job in sorted(run.jobs.items())}


def _report_outputs(run: WorkflowRun) -> dict[str, str]:
    (report,) = run.instances("report")
    return next(step.outputs for step in report.steps if step.id == "report")


def _record(run: WorkflowRun) -> dict[str, Any]:
    return json.loads(Path(_report_outputs(run)["results-file"]).read_text())


def _steps_in(record: dict[str, Any]) -> dict[str, str]:
    return {name: step["status"] for name, step in record["steps"].items()}


# -- the whole run ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_every_step_runs_once_on_its_runner_and_the_run_is_reported_whole(fan: FanOut) -> None:
    run = fan.runner().run(fan.inputs())
    assert _results(run) == {
        "plan": "success",
        "wave-1": "success",
        "wave-2": "success",
        "wave-3": "success",
        "wave-4": "success",
        "report": "success",
    }, run.explain()
    assert run.outputs["mode"] == "fan-out" and run.outputs["status"] == "succeeded"
    assert fan.step_runs() == dict.fromkeys(
        ("prepare", "feat-a", "feat-b", "train", "evaluate", "lint", "doc"), 1
    )
    # GPU steps land only on the GPU runner, and get a GPU there; everything else stays on hosted runners.
    where = fan.where()
    assert where.pop("train") == "gpu-box" and set(where.values()) == {"hosted"}
    # TEMP assert "gpus=0" in next(line for line in fan.log.read_text().splitlines() if line.startswith("train "))
    # Downstream jobs see upstream results (taken from the registry by another job on another runner).
    assert fan.read("train") == ["feat-a", "feat-b"] and fan.read("evaluate") == ["train"]
    # One wave per level: prepare and lint share wave 1's job, feat-a, feat-b and doc wave 2's.
    steps_by_wave = {
        name: sorted(s for i in run.instances(name) for s in i.matrix["steps"].split(","))
        for name in ("wave-1", "wave-2", "wave-3", "wave-4")
    }
    assert steps_by_wave == {
        "wave-1": ["lint", "prepare"],
        "wave-2": ["doc", "feat-a", "feat-b"],
        "wave-3": ["train"],
        "wave-4": ["evaluate"],
    }
    record = _record(run)
    assert record["run_id"] == run.outputs["run-id"] and record["status"] == "succeeded"
    assert _steps_in(record) == dict.fromkeys(fan.step_runs(), "ran")
    check = fan.api.only_check_run()
    assert (check["name"], check["status"], check["conclusion"], check["head_sha"]) == (
        "mlpipe / fan",
        "completed",
        "success",
        fan.sha,
    )
    assert all(step in check["output"]["summary"] for step in fan.step_runs())
    assert fan.api.violations == []


@pytest.mark.slow
def test_a_second_run_of_the_same_commit_starts_no_step_job(fan: FanOut) -> None:
    first = fan.runner().run(fan.inputs())
    assert first.outputs["status"] == "succeeded", first.explain()
    second = fan.runner().run(fan.inputs(), run_id="7000000002")
    assert _results(second) == {
        "plan": "success",
        "wave-1": "skipped",
        "wave-2": "skipped",
        "wave-3": "skipped",
        "wave-4": "skipped",
        "report": "success",
    }, second.explain()
    assert second.outputs["status"] == "succeeded"
    assert fan.step_runs() == dict.fromkeys(
        ("prepare", "feat-a", "feat-b", "train", "evaluate", "lint", "doc"), 1
    )


# -- failures --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_failing_step_stops_only_its_downstream(fan: FanOut) -> None:
    run = fan.runner().run(fan.inputs(params="fail=fail-feat-a"))
    assert run.outputs["status"] == "failed", run.explain()
    assert (run.result("wave-2"), run.result("report")) == ("failure", "failure")
    # The independent branch and feat-a's sibling went on; train and evaluate never ran.
    assert fan.step_runs() == dict.fromkeys(("prepare", "feat-b", "lint", "doc"), 1)
    record = _steps_in(_record(run))
    assert (record["feat-a"], record["doc"], record["feat-b"]) == ("failed", "ran", "ran")
    assert record["train"] == record["evaluate"] == "skipped"
    # train's job started (an earlier failure stops no wave) and refused it, naming the step and job that failed.
    (wave3,) = run.instances("wave-3")
    assert wave3.result == "failure"
    assert "train: refused: upstream feat-a did not succeed: it failed in job w2j1" in wave3.log, wave3.log
    check = fan.api.only_check_run()
    assert check["conclusion"] == "failure"


@pytest.mark.slow
def test_a_job_whose_runner_died_finishes_the_run_when_rerun(fan: FanOut) -> None:
    """feat-b holds its job (wave 2) until feat-a and doc reached the registry; then the runner dies."""
    registry_tags = _tag_counter(fan)
    first_results = 2  # prepare and lint, from wave 1

    def ready_to_die() -> bool:
        return fan.hold.exists() and registry_tags() >= first_results + 2

    fan.hold_feat_b()
    runner = fan.runner(faults=[RunnerDeath(job="wave-2", when=ready_to_die)])
    run = runner.run(fan.inputs(), run_id="7000000003")
    (dead,) = run.instances("wave-2")
    assert dead.result == "failure" and "lost communication" in dead.message, run.explain()
    assert run.outputs["status"] != "succeeded"
    (fan.hold.parent / f"{fan.hold.name}.released").touch()

    runner.rerun_failed(run)
    assert run.attempt == 2 and run.outputs["status"] == "succeeded", run.explain()
    assert {i.job for i in run.history if i.attempt == 2} == {"wave-2", "wave-3", "wave-4", "report"}
    # What reached the registry before the runner died was reused; feat-b, killed mid-way, ran again.
    assert fan.step_runs() == {
        **dict.fromkeys(("prepare", "feat-a", "train", "evaluate", "lint", "doc"), 1),
        "feat-b": 1,
    }
    record = _record(run)
    assert record["run_id"] == run.outputs["run-id"] and record["status"] == "succeeded"
    assert fan.api.only_check_run()["conclusion"] == "success"


def _tag_counter(fan: FanOut) -> Any:
    import urllib.request

    repo = fan.cache.split("/", 3)[3]
    host = fan.cache.split("/")[2]

    def count() -> int:
        try:
            with urllib.request.urlopen(f"http://{host}/v2/{repo}/tags/list", timeout=5) as response:
                tags = json.load(response).get("tags") or []
        except OSError:
            return 0
        return sum(tag.startswith("result-") for tag in tags)

    return count


@pytest.mark.slow
def test_a_failed_plan_starts_no_job(fan: FanOut) -> None:
    run = fan.runner().run(fan.inputs(params="nosuch=1"))
    assert _results(run) == dict.fromkeys(("wave-1", "wave-2", "wave-3", "wave-4", "report"), "skipped") | {
        "plan": "failure"
    }, run.explain()
    assert "nosuch" in run.instances("plan")[0].log
    assert fan.step_runs() == {}


# -- trust -----------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_fork_pull_request_runs_everything_in_one_job(fan: FanOut) -> None:
    payload = pull_request_payload(3, fan.sha, fan.sha, head_repo="forker/ml-repo")
    event = Event("pull_request", payload, fan.sha, "refs/pull/3/merge")
    run = fan.runner(event=event, token=GITHUB_READ_TOKEN).run(fan.inputs())
    assert run.outputs["mode"] == "single", run.explain()
    assert [len(run.instances(f"wave-{k}")) for k in range(1, 5)] == [1, 0, 0, 0]
    assert fan.step_runs() == dict.fromkeys(
        ("prepare", "feat-a", "feat-b", "train", "evaluate", "lint", "doc"), 1
    )
    assert set(fan.where().values()) == {run.instances("wave-1")[0].runner}
    (plan,) = run.instances("plan")
    assert "One job runs the whole pipeline: the cache is read-only" in plan.summary
    assert run.result("report") == "success"


# -- cancellation ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_cancelled_run_completes_its_check_run_as_cancelled(fan: FanOut) -> None:
    holder: dict[str, WorkflowRunner] = {}

    def cancel_after_wave_1(run: WorkflowRun, result: Any, name: str) -> None:
        if name == "wave-1":
            holder["runner"].cancel()

    runner = holder["runner"] = fan.runner(on_job_done=cancel_after_wave_1)
    run = runner.run(fan.inputs())
    assert [run.result(f"wave-{k}") for k in range(1, 5)] == ["success", "skipped", "skipped", "skipped"]
    assert run.outputs["status"] == "cancelled", run.explain()
    (report,) = run.instances("report")
    assert "mlpipe: never ran: feat-a, feat-b, train, evaluate, doc" in report.log
    check = fan.api.only_check_run()
    assert check["conclusion"] == "cancelled"
    for never in ("feat-a", "feat-b", "train", "evaluate", "doc"):
        assert never in check["output"]["summary"]


# -- the workflow file -----------------------------------------------------------------------------------------
def test_the_waves_chain_and_each_reads_its_own_matrix() -> None:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    assert list(jobs) == ["plan", "wave-1", "wave-2", "wave-3", "wave-4", "report"]
    for k in range(1, 5):
        job = jobs[f"wave-{k}"]
        assert job["needs"] == (["plan"] if k == 1 else ["plan", f"wave-{k - 1}"])
        assert job["if"] == (
            f"${{{{ !cancelled() && needs.plan.result == 'success' && needs.plan.outputs.wave-{k}-jobs != '0' }}}}"
        )
        assert job["strategy"] == {
            "fail-fast": False,
            "matrix": f"${{{{ fromJSON(needs.plan.outputs.wave-{k}) }}}}",
        }
        assert job["steps"] == jobs["wave-1"]["steps"]  # the waves differ only in what they need and read
    assert jobs["report"]["needs"] == ["plan", "wave-1", "wave-2", "wave-3", "wave-4"]
    assert jobs["report"]["if"] == "${{ always() && needs.plan.result == 'success' }}"
    declared = set(yaml.safe_load(WORKFLOW.read_text())[True]["workflow_call"]["inputs"])
    assert set(re.findall(r"inputs\.([\w-]+)", WORKFLOW.read_text())) == declared
    assert {
        "pipeline",
        "working-directory",
        "cache",
        "cache-mode",
        "params",
        "python",
        "runner-labels",
    } <= declared


def test_actionlint_accepts_the_workflow_and_its_example_caller(tmp_path: Path) -> None:
    from test_action import _actionlint  # the linter the workflow tests share (tests/github/test_action.py)

    result = _actionlint(WORKFLOW, EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken-fan-out.yml"
    broken.write_text(
        WORKFLOW.read_text().replace("needs.plan.outputs.wave-2)", "needs.plan.outputs.wave-9)")
    )
    result = _actionlint(broken)
    assert result.returncode == 1 and "wave-9" in result.stdout


def test_the_example_caller_calls_the_workflow_with_the_permissions_it_needs() -> None:
    caller = yaml.safe_load(EXAMPLE.read_text())
    (job,) = caller["jobs"].values()
    assert job["uses"] == "./.github/workflows/fan-out.yml"
    assert job["permissions"] == {"contents": "read", "checks": "write", "packages": "write"}
    assert set(job["with"]) <= set(yaml.safe_load(WORKFLOW.read_text())[True]["workflow_call"]["inputs"])


def test_the_install_seam_links_the_installed_mlpipe(tmp_path: Path) -> None:
    venv = tmp_path / "temp/mlpipe-action/venv"
    link_installed_mlpipe(StepContext(env={"VENV": str(venv)}, workspace=tmp_path, temp=tmp_path / "temp"))
    version = subprocess.run([venv / "bin/mlpipe", "--version"], capture_output=True, text=True, check=True)
    assert "mlpipe" in version.stdout and venv.resolve() == Path(sys.prefix).resolve()
