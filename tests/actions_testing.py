"""A workflow runner for tests: executes a GitHub Actions workflow FILE as GitHub and its runners would.

What it does as GitHub does:
- Jobs start when every job in their `needs:` has finished, concurrently (one thread per job and per matrix
  instance); `if:` is evaluated first (without a status function GitHub's implicit `success() &&` applies;
  success() means every needed job succeeded, failure() that an ancestor failed, cancelled() that the run was
  cancelled). A job whose needs failed or were skipped is skipped unless its `if:` says otherwise.
- `strategy.matrix` is expanded after `if:` (so a guarded empty matrix never runs): dimension lists as a cartesian
  product, or `include` entries alone; an empty matrix or one over 256 entries fails the job, as GitHub does.
  `fail-fast` (default true) cancels a failing job's other instances. A matrix job's outputs are those of its
  last finished instance.
- `runs-on` (a label or a list, often `${{ matrix.runs-on }}`) picks a simulated runner whose labels hold them
  all, waiting while matching runners are busy; when no runner matches the job stays queued and, after
  `queue_timeout` seconds (GitHub waits 24 hours), fails with a message naming the labels.
- Each job gets a fresh workspace, RUNNER_TEMP and files (GITHUB_OUTPUT per step, GITHUB_ENV and GITHUB_PATH
  carried to later steps, GITHUB_STEP_SUMMARY), the variables a runner sets (tests/github_testing.py builds
  them: GITHUB_EVENT_PATH holds a real-shaped payload), the runner's own `.env` (`MLPIPE_RUNNER_LABELS`) and
  PATH (the GPU runner puts tests/bin, with the stand-in nvidia-smi, first). No GITHUB_TOKEN: as on GitHub, a
  step sees the token only where the workflow passes `github.token` in.
- `run:` steps run as the runner runs them: `bash --noprofile --norc -eo pipefail FILE` for `shell: bash`,
  `bash -e FILE` without a shell, in `working-directory`, with workflow, job, GITHUB_ENV and step `env:`, the
  script's own `${{ }}` evaluated first. `uses: ./path` runs a local composite action's steps with its inputs
  (defaults included), `github.action_path` and its outputs.
- `uses: actions/checkout@<sha>`: a fresh shallow fetch of the commit into the workspace (or `path:`), as the
  action does it (`git init`, fetch `--depth=1` of the sha into `refs/remotes/origin/<branch>` then
  `checkout -B <branch>`, or detached at `refs/remotes/pull/<n>/merge` on pull requests), emptying a directory
  that is not its clone first; `repository:` other than the event's comes from the `repositories` the test maps
  (actions_checkout.py).
- "Re-run failed jobs" (`rerun_failed`): the failed and cancelled instances and every job downstream of them run
  again in a new attempt (GITHUB_RUN_ATTEMPT + 1); the other jobs keep their results and outputs (the plan).
- Faults: `RunnerDeath` kills a job's processes with SIGKILL when its predicate holds (a runner that vanished);
  `cancel()` cancels the run (SIGINT, then SIGKILL after a grace period), as the Cancel button does.

Not modelled: `permissions:` are read but not enforced (the token the test passes is the job token every job
gets, so a test picks a write or a read-only token as the event would), and `concurrency:` is refused.

Test seams, documented rather than hidden: `actions/setup-python` and `actions/cache` do nothing (the steps'
Python is the test environment's, on PATH; the cache always misses), and a step named in `replace_steps` (the
workflow's install step) runs the test's function instead, e.g. linking the already installed mlpipe where the
workflow would have built its virtual environment. Everything else the runner does not understand (another
action, a job or step key, an expression) raises WorkflowError: it refuses instead of ignoring.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from actions_checkout import CHECKOUT_INPUTS, checkout
from actions_expressions import ExpressionError, Status, Strict, condition, substitute, to_text
from actions_model import (
    Event,
    JobResult,
    JobRun,
    JobState,
    RunnerDeath,
    SimulatedRunner,
    StepContext,
    StepRun,
    WorkflowError,
    WorkflowRun,
    load_workflow,
    needs_of,
    parse_file_command,
)
from github_testing import actions_job

MAX_MATRIX = 256
MAX_JOB_OUTPUTS = 1024 * 1024
KILL_GRACE_S = 5.0
STEP_KEYS = {
    "id",
    "name",
    "if",
    "run",
    "shell",
    "env",
    "working-directory",
    "uses",
    "with",
    "timeout-minutes",
}
NO_OP_ACTIONS = ("actions/setup-python@", "actions/cache@")
CHECKOUT = "actions/checkout@"


class WorkflowRunner:
    def __init__(
        self,
        workflow: Path,
        *,
        root: Path,
        origin: Path,
        event: Event,
        runners: list[SimulatedRunner],
        token: str = "",
        api_url: str = "",
        repositories: Mapping[str, Path] | None = None,
        replace_steps: Mapping[str, Callable[[StepContext], Mapping[str, str] | None]] | None = None,
        faults: list[RunnerDeath] | None = None,
        on_job_done: Callable[[WorkflowRun, JobResult, str], None] | None = None,
        queue_timeout: float = 1.0,
        deadline_s: float = 600.0,
    ) -> None:
        self.path = workflow
        self.definition = load_workflow(workflow)
        self.root = root
        self.origin = origin
        self.event = event
        self.runners = runners
        self.token = token
        self.api_url = api_url
        self.repositories = dict(repositories or {})
        self.replace_steps = dict(replace_steps or {})
        self.faults = list(faults or [])
        self.on_job_done = on_job_done
        self.queue_timeout = queue_timeout
        self.deadline_s = deadline_s
        self._slots = {runner.name: threading.Semaphore(runner.slots) for runner in runners}
        self._counter = itertools.count(1)
        self._live: dict[int, JobRun] = {}
        self._run: WorkflowRun | None = None
        self._errors: list[BaseException] = []

    # -- public ---------------------------------------------------------------------------------------------
    def run(self, inputs: Mapping[str, Any] | None = None, run_id: str = "7000000001") -> WorkflowRun:
        run = WorkflowRun(inputs=self._inputs(dict(inputs or {})), run_id=run_id)
        self._attempt(run, set(self.definition["jobs"]), keep={})
        return run

    def rerun_failed(self, run: WorkflowRun) -> WorkflowRun:
        """GitHub's "Re-run failed jobs": failed/cancelled instances and everything downstream of them."""
        failed = {name for name, job in run.jobs.items() if job.result in ("failure", "cancelled")}
        if not failed:
            raise WorkflowError("re-run failed jobs: no job failed")
        rerun = set(failed)
        changed = True
        while changed:
            changed = False
            for name, job in self.definition["jobs"].items():
                if name not in rerun and rerun & set(needs_of(job)):
                    rerun.add(name)
                    changed = True
        keep = {
            name: [i for i in run.jobs[name].instances if i.result == "success"]
            for name in failed
            if name in run.jobs
        }
        run.attempt += 1
        run.cancelled = False
        self._attempt(run, rerun, keep=keep)
        return run

    def cancel(self) -> None:
        """The Cancel button: running steps get SIGINT, then SIGKILL; jobs not started are skipped."""
        run = self._run
        if run is None:
            return
        with run.lock:
            run.cancelled = True
            live = list(self._live.values())
        for job in live:
            _signal_all(job, signal.SIGINT)
        timer = threading.Timer(KILL_GRACE_S, lambda: [_signal_all(j, signal.SIGKILL) for j in live])
        timer.daemon = True
        timer.start()

    # -- one attempt --------------------------------------------------------------------------------------------
    def _attempt(self, run: WorkflowRun, names: set[str], keep: dict[str, list[JobRun]]) -> None:
        self._run = run
        started = time.monotonic()
        done = {name: threading.Event() for name in self.definition["jobs"]}
        for name in set(self.definition["jobs"]) - names:
            done[name].set()
        errors = self._errors = []

        def job_thread(name: str) -> None:
            try:
                self._job(run, name, done, keep.get(name, []), started)
            except BaseException as error:  # noqa: BLE001 - re-raised by the caller, never lost in a thread
                errors.append(error)
                with run.lock:
                    run.jobs[name] = JobResult("failure", [], {})
            finally:
                done[name].set()

        threads = [threading.Thread(target=job_thread, args=(name,), daemon=True) for name in sorted(names)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, self.deadline_s - (time.monotonic() - started)) + 30)
            if thread.is_alive():
                raise WorkflowError(f"the workflow ran past its {self.deadline_s} s bound")
        if errors:
            raise errors[0]
        run.outputs = self._workflow_outputs(run)

    def _job(
        self,
        run: WorkflowRun,
        name: str,
        done: dict[str, threading.Event],
        kept: list[JobRun],
        started: float,
    ) -> None:
        job = self.definition["jobs"][name]
        needs = needs_of(job)
        for need in needs:
            if not done[need].wait(max(0.0, self.deadline_s - (time.monotonic() - started))):
                raise WorkflowError(f"jobs.{name}: waited past the deadline for {need}")
        contexts = self._contexts(run, name, matrix=None)
        status = self._job_status(run, name)
        try:
            wanted = condition(job.get("if", "success()"), contexts, status)
        except ExpressionError as error:
            raise WorkflowError(f"jobs.{name}.if: {error}") from error
        if not wanted:
            self._finish(run, name, JobResult("skipped", [], {}))
            return
        try:
            entries = self._matrix(name, job, contexts)
        except WorkflowError as error:
            failed = JobRun(job=name, matrix=None, attempt=run.attempt, result="failure", message=str(error))
            self._finish(run, name, JobResult("failure", [failed], {}))
            return
        kept_keys = [json.dumps(i.matrix, sort_keys=True) for i in kept]
        instances = [
            JobRun(job=name, matrix=entry, attempt=run.attempt)
            for entry in entries
            if json.dumps(entry, sort_keys=True) not in kept_keys
        ]
        fail_fast = bool(job.get("strategy", {}).get("fail-fast", True))
        threads = [
            threading.Thread(
                target=self._instance, args=(run, name, job, i, instances, fail_fast), daemon=True
            )
            for i in instances
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        everything = kept + instances
        results = {i.result for i in everything}
        result = next((r for r in ("failure", "cancelled") if r in results), "success")
        outputs: dict[str, str] = {}
        for instance in everything:
            outputs.update({k: v for k, v in instance.outputs.items() if v})
        self._finish(run, name, JobResult(result, everything, outputs))

    def _finish(self, run: WorkflowRun, name: str, result: JobResult) -> None:
        with run.lock:
            run.jobs[name] = result
        if self.on_job_done is not None:
            self.on_job_done(run, result, name)

    def _matrix(
        self, name: str, job: dict[str, Any], contexts: dict[str, Any]
    ) -> list[dict[str, Any] | None]:
        strategy = job.get("strategy")
        if strategy is None:
            return [None]
        unknown = set(strategy) - {"matrix", "fail-fast"}
        if unknown:
            raise WorkflowError(f"jobs.{name}.strategy: unsupported keys {sorted(unknown)}")
        try:
            matrix = substitute(strategy.get("matrix"), contexts, f"jobs.{name}.strategy.matrix")
        except ExpressionError as error:
            raise WorkflowError(f"jobs.{name}.strategy.matrix: {error}") from error
        if not isinstance(matrix, dict):
            raise WorkflowError(f"jobs.{name}.strategy.matrix: not an object: {matrix!r}")
        include = matrix.get("include", [])
        dimensions = {k: v for k, v in matrix.items() if k != "include"}
        if "exclude" in dimensions or (include and dimensions):
            raise WorkflowError(
                f"jobs.{name}.strategy.matrix: exclude, or include with dimensions, unsupported"
            )
        if not isinstance(include, list) or not all(isinstance(e, dict) for e in include):
            raise WorkflowError(f"jobs.{name}.strategy.matrix.include: not a list of objects")
        if dimensions:
            if not all(isinstance(v, list) and v for v in dimensions.values()):
                raise WorkflowError(f"Matrix vector of jobs.{name} does not contain any values")
            keys = list(dimensions)
            entries = [
                dict(zip(keys, combo, strict=True)) for combo in itertools.product(*dimensions.values())
            ]
        else:
            entries = [dict(e) for e in include]
        if not entries:
            raise WorkflowError(f"Matrix vector 'include' of jobs.{name} does not contain any values")
        if len(entries) > MAX_MATRIX:
            raise WorkflowError(f"Strategy of jobs.{name} produced more than {MAX_MATRIX} jobs")
        return list(entries)

    # -- one instance ------------------------------------------------------------------------------------------
    def _instance(
        self,
        run: WorkflowRun,
        name: str,
        job: dict[str, Any],
        instance: JobRun,
        siblings: list[JobRun],
        fail_fast: bool,
    ) -> None:
        key = next(self._counter)
        try:
            self._run_instance(run, name, job, instance, key)
        except BaseException as error:  # noqa: BLE001 - re-raised by _attempt, never lost in a thread
            self._errors.append(error)
            instance.result, instance.message = "failure", str(error)
        finally:
            with run.lock:
                self._live.pop(key, None)
                run.history.append(instance)
            if fail_fast and instance.result == "failure":
                for other in siblings:
                    if other is not instance and other.result in ("pending", "running"):
                        other.result = "cancelled"
                        other.message = f"fail-fast: {instance.name} failed"
                        _signal_all(other, signal.SIGKILL)

    def _run_instance(
        self, run: WorkflowRun, name: str, job: dict[str, Any], instance: JobRun, key: int
    ) -> None:
        contexts = self._contexts(run, name, matrix=instance.matrix)
        try:
            instance.title = to_text(substitute(job.get("name", ""), contexts, f"jobs.{name}.name"), name)
            runs_on = substitute(job.get("runs-on"), contexts, f"jobs.{name}.runs-on")
        except ExpressionError as error:
            raise WorkflowError(f"jobs.{name}.runs-on: {error}") from error
        labels = [runs_on] if isinstance(runs_on, str) else runs_on
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            instance.result, instance.message = (
                "failure",
                f"runs-on: not a label or a list of labels: {runs_on!r}",
            )
            return
        runner = self._acquire(run, instance, frozenset(label.lower() for label in labels))
        if runner is None:
            return
        try:
            instance.runner = runner.name
            if instance.result == "pending":
                instance.result = "running"
                with run.lock:
                    self._live[key] = instance
                self._steps(run, name, job, instance, runner, contexts)
        finally:
            self._slots[runner.name].release()

    def _acquire(self, run: WorkflowRun, instance: JobRun, wanted: frozenset[str]) -> SimulatedRunner | None:
        matching = [runner for runner in self.runners if runner.serves(wanted)]
        limit = time.monotonic() + (self.queue_timeout if not matching else self.deadline_s)
        while time.monotonic() < limit:
            if instance.result == "cancelled":
                instance.result = "cancelled"
                return None
            for runner in matching:
                if self._slots[runner.name].acquire(blocking=False):
                    return runner
            time.sleep(0.05)
        instance.result = "failure"
        instance.message = (
            f"no runner with the labels {', '.join(sorted(wanted))} picked the job up within "
            f"{self.queue_timeout if not matching else self.deadline_s:g} s (GitHub keeps it queued for 24 "
            "hours, then fails it)"
        )
        return None

    def _steps(
        self,
        run: WorkflowRun,
        name: str,
        job: dict[str, Any],
        instance: JobRun,
        runner: SimulatedRunner,
        contexts: dict[str, Any],
    ) -> None:
        home = self.root / f"attempt-{run.attempt}" / _safe(instance.name)
        workspace = home / "workspace"
        workspace.mkdir(parents=True)
        files = actions_job(
            home / "files",
            event=self.event.name,
            payload=self.event.payload,
            sha=self.event.sha,
            ref=self.event.ref,
            api_url=self.api_url,
            workspace=workspace,
        )
        base = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_"))},
            **runner.env,
            **files.env,
            "GITHUB_JOB": name,
            "GITHUB_RUN_ID": run.run_id,
            "GITHUB_RUN_ATTEMPT": str(run.attempt),
            "GITHUB_WORKFLOW": str(self.definition.get("name", self.path.name)),
            "RUNNER_NAME": runner.name,
            "RUNNER_ENVIRONMENT": "self-hosted" if runner.self_hosted else "github-hosted",
            "PATH": os.pathsep.join([*map(str, runner.path), os.environ.get("PATH", "")]),
        }
        base.pop("GITHUB_TOKEN", None)
        state = JobState(
            run=run,
            instance=instance,
            home=home,
            workspace=workspace,
            base_env=base,
            defaults=job.get("defaults", {}).get("run", {}),
            timeout=float(job.get("timeout-minutes", 360)) * 60,
        )
        contexts = {
            **contexts,
            "runner": Strict(
                "the runner context",
                {"os": "Linux", "arch": "X64", "name": runner.name, "temp": files.env["RUNNER_TEMP"]},
            ),
        }
        contexts["github"] = Strict("the github context", {**contexts["github"], "workspace": str(workspace)})
        job_env = {**self.definition.get("env", {}), **job.get("env", {})}
        failed, steps_context = self._run_steps(
            state, job.get("steps", []), contexts, job_env, f"jobs.{name}"
        )
        if instance.result != "running":
            return
        instance.result = "cancelled" if run.cancelled and failed else ("failure" if failed else "success")
        contexts["steps"] = steps_context
        try:
            outputs = substitute(job.get("outputs", {}), contexts, f"jobs.{name}.outputs")
        except ExpressionError as error:
            raise WorkflowError(f"jobs.{name}.outputs: {error}") from error
        instance.outputs = {k: to_text(v, f"jobs.{name}.outputs.{k}") for k, v in outputs.items()}
        if sum(len(v.encode()) for v in instance.outputs.values()) > MAX_JOB_OUTPUTS:
            instance.result, instance.message = (
                "failure",
                f"jobs.{name}: outputs exceed GitHub's 1 MB per job",
            )

    def _run_steps(
        self,
        state: JobState,
        steps: list[dict[str, Any]],
        contexts: dict[str, Any],
        scope_env: dict[str, Any],
        where: str,
    ) -> tuple[bool, Strict]:
        """The steps of a job (or of a composite action): whether one failed, and the steps context."""
        run, instance = state.run, state.instance
        steps_context = Strict("the steps before this one", {})
        contexts = {**contexts, "steps": steps_context}
        failed = False
        for index, step in enumerate(steps):
            step_id = str(step.get("id", f"__step{index}"))
            at = f"{where}.steps[{index}]"
            if instance.result != "running":  # the runner died or the job was cancelled: nothing more runs
                break
            label = str(step.get("name") or step.get("uses") or str(step.get("run", "")).split("\n")[0])
            record = StepRun(name=label, id=step_id, result="skipped")
            instance.steps.append(record)
            env_context = {**scope_env, **state.extra_env}
            status = Status(success=not failed, failure=failed, cancelled=run.cancelled)
            try:
                wanted = condition(step.get("if", "success()"), {**contexts, "env": env_context}, status)
                env = {
                    k: to_text(substitute(v, contexts, f"{at}.env.{k}"), f"{at}.env.{k}")
                    for k, v in {**scope_env, **step.get("env", {})}.items()
                }
            except ExpressionError as error:
                raise WorkflowError(f"{at}: {error}") from error
            if not wanted:
                steps_context[step_id] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
                continue
            env = {**state.base_env, **state.extra_env, **env}
            if state.extra_path:
                env["PATH"] = os.pathsep.join([*reversed(state.extra_path), env["PATH"]])
            step_files = state.home / "files" / f"step-{next(state.counter)}"
            step_files.mkdir()
            for file_name in ("output", "env", "path", "summary"):
                (step_files / file_name).write_text("")
            env.update(
                GITHUB_OUTPUT=str(step_files / "output"),
                GITHUB_ENV=str(step_files / "env"),
                GITHUB_PATH=str(step_files / "path"),
                GITHUB_STEP_SUMMARY=str(step_files / "summary"),
                GITHUB_ACTION=step_id,
            )
            began = time.monotonic()
            ok = self._step(state, step, at, env, contexts, record)
            record.seconds = time.monotonic() - began
            try:
                record.outputs.update(parse_file_command(step_files / "output"))
                state.extra_env.update(parse_file_command(step_files / "env"))
            except WorkflowError as error:
                record.log += f"\n{error}"
                ok = False
            state.extra_path.extend(line for line in (step_files / "path").read_text().splitlines() if line)
            instance.summary += (step_files / "summary").read_text()
            if instance.result == "cancelled" or (run.cancelled and not ok):
                record.result = "cancelled"
            else:
                record.result = "success" if ok else "failure"
            steps_context[step_id] = {
                "outputs": record.outputs,
                "outcome": record.result,
                "conclusion": record.result,
            }
            failed = failed or not ok
        for index, step in enumerate(steps):  # steps never reached have empty outputs
            steps_context.setdefault(str(step.get("id", f"__step{index}")), {"outputs": {}})
        return failed, steps_context

    def _step(
        self,
        state: JobState,
        step: dict[str, Any],
        where: str,
        env: dict[str, str],
        contexts: dict[str, Any],
        record: StepRun,
    ) -> bool:
        unknown = set(step) - STEP_KEYS
        if unknown:
            raise WorkflowError(f"{where}: unsupported keys {sorted(unknown)}")
        if step.get("id") in self.replace_steps or step.get("name") in self.replace_steps:
            replacement = self.replace_steps[step.get("id") or step["name"]]
            outputs = replacement(
                StepContext(env=env, workspace=state.workspace, temp=Path(env["RUNNER_TEMP"]))
            )
            record.outputs.update(outputs or {})
            record.log = "(replaced by the test's seam)"
            return True
        if "uses" in step:
            return self._action(state, step, where, env, contexts, record)
        if "run" not in step:
            raise WorkflowError(f"{where}: neither run: nor uses:")
        shell = step.get("shell", state.defaults.get("shell"))
        if shell == "bash":
            argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
        elif shell is None:
            argv = ["bash", "-e"]
        else:
            raise WorkflowError(f"{where}.shell: {shell!r} is not supported by the test runner")
        script = Path(env["GITHUB_OUTPUT"]).parent / "script.sh"
        try:  # GitHub evaluates expressions in the script text before the shell sees it
            script.write_text(to_text(substitute(str(step["run"]), contexts, f"{where}.run"), f"{where}.run"))
        except ExpressionError as error:
            raise WorkflowError(f"{where}.run: {error}") from error
        directory = step.get("working-directory", state.defaults.get("working-directory", "."))
        try:
            cwd = state.workspace / to_text(
                substitute(directory, contexts, f"{where}.working-directory"), where
            )
        except ExpressionError as error:
            raise WorkflowError(f"{where}.working-directory: {error}") from error
        if not cwd.is_dir():
            record.log = (
                f"An error occurred trying to start process: working directory '{cwd}' does not exist"
            )
            return False
        limit = min(state.timeout, float(step.get("timeout-minutes", 360)) * 60, self.deadline_s)
        return self._process(state.run, state.instance, [*argv, str(script)], cwd, env, record, limit)

    def _process(
        self,
        run: WorkflowRun,
        instance: JobRun,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        record: StepRun,
        limit: float,
    ) -> bool:
        log_path = Path(env["GITHUB_OUTPUT"]).parent / "log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            instance.processes.append(process)
            ends = time.monotonic() + limit
            while process.poll() is None:
                if time.monotonic() > ends:
                    _signal_all(instance, signal.SIGKILL)
                    record.log = f"the step ran past its {limit:g} s timeout\n"
                for fault in self.faults:
                    if fault.fired or fault.attempt != run.attempt or fault.job != instance.job:
                        continue
                    if fault.when():
                        fault.fired = True
                        instance.result = "failure"
                        instance.message = f"The runner {instance.runner} lost communication with the server"
                        _signal_all(instance, signal.SIGKILL)
                if instance.result == "cancelled":  # fail-fast cancelled it while this step was starting
                    _signal_all(instance, signal.SIGKILL)
                time.sleep(0.05)
        record.log += log_path.read_text()
        return process.returncode == 0

    def _action(
        self,
        state: JobState,
        step: dict[str, Any],
        where: str,
        env: dict[str, str],
        contexts: dict[str, Any],
        record: StepRun,
    ) -> bool:
        uses = str(step["uses"])
        try:
            options = substitute(step.get("with", {}), contexts, f"{where}.with")
        except ExpressionError as error:
            raise WorkflowError(f"{where}.with: {error}") from error
        if uses.startswith(NO_OP_ACTIONS):
            record.log = f"{uses}: a test seam, nothing to do"
            return True
        if uses.startswith("./"):
            return self._composite(state, uses, options, where, contexts, record)
        if not uses.startswith(CHECKOUT):
            raise WorkflowError(f"{where}: the test runner does not know the action {uses}")
        unknown = set(options) - CHECKOUT_INPUTS
        if unknown:
            raise WorkflowError(
                f"{where}.with: actions/checkout inputs the runner does not support: {unknown}"
            )
        record.log = checkout(
            options,
            state.workspace,
            own=contexts["github"]["repository"],
            origin=self.origin,
            event=self.event,
            repositories=self.repositories,
        )
        return True

    def _composite(
        self,
        state: JobState,
        uses: str,
        options: dict[str, Any],
        where: str,
        contexts: dict[str, Any],
        record: StepRun,
    ) -> bool:
        """A local composite action (`uses: ./path`): its steps, with its inputs, outputs and action path."""
        directory = (state.workspace / uses).resolve()
        if not (directory / "action.yml").is_file():
            record.log = (
                f"Can't find 'action.yml' under '{directory}'. Did you forget to run actions/checkout?"
            )
            return False
        action = yaml.safe_load((directory / "action.yml").read_text())
        if action.get("runs", {}).get("using") != "composite":
            raise WorkflowError(f"{where}: {uses} is not a composite action")
        declared = action.get("inputs", {})
        unknown = set(options) - set(declared)
        if unknown:
            raise WorkflowError(f"{where}.with: {uses} has no inputs {sorted(unknown)}")
        inputs = {}
        for key, spec in declared.items():
            value = options.get(key, spec.get("default", ""))
            inputs[key] = to_text(substitute(value, contexts, f"{uses}.inputs.{key}"), key)
        github = Strict("the github context", {**contexts["github"], "action_path": str(directory)})
        inner = {
            "github": github,
            "inputs": Strict(f"the inputs of {uses}", inputs),
            "runner": contexts["runner"],
        }
        for step in action["runs"]["steps"]:
            if "run" in step and "shell" not in step:
                raise WorkflowError(f"{uses}: a composite action's run: step needs shell:")
        failed, steps = self._run_steps(state, action["runs"]["steps"], inner, {}, uses)
        try:
            for key, spec in action.get("outputs", {}).items():
                record.outputs[key] = to_text(substitute(spec["value"], {**inner, "steps": steps}, key), key)
        except ExpressionError as error:
            raise WorkflowError(f"{uses}.outputs: {error}") from error
        return not failed

    def _inputs(self, given: dict[str, Any]) -> dict[str, Any]:
        declared = self.definition["on"]["workflow_call"].get("inputs", {})
        unknown = set(given) - set(declared)
        if unknown:
            raise WorkflowError(
                f"Invalid input(s) {sorted(unknown)}: the workflow declares {sorted(declared)}"
            )
        values = {}
        for name, spec in declared.items():
            kind = spec.get("type")
            if kind not in ("string", "boolean", "number"):
                raise WorkflowError(f"inputs.{name}: type {kind!r} (string, boolean or number)")
            if name not in given:
                if spec.get("required"):
                    raise WorkflowError(f"Input required and not supplied: {name}")
                values[name] = spec.get("default", {"string": "", "boolean": False, "number": 0}[kind])
                continue
            value = given[name]
            python_type = {"string": str, "boolean": bool, "number": int | float}[kind]
            if not isinstance(value, python_type):
                raise WorkflowError(f"inputs.{name}: expected a {kind}, got {value!r}")
            values[name] = value
        return values

    def _contexts(self, run: WorkflowRun, name: str, matrix: dict[str, Any] | None) -> dict[str, Any]:
        needs = {}
        for need in needs_of(self.definition["jobs"][name]):
            result = run.jobs.get(need, JobResult("skipped", [], {}))
            declared = self.definition["jobs"][need].get("outputs", {})
            outputs = {key: result.outputs.get(key, "") for key in declared}
            needs[need] = Strict(
                f"needs.{need}",
                {"result": result.result, "outputs": Strict(f"needs.{need}.outputs", outputs)},
            )
        github = {
            "event": self.event.payload,
            "event_name": self.event.name,
            "sha": self.event.sha,
            "ref": self.event.ref,
            "repository": self.event.payload.get("repository", {}).get("full_name", "octo-org/ml-repo"),
            "repository_owner": self.event.payload.get("repository", {}).get("owner", {}).get("login", ""),
            "run_id": run.run_id,
            "run_attempt": str(run.attempt),
            "actor": "octocat",
            "token": self.token,
            "job": name,
            "server_url": "https://github.com",
            "api_url": self.api_url,
        }
        return {
            "github": Strict("the github context", github),
            "inputs": Strict("the workflow's inputs", run.inputs),
            "needs": Strict(f"jobs.{name}.needs", needs),
            "matrix": Strict(f"jobs.{name}'s matrix entry", matrix or {}),
        }

    def _job_status(self, run: WorkflowRun, name: str) -> Status:
        needs = needs_of(self.definition["jobs"][name])
        ancestors, todo = set(), list(needs)
        while todo:
            need = todo.pop()
            if need not in ancestors:
                ancestors.add(need)
                todo.extend(needs_of(self.definition["jobs"][need]))
        results = {a: run.jobs.get(a, JobResult("skipped", [], {})).result for a in ancestors}
        return Status(
            success=all(results[n] == "success" for n in needs),
            failure=any(r == "failure" for r in results.values()),
            cancelled=run.cancelled,
        )

    def _workflow_outputs(self, run: WorkflowRun) -> dict[str, str]:
        declared = self.definition["on"]["workflow_call"].get("outputs", {})
        jobs = Strict(
            "the jobs context",
            {
                name: {
                    "result": r.result,
                    "outputs": Strict(
                        f"jobs.{name}.outputs",
                        {
                            key: r.outputs.get(key, "")
                            for key in self.definition["jobs"][name].get("outputs", {})
                        },
                    ),
                }
                for name, r in run.jobs.items()
            },
        )
        values = {}
        for name, spec in declared.items():
            try:
                values[name] = to_text(substitute(spec["value"], {"jobs": jobs}, f"outputs.{name}"), name)
            except ExpressionError as error:
                raise WorkflowError(f"on.workflow_call.outputs.{name}: {error}") from error
        return values


def _signal_all(instance: JobRun, sig: signal.Signals) -> None:
    for process in instance.processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100]
