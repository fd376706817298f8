"""Carries out a plan: walks the DAG, runs or reuses each step, stores results, keeps the run record current."""

from __future__ import annotations

import contextlib
import json
import math
import os
import posixpath
import queue
import shutil
import signal
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from mlpipe import __version__, records
from mlpipe.cache.base import Handed, ResultStore
from mlpipe.cache.intake import UnstorableOutput, check_top
from mlpipe.cache.local import DamagedData
from mlpipe.core.plan import changed_code, decide, fingerprint_step, gathered_refs, output_refs
from mlpipe.core.results import StepResult
from mlpipe.digest import FileHasher, Manifest, tree_signature, walk_signature
from mlpipe.diskspace import full_disk, is_full
from mlpipe.errors import BrokenInvariant, present
from mlpipe.frozen import frozen
from mlpipe.git.provenance import web_url, write_snapshot_ref
from mlpipe.git.workdir import private_copy, remove_tree
from mlpipe.inputs.base import RegistryAccess
from mlpipe.report.events import Reporter
from mlpipe.run.leftovers import host_step_records
from mlpipe.run.prepare import Site, StepWork, Work, workspace_path
from mlpipe.run.runners import RunnerLabels
from mlpipe.run.sweeps import gather_dir
from mlpipe.runs import RunHistory, RunRecord, StepRecord, new_run_id, utc_now
from mlpipe.spec import refs
from mlpipe.spec.model import Output, RepoInput, Step

if TYPE_CHECKING:  # the executors load when the first step starts: a run that reuses every step needs none
    from mlpipe.executors.base import ContainerSpec, Executor, Mount, RunningStep, StepOutcome
    from mlpipe.executors.gpus import Gpu, GpuPool


@frozen(kw_only=True, eq=False, repr=False)
class RunOptions:
    """How the runner runs steps: how many at once, fail-fast, limits, the steps' environment."""

    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    fail_fast: bool = False
    kill_grace_s: float = 10.0
    max_recoverable_file: int = 100 * 2**20
    """Files above this size are left out of a dirty run's snapshot commit (listed as not recoverable)."""
    step_environment: Mapping[str, str]
    """The caller's environment less mlpipe's own settings (`mlpipe.ownvars.step_environment`): what a step on
    the host starts from, and what a container step's `env-passthrough` names are taken from."""
    labels: RunnerLabels | None = None
    """This runner's labels (`run/runners.py`, from the settings' environment); None: `runs-on` is not checked."""
    registry_access: RegistryAccess = field(default_factory=RegistryAccess)
    """How `oci://` inputs reach their registry (from the command's settings)."""
    run_url: str = ""
    """The CI workflow run this run is part of (checked: github/context.py `run_url`); recorded in the run
    record and in the provenance of every result it stores, so a reuse links back to it."""


class StepError(Exception):
    """The step ran but its result is unusable (missing output, bad metrics, modified input)."""


@dataclass(eq=False, repr=False)
class _Finished:
    """A step that ended: its outcome, stored result or error."""

    name: str
    outcome: StepOutcome | None
    result: StepResult | None = None
    nondeterministic: bool = False
    error: str | None = None


class Runner:
    def __init__(
        self,
        work: Work,
        site: Site,
        reporter: Reporter,
        options: RunOptions,
        *,
        executor: Executor | None = None,
        containers: Executor | None = None,
        run_id: str | None = None,
    ) -> None:
        self.work = work
        self.steps = work.steps()
        """Name -> what this runner needs of the step; read-only, shared by every thread."""
        self.site = site
        self.reporter = reporter
        self.options = options
        self._host = executor
        """Runs steps on the host; created when the first such step starts (`_executor_for`)."""
        self.containers = containers
        """Runs steps with `image:`; the docker executor, created when the first such step starts (scheduler)."""
        # Threads: the scheduler (the thread that calls `run`) owns everything below unless it says otherwise;
        # each started step has a thread of its own (`_start`'s `after_exit`) that checks and stores its outputs
        # and hands its `_Finished` back through `_done`; output readers call only the reporter (locked).
        self._gpu_pool: GpuPool | None = None
        """Made when a step first needs GPUs (`gpu_pool()`); locked inside, though only the scheduler takes and gives back."""
        self._gpus_held: dict[str, tuple[Gpu, ...]] = {}
        self.labels = options.labels
        self.run_id = run_id or new_run_id()
        self.history = RunHistory(site.workspace.runs)
        self.produced: dict[str, StepResult] = {}
        """Finished steps' results (their outputs are the next steps' inputs): the scheduler's alone, set in
        `_reuse` and `_complete`, read in `_begin` and `_materialized`; step threads never see it."""
        self.running: dict[str, RunningStep] = {}
        """The scheduler's alone."""
        self.cancel_requested = False
        """Set by the scheduler only; step threads read it (a bool: a stale read costs one stored result)."""
        self.interrupted = False
        self._signal_received = ""
        """Stopped by SIGINT/SIGTERM (the run is `cancelled`), not by --fail-fast (the run is `failed`). Set by
        the signal handler, which Python runs in the main thread between bytecodes; read by the scheduler."""
        self._done: queue.Queue[_Finished] = queue.Queue()
        """Step threads -> the scheduler: the one way a step's outcome comes back (a queue: locked)."""
        self.record = self._new_record()
        """The run record: the scheduler's alone (step threads fill their `_Finished`, never the record)."""

    # -- the run -------------------------------------------------------------------------------------------
    def run(self) -> RunRecord:
        with self.history.active(self.run_id), self._signals():
            try:
                self._prepare_git()
                self.history.write(self.record)
                self.reporter.run_started(self.record, self.work.plan)
                self._schedule()
            finally:
                self._finish()
        return self.record

    def _new_record(self) -> RunRecord:
        work, site = self.work, self.site
        steps = {
            name: StepRecord(code=step.spec.code, tree=step.snapshot.tree)
            for name, step in self.steps.items()
        }
        return RunRecord(
            run_id=self.run_id,
            pipeline=work.pipeline.name,
            pipeline_file=workspace_path(site.workspace.root, work.pipeline.file),
            started_at=utc_now(),
            git=site.git.to_json(),
            snapshots=dict(work.facts.code_trees),
            params={name: param.value for name, param in work.pipeline.params.items()},
            options={"jobs": self.options.jobs, "fail_fast": self.options.fail_fast},
            steps=steps,
            platform=work.facts.platform,
            mlpipe_version=__version__,
            ci={"run_url": self.options.run_url} if self.options.run_url else {},
        )

    def _prepare_git(self) -> None:
        git = self.site.git
        self.record.git["snapshot_ref"] = None
        if git.in_repo and git.dirty:
            ref = write_snapshot_ref(
                git.root,
                self.run_id,
                self.site.snapshotter,
                max_file_size=self.options.max_recoverable_file,
                dirty_paths=git.dirty_paths,
            )
            self.record.git["snapshot_ref"] = ref.ref
            self.record.git["snapshot_commit"] = ref.commit
            self.record.git["unrecoverable"] = list(ref.unrecoverable)
            if ref.ignored_omitted:
                self.record.git["unrecoverable_omitted"] = ref.ignored_omitted

    def _schedule(self) -> None:
        pending = list(self.work.order)
        finished: set[str] = set()
        while pending or self.running:
            if self.interrupted and not self.cancel_requested:
                self.reporter.message(f"received {self._signal_received}: stopping running steps")
                self._cancel_all()
            if not self.cancel_requested:
                for name in list(pending):
                    if len(self.running) >= max(1, self.options.jobs):
                        break
                    if any(u not in finished for u in self.steps[name].waits_for):
                        continue
                    if self._waits_for_gpus(name):
                        continue
                    pending.remove(name)
                    self._begin(self.steps[name], finished)
            else:
                for name in pending:
                    self._mark(name, "cancelled", error="run cancelled before the step started")
                pending.clear()
            if not self.running:
                if pending and not self.cancel_requested:
                    continue
                break
            try:
                done = self._done.get(timeout=0.2)
            except queue.Empty:
                continue
            self.running.pop(done.name, None)
            self._complete(done)
            finished.add(done.name)
            if self.record.steps[done.name].status == "failed" and self.options.fail_fast:
                self._cancel_all()

    def _begin(self, step: StepWork, finished: set[str]) -> None:
        """Decide a ready step now that its upstream digests are known: skip, reuse, or start it."""
        name = step.name
        record = self.record.steps[name]
        bad = [u for u in step.waits_for if self.record.steps[u].status not in {"ran", "reused"}]
        if bad:
            finished.add(name)
            self._mark(name, "skipped", error=f"upstream {', '.join(bad)} did not succeed")
            return
        produced = {n: r.output_digests() for n, r in self.produced.items()}
        fingerprint = fingerprint_step(self.work.pipeline, step.spec, self.work.facts, produced)
        if fingerprint is None:
            raise BrokenInvariant(f"step {name!r} started before its upstream outputs were known")
        record.fingerprint, record.parts = fingerprint.key, fingerprint.parts
        planned = step.planned
        found = None if planned.forced else self.site.store.lookup(fingerprint.key)
        runs = found is None and step.selected and not planned.forced
        previous = self.work.earlier(name) if runs else None
        trees = changed_code(previous, fingerprint)
        decision = decide(
            pipeline=self.work.pipeline,
            step=step.spec,
            selected=step.selected,
            forced_by=planned.forced_by,
            fingerprint=fingerprint,
            found=found,
            earlier=previous,
            code_changes=self.work.code_changes(step.spec.code, *trees) if trees else None,
            upstream_reran=planned.action != "reuse",
        )
        record.reasons = list(decision.reasons)
        if decision.spot is not None:
            record.changed_at = {"path": decision.spot.path, "line": decision.spot.line}
        if decision.result is not None:
            self._reuse(name, decision.result)
            finished.add(name)
            return
        if decision.action == "missing":
            finished.add(name)
            self._mark(name, "failed", error="no stored result for this upstream step; run it first")
            return
        unfit = self._unfit(step.spec)
        if unfit:  # a step that can be reused never needs this runner; one that must run here cannot
            finished.add(name)
            self._mark(name, "skipped", error=unfit)
            return
        from mlpipe.git.snapshot import SnapshotChanged
        from mlpipe.inputs.base import InputUnavailable

        try:
            self._start(step, fingerprint.key, fingerprint.parts)
        # A URL that cannot be downloaded, a data set in no store, stored data found damaged, code edited
        # while the run copies it: this step fails, the others go on.
        except (InputUnavailable, DamagedData, SnapshotChanged) as error:
            remove_tree(self.site.workspace.tmp / self.run_id / name)
            finished.add(name)
            self._mark(name, "failed", error=str(error))

    def _reuse(self, name: str, result: StepResult) -> None:
        record = self.record.steps[name]
        try:
            self._check_out_paths(self.steps[name].spec, result)
        except DamagedData as error:
            self._mark(name, "failed", error=str(error))
            return
        prov = result.provenance
        record.status = "reused"
        record.reused_from = {"run_id": prov.get("run_id"), "commit": prov.get("commit")}
        if prov.get("run_url"):
            record.reused_from["run_url"] = prov["run_url"]
        record.outputs = result.output_digests()
        record.metrics = {k: dict(v) for k, v in result.metrics.items()}
        self.produced[name] = result
        self.site.store.set_latest(self.work.pipeline.name, name, result.fingerprint)
        self.reporter.step_finished(name, record)
        # No record write here: a reuse changes nothing on disk, and the next write or the last one says it.

    def _start(self, work: StepWork, key: str, parts: dict[str, Any]) -> None:
        name, step = work.name, work.spec
        record = self.record.steps[name]
        staging = self.site.workspace.tmp / self.run_id / name
        if staging.exists():
            shutil.rmtree(staging)
        (staging / "outputs").mkdir(parents=True)
        outputs = {o.name: _prepare_output(staging / "outputs", o) for o in step.outputs.values()}
        inputs, farms = self._input_paths(step)
        # Its own copy of the code: what it changes there, no other step or run sees (issue 13).
        cwd = private_copy(work.snapshot, self.site.workspace.snapshots, staging / "code")
        executor = self._executor_for(step)
        from mlpipe.executors.base import StepPaths, StepRequest

        # The step sees its paths where its executor puts them (in a container: where they are mounted).
        here = StepPaths(code=cwd, outputs_dir=staging / "outputs", inputs=inputs, outputs=outputs)
        placed = executor.place(here, self._container(work))
        seen, container = placed.paths, placed.container
        code_shown = "" if step.code == "." else step.code + "/"
        rewrites = ((f"{seen.code}/", code_shown), (str(seen.code), step.code))
        if step.image is not None:
            record.image = {"ref": step.image, **work.image}
        command = refs.render(step.run, self._resolver(step, seen.inputs, seen.outputs), quote=True)
        env = self._environment(step, seen.inputs, seen.outputs, host=container is None)
        gpus = self._take_gpus(name, step)
        if gpus:
            record.gpus = [gpu.to_json() for gpu in gpus]
            if container is None:  # in a container the engine exposes exactly these devices
                env["CUDA_VISIBLE_DEVICES"] = ",".join(gpu.index for gpu in gpus)
        log_path = self.site.workspace.logs / self.run_id / f"{name}.log"
        request = StepRequest(
            step=name,
            command=command,
            cwd=cwd,
            env=env,
            log_path=log_path,
            on_line=self.reporter.step_line,
            rewrites=rewrites,
            timeout_s=step.timeout_minutes * 60 if step.timeout_minutes else None,
            kill_grace_s=self.options.kill_grace_s,
            container=container,
            gpus=tuple(gpu.index for gpu in gpus),
        )
        record.status = "running"
        record.started_at = utc_now()
        record.log = workspace_path(self.site.workspace.root, log_path)
        self.reporter.step_started(name, record)
        hasher = self.site.store.local.hasher  # repo inputs were walked once already, to digest them
        before = {
            n: hasher.signature(path) or _state(path)
            for n, path in inputs.items()
            if self.site.store.local.handed(path) is None and n not in farms
        }
        farms = _settled(farms)
        self.history.write(self.record)  # before the step starts: a kill -9 from now on leaves it `running`
        running = executor.start(request)
        self.running[name] = running

        def after_exit() -> None:
            outcome = running.wait()
            finished = _Finished(name=name, outcome=outcome)
            try:
                if outcome.exit_code == 0 and not outcome.cancelled and not self.cancel_requested:
                    self._check_inputs(work, inputs, before, farms)
                    _check_output_tops(outputs)
                    metrics = _read_metrics(step, outputs)
                    _check_outputs(step, outputs)
                    published = self.site.store.publish(
                        StepResult(
                            fingerprint=key,
                            parts=parts,
                            outputs={},
                            metrics=metrics,
                            provenance=self._provenance(name, outcome, step),
                        ),
                        outputs,
                    )
                    finished.result = published.result
                    finished.nondeterministic = published.nondeterministic
                    self._check_out_paths(step, published.result)
            except StepError as error:
                finished.error = str(error)
            except UnstorableOutput as error:
                finished.error = f"the step's output {error.output!r} {error}"
            except DamagedData as error:
                finished.error = str(error)
            except Exception as error:  # noqa: BLE001 - reported on the step, never lost
                what = f"the outputs of step {name!r} ({', '.join(outputs)})"
                finished.error = (
                    f"storing the result failed: {_describe(error, self.site.store.local.root, what)}"
                )
            finally:
                # Done first: removing the step's code copy and staging is off the next step's path.
                self._done.put(finished)
                remove_tree(staging)

        threading.Thread(target=after_exit, name=f"mlpipe-{name}", daemon=True).start()

    def _complete(self, done: _Finished) -> None:
        held = self._gpus_held.pop(done.name, ())
        if held:
            self.gpu_pool().give_back(held)
        record = self.record.steps[done.name]
        outcome = done.outcome
        record.ended_at = utc_now()
        if outcome is not None:
            record.exit_code = outcome.exit_code
            record.duration_s = round(outcome.duration_s, 3)
        if outcome is not None and (outcome.cancelled or (self.cancel_requested and done.result is None)):
            record.status = "cancelled"
            record.error = self._stopped_by()
        elif done.result is not None and done.error is None:
            record.status = "ran"
            record.outputs = done.result.output_digests()
            record.metrics = {k: dict(v) for k, v in done.result.metrics.items()}
            record.nondeterministic = done.nondeterministic
            self.produced[done.name] = done.result
            self.site.store.set_latest(self.work.pipeline.name, done.name, done.result.fingerprint)
        else:
            record.status = "failed"
            if done.error:
                record.error = done.error
            elif outcome is not None and outcome.error:
                record.error = outcome.error
            elif outcome is not None:
                record.error = f"exited with code {outcome.exit_code}"
        self.reporter.step_finished(done.name, record)
        self.history.write(self.record)

    def _mark(self, name: str, status: Any, *, error: str) -> None:
        record = self.record.steps[name]
        record.status = status
        record.error = error
        self.reporter.step_finished(name, record)

    def _finish(self) -> None:
        for name, record in self.record.steps.items():
            if record.status in {"pending", "running"}:
                self._mark(name, "cancelled", error="run ended before the step finished")
        statuses = {r.status for n, r in self.record.steps.items() if self.steps[n].selected}
        if self.interrupted:
            self.record.status = "cancelled"
        elif statuses <= {"ran", "reused"}:
            self.record.status = "succeeded"
        else:
            self.record.status = "failed"
        self.record.ended_at = utc_now()
        # A registry behind the store: wait for the background pushes, push this record, note the outcome.
        cache = self.site.store.sync(self.record.to_json())
        if cache:
            self.record.options["cache"] = cache
            if cache.get("required") and cache.get("unavailable") and self.record.status == "succeeded":
                self.record.status = "failed"
        self.history.write(self.record)
        self.site.store.local.hasher.save()
        remove_tree(
            self.site.workspace.tmp / self.run_id
        )  # read-only code copies of steps killed mid-way too
        self.reporter.run_finished(self.record)
        if cache.get("required") and cache.get("unavailable"):
            from mlpipe.errors import CacheError

            errors = "; ".join(cache.get("errors") or ["the registry was unavailable"])
            raise CacheError(f"--cache-required: {errors}")

    # -- cancellation --------------------------------------------------------------------------------------
    def _stopped_by(self) -> str:
        """Why a running step was stopped, for its record and its line (`slow: cancelled: stopped by SIGINT`)."""
        if self._signal_received:
            return f"stopped by {self._signal_received}"
        return "stopped: another step failed (--fail-fast)" if self.cancel_requested else "stopped"

    def _cancel_all(self) -> None:
        self.cancel_requested = True
        for running in list(self.running.values()):
            running.cancel()

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            # Only set flags: the main thread may hold the reporter's lock right now. The scheduler loop,
            # which wakes at least every 0.2 s, does the stopping and the reporting.
            self._signal_received = signal.Signals(signum).name
            self.interrupted = True

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    # -- step wiring ---------------------------------------------------------------------------------------
    def _input_paths(self, step: Step) -> tuple[dict[str, Path], dict[str, tuple[str, str, Handed]]]:
        """Each input's path, and the store's farms among them: label -> (input, path prefix, farm)."""
        paths: dict[str, Path] = {}
        for name, item in step.inputs.items():
            if isinstance(item, RepoInput):
                paths[name] = self.work.pipeline.root / item.path
        from mlpipe.inputs.resolve import (
            other_paths,
        )  # URL, external and data-file inputs, fetched if need be

        paths |= other_paths(self.work.pipeline.root, step, self.site.store, self.options.registry_access)
        farms: dict[str, tuple[str, str, Handed]] = {}
        for key, (upstream, output) in output_refs(step).items():
            paths[key] = self._materialized(upstream, output)
        for key, (instances, output) in gathered_refs(step).items():
            found = {i: self._materialized(i, output) for i in instances}
            for instance, path in found.items():
                farms[f"{key}[{instance}]"] = (key, f"{instance}/", self._handed(path))
            paths[key] = gather_dir(
                self.site.workspace.tmp / self.run_id / step.name / "gathered" / key, found, output
            )
        for key, path in paths.items():
            handed = self.site.store.local.handed(path)
            if handed is not None:
                farms[key] = (key, "", handed)
        return paths, farms

    def _materialized(self, upstream: str, output: str) -> Path:
        try:
            return self.site.store.materialize(self.produced[upstream].outputs[output], output)
        except DamagedData as error:
            from mlpipe.inputs.base import InputUnavailable

            raise InputUnavailable(
                f"the stored output {upstream}.{output} was found changed at {error.path!r} and its damaged "
                f"files were dropped from the store; the next run runs {upstream!r} again"
            ) from None

    def _handed(self, path: Path) -> Handed:
        return present(self.site.store.local.handed(path), "materialize records what it hands out")

    def _resolver(self, step: Step, inputs: Mapping[str, Path], outputs: Mapping[str, Path]) -> Any:
        params = {name: p.value for name, p in self.work.pipeline.params.items()} | dict(step.matrix)

        def value_of(ref: refs.Ref) -> str:
            if ref.scope in {"params", "matrix"}:
                return refs.param_text(params[ref.name])
            if ref.scope == "inputs":
                return str(inputs[ref.name])
            if ref.scope == "outputs":
                return str(outputs[ref.name])
            return str(inputs[f"{ref.step}.{ref.name}"])

        return value_of

    def _environment(
        self, step: Step, inputs: Mapping[str, Path], outputs: Mapping[str, Path], *, host: bool = True
    ) -> dict[str, str]:
        if host:
            env = dict(self.options.step_environment)
            env.setdefault("PYTHONPYCACHEPREFIX", str(self.site.workspace.state / "pycache"))
        else:  # a container keeps its image's environment: of the caller's, only what the step passes through
            caller = self.options.step_environment
            env = {name: caller[name] for name in step.env_passthrough if name in caller}
        env["MLPIPE_RUN_ID"] = self.run_id
        env["MLPIPE_STEP"] = step.name
        for name, path in inputs.items():
            if name in step.inputs:
                env[f"MLPIPE_INPUT_{_env_name(name)}"] = str(path)
        for name, path in outputs.items():
            env[f"MLPIPE_OUTPUT_{_env_name(name)}"] = str(path)
        for name, value in step.matrix.items():
            env[f"MLPIPE_MATRIX_{_env_name(name)}"] = refs.param_text(value)
        resolver = self._resolver(step, inputs, outputs)
        for name, template in step.env.items():
            env[name] = refs.render(template, resolver, quote=False)
        return env

    def _waits_for_gpus(self, name: str) -> bool:
        """A step to run waits while fewer GPUs are free than it needs (never for more than there are)."""
        step = self.steps[name]
        gpus = step.spec.gpus
        if not gpus or step.planned.action == "reuse":
            return False
        return gpus <= len(self.work.gpus) and self.gpu_pool().available() < gpus

    def _take_gpus(self, name: str, step: Step) -> tuple[Gpu, ...]:
        if not step.gpus:
            return ()
        taken = present(self.gpu_pool().take(step.gpus), "a step is started only when enough GPUs are free")
        self._gpus_held[name] = taken
        return taken

    def _unfit(self, step: Step) -> str:
        """Why this runner cannot run the step (runs-on labels, GPU count), or ''."""
        if step.runs_on and self.labels is not None and self.labels.missing(step.runs_on):
            return self.labels.explain(step.runs_on)
        if step.gpus > len(self.work.gpus):
            return f"needs {step.gpus} GPUs (resources.gpus) and this runner has {len(self.work.gpus)}"
        return ""

    def gpu_pool(self) -> GpuPool:
        """The runner's GPUs as handed out to steps: made on first use, so a run that needs none loads no GPU code."""
        if self._gpu_pool is None:
            from mlpipe.executors.gpus import GpuPool

            self._gpu_pool = GpuPool(self.work.gpus)
        return self._gpu_pool

    def _executor_for(self, step: Step) -> Executor:
        if step.image is None:
            if self._host is None:
                from mlpipe.executors.host import HostExecutor

                self._host = HostExecutor(host_step_records(self.site.workspace))
            return self._host
        if self.containers is None:
            from mlpipe.executors.choose import container_executor

            self.containers = container_executor(self.reporter.notice)
        return self.containers

    def _container(self, work: StepWork) -> ContainerSpec | None:
        """The container a step with `image:` runs in, before its executor mounts its code, inputs and outputs."""
        step = work.spec
        if step.image is None:
            return None
        from mlpipe.executors.base import ContainerSpec

        return ContainerSpec(
            image=str(work.image.get("id") or step.image),
            image_ref=step.image,
            mounts=self._extra_mounts(step),
            labels={"io.mlpipe.run": self.run_id},
            shm_size=step.shm_size,
            ulimits=dict(step.ulimits),
            user=step.user,
            network=step.network,
        )

    def _extra_mounts(self, step: Step) -> tuple[Mount, ...]:
        """`mounts:` as bind mounts: a relative host path is in the workspace (the checkout, not the snapshot)."""
        from mlpipe.executors.base import Mount

        return tuple(
            Mount(source=self.work.pipeline.root / m.host, target=m.target, read_only=m.read_only)
            for m in step.mounts
        )

    def _provenance(self, name: str, outcome: StepOutcome, step: Step) -> dict[str, Any]:
        git = self.site.git
        source = web_url(git.remote) if git.remote else None
        prov: dict[str, Any] = {
            "run_id": self.run_id,
            "pipeline": self.work.pipeline.name,
            "step": name,
            "commit": git.commit,
            "ref": git.ref,
            "dirty": git.dirty,
            "created_at": utc_now(),
            "duration_s": round(outcome.duration_s, 3),
            **({"run_url": self.options.run_url} if self.options.run_url else {}),
        }
        if source:
            prov["source"] = source
        paths = self._repo_paths(step)
        if paths:
            prov["paths"] = paths
        return prov

    def _repo_paths(self, step: Step) -> dict[str, str]:
        """Each output's checkout path relative to the repository: its name in the registry's artifact."""
        try:
            base = self.work.pipeline.root.resolve().relative_to(self.site.git.root.resolve()).as_posix()
        except ValueError:
            base = "."
        return {
            o.name: posixpath.normpath(posixpath.join(base, o.path))
            for o in step.outputs.values()
            if o.path is not None
        }

    def _check_inputs(
        self,
        step: StepWork,
        inputs: Mapping[str, Path],
        before: Mapping[str, str],
        farms: Mapping[str, tuple[str, str, Handed]],
    ) -> None:
        """Fail the step if it changed an input's content, modes or files. Stat data alone decide nothing:
        linking a stored object for another step or run changes its ctime, and is no change of the input."""
        for name, prefix, handed in farms.values():
            damaged = self.site.store.local.check_handed(handed)
            if damaged is not None:
                raise StepError(_modified(name, prefix + damaged))
        for name, state in before.items():
            path = inputs[name]
            with contextlib.suppress(OSError):  # an input the step removed is modified
                if _state(path) == state:
                    continue
            expected = step.input_digests.get(name)
            if expected is not None and _content_digest(path) == expected:
                continue
            raise StepError(_modified(name, ""))

    def _check_out_paths(self, step: Step, result: StepResult) -> None:
        for output in step.outputs.values():
            if output.path is None:
                continue
            dest = self.work.pipeline.root / output.path
            manifest = result.outputs[output.name]
            if dest.exists() and _same_content(self.site.store, dest, manifest):
                continue
            self.site.store.checkout(manifest, dest)


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def _prepare_output(outputs_dir: Path, output: Output) -> Path:
    path = outputs_dir / output.name
    if output.type == "dir":
        path.mkdir(parents=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _check_outputs(step: Step, outputs: Mapping[str, Path]) -> None:
    for name, path in outputs.items():
        output = step.outputs[name]
        env = f"$MLPIPE_OUTPUT_{_env_name(name)}"
        if output.type == "file" and not path.is_file():
            raise StepError(f"the step exited 0 but did not write its output {name!r} (a file at {env})")
        if output.type == "dir" and not any(path.iterdir()):
            raise StepError(
                f"the step exited 0 but wrote nothing to its output {name!r} (the directory {env})"
            )


MAX_METRICS_BYTES = 16 << 20
MAX_METRICS_DEPTH = 32


def _read_metrics(step: Step, outputs: Mapping[str, Path]) -> dict[str, dict[str, float]]:
    metrics: dict[str, dict[str, float]] = {}
    for output in step.outputs.values():
        if output.kind != "metrics":
            continue
        path = outputs[output.name]
        if not path.is_file():
            continue  # reported by _check_outputs
        if path.stat().st_size > MAX_METRICS_BYTES:
            raise StepError(
                f"metrics output {output.name!r} is larger than {MAX_METRICS_BYTES >> 20} MiB; "
                "write a JSON object of name -> number (larger data belongs in a plain output)"
            )
        try:
            data = json.loads(path.read_bytes())
        except RecursionError:
            raise StepError(f"metrics output {output.name!r} is nested too deeply") from None
        except (ValueError, UnicodeDecodeError) as error:
            raise StepError(f"metrics output {output.name!r} is not valid JSON: {error}") from None
        if not isinstance(data, dict):
            raise StepError(f"metrics output {output.name!r} must be a JSON object of name -> number")
        metrics[output.name] = _flatten_metrics(output.name, data, "")
    try:  # what every later reader of the stored result accepts (records.py), or the result is unusable
        records.metrics(metrics, "metrics")
    except records.BadRecord as error:
        raise StepError(
            f"{error}; metric names must be printable, at most {records.MAX_TEXT} characters"
        ) from None
    return metrics


def _flatten_metrics(output: str, data: Mapping[str, Any], prefix: str, depth: int = 0) -> dict[str, float]:
    if depth > MAX_METRICS_DEPTH:
        raise StepError(
            f"metrics output {output!r}: nested deeper than {MAX_METRICS_DEPTH} levels at {prefix!r}"
        )
    flat: dict[str, float] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten_metrics(output, value, name + ".", depth + 1))
        elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise StepError(f"metrics output {output!r}: {name!r} is {value!r}, expected a finite number")
        else:
            flat[name] = value
    return flat


def _state(path: Path) -> str:
    """What a step must not change about an input: every file's path and stat data, as one digest."""
    st = os.stat(path)
    return (walk_signature(os.fspath(path)) if stat.S_ISDIR(st.st_mode) else tree_signature([("", st)]))[0]


def _content_digest(path: Path) -> str | None:
    try:
        return FileHasher().digest(path)
    except OSError:
        return None


def _modified(name: str, path: str) -> str:
    shown = f" ({path})" if path else ""
    return (
        f"the step modified its input {name!r}{shown}; inputs must stay unchanged: write to an output instead"
    )


def _settled(farms: Mapping[str, tuple[str, str, Handed]]) -> dict[str, tuple[str, str, Handed]]:
    """The farms as the check after the step will see them, once a change to them can no longer leave stat
    data as seen now.

    File times come from a clock that advances in ticks (4 ms at HZ=250, 10 ms at HZ=100): a write within the
    tick of the last recorded change leaves every stat field as seen (git calls this racy-clean). Files changed
    that recently (a farm just built) have their content compared after the step, or, when that is more to
    read than a wait costs, the step starts once the tick has passed."""
    since = time.time_ns() - _TICK_NS
    if sum(handed.racy_bytes(since) for _name, _prefix, handed in farms.values()) > _RACY_HASH_BYTES:
        time.sleep(_TICK_NS / 1e9)
        return dict(farms)
    return {
        label: (name, prefix, handed.distrusting_racy(since))
        for label, (name, prefix, handed) in farms.items()
    }


_TICK_NS = 30_000_000
"""More than two ticks of the coarsest kernel clock (HZ=100): a ctime older than this can no longer be racy."""
_RACY_HASH_BYTES = 16 << 20
"""Below this, hashing recently changed files after the step costs less than waiting out the tick."""


def _check_output_tops(outputs: Mapping[str, Path]) -> None:
    """An output that is itself a link or a special file, before anything reads it (a FIFO would block)."""
    for path in {p.parent for p in outputs.values()}:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise StepError(f"the step replaced the directory holding its outputs ({path.name}) by a link")
    for name, path in outputs.items():
        if not os.path.lexists(path):
            continue  # reported by _check_outputs
        try:
            check_top(path, f" at $MLPIPE_OUTPUT_{_env_name(name)}")
        except UnstorableOutput as error:
            raise StepError(f"the step's output {name!r} {error}") from None


def _same_content(store: ResultStore, dest: Path, manifest: Manifest) -> bool:
    try:
        return bool(store.local.hasher.digest(dest) == manifest.digest)
    except OSError:
        return False


def _describe(error: Exception, store: Path, what: str) -> str:
    """A full disk names the store, its file system and what is free there; anything else as it is."""
    if isinstance(error, OSError) and is_full(error):
        return full_disk(store, error, what)
    return repr(error)
