"""A pipeline spread over CI jobs (issue 15): where the jobs meet, the plan, a job's run, and the report.

Jobs meet in the registry the run writes (the trust rules decide which repository: a same-repo PR's own
scope, the trusted one on a protected ref) or, outside GitHub Actions with no registry, in the local store
they share. There the plan job leaves the plan (`fanout.<run>.plan`) and each job its part
(`fanout.<run>.part.<job>`); step results travel as they always do, as stored results looked up by
fingerprint. Where the cache is read-only (fork PRs, `--cache-mode read`) or, in Actions, there is no registry,
nothing can meet: the plan is one job that runs everything (`single` mode).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from mlpipe import __version__
from mlpipe.core.fanout import BadFanOut, FanOut, RunnerMap, StepNeeds, from_json, place, single_job
from mlpipe.core.fanparts import (
    Part,
    Unmet,
    merge,
    part_from_json,
    plan_record,
    refusal,
    run_annotations,
    unmet_upstream,
)
from mlpipe.core.plan import Plan
from mlpipe.errors import CacheError, UsageError
from mlpipe.events import Notice
from mlpipe.frozen import frozen
from mlpipe.run.prepare import Prepared, Work, workspace_path
from mlpipe.run.session import Session
from mlpipe.runs import RunRecord, StepRecord, utc_now


class Board(Protocol):
    """Where the jobs of one fan-out run meet: named JSON documents."""

    where: str

    def put(self, name: str, document: Mapping[str, Any]) -> None: ...

    def get(self, name: str) -> dict[str, Any] | None: ...


class RegistryBoard:
    def __init__(self, remote: Any, host: str, repo: str, run_id: str) -> None:
        self.remote, self.repo, self.run_id = remote, repo, run_id
        self.where = f"{host}/{repo}"

    def put(self, name: str, document: Mapping[str, Any]) -> None:
        from mlpipe.cache.oci import fanout_tag

        self.remote.push_document(self.repo, fanout_tag(self.run_id, name), document)

    def get(self, name: str) -> dict[str, Any] | None:
        from mlpipe.cache.oci import fanout_tag

        found: dict[str, Any] | None = self.remote.fetch_document(self.repo, fanout_tag(self.run_id, name))
        return found


class LocalBoard:
    """The local store's `fanout/<run>/` directory: jobs in clones on one machine that share a store."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.where = str(directory)

    def put(self, name: str, document: Mapping[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{name}.json"
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(document, sort_keys=True))
        os.replace(temp, path)

    def get(self, name: str) -> dict[str, Any] | None:
        from mlpipe import records

        try:
            return records.load_json((self.directory / f"{name}.json").read_bytes(), "fan-out document")
        except FileNotFoundError:
            return None
        except records.BadRecord:
            return None


def meeting_point(session: Session, run_id: str) -> tuple[Board | None, str]:
    """Where the jobs of run `run_id` meet, or None and why they cannot (then the run is one job)."""
    from mlpipe.cache.tiered import TieredStore

    store = session.store
    if isinstance(store, TieredStore):
        opened = store.open_registry()
        if opened is None:
            return None, "--cache-mode off: no registry to meet in"
        remote, pol = opened
        if pol.write is None:
            return (
                None,
                f"the cache is read-only ({pol.why}), so jobs on other runners could not share results",
            )
        return RegistryBoard(remote, store.settings.host, pol.write, run_id), ""
    if session.settings.environ.get("GITHUB_ACTIONS") == "true":
        return None, "no registry (--cache oci://HOST/REPO): jobs on other runners could not share results"
    return LocalBoard(store.local.root / "fanout" / run_id), ""


# -- the plan ---------------------------------------------------------------------------------------------------
def step_needs(prepared: Prepared) -> list[StepNeeds]:
    steps = prepared.pipeline.steps
    return [
        StepNeeds(
            name=name,
            upstream=tuple(u for u in steps[name].upstream() if u in prepared.needed),
            labels=steps[name].runs_on,
            own_job=steps[name].fan_out or steps[name].instance_of is not None,
            runs=prepared.plan.steps[name].action != "reuse",
            gpus=steps[name].gpus,
        )
        for name in prepared.order
    ]


def planned_record(prepared: Prepared, run_id: str) -> RunRecord:
    """The run record as planned: reused steps done (from their stored results), the others pending and why."""
    steps: dict[str, StepRecord] = {}
    for name in prepared.order:
        step, planned = prepared.pipeline.steps[name], prepared.plan.steps[name]
        record = StepRecord(
            code=step.code, tree=prepared.facts.code_trees[step.code], reasons=list(planned.reasons)
        )
        if planned.fingerprint is not None:
            record.fingerprint, record.parts = planned.fingerprint.key, planned.fingerprint.parts
        if planned.action == "reuse" and planned.result is not None:
            prov = planned.result.provenance
            record.status = "reused"
            record.reused_from = {"run_id": prov.get("run_id"), "commit": prov.get("commit")}
            record.outputs = planned.result.output_digests()
            record.metrics = {k: dict(v) for k, v in planned.result.metrics.items()}
        steps[name] = record
    return RunRecord(
        run_id=run_id,
        pipeline=prepared.pipeline.name,
        pipeline_file=workspace_path(prepared.workspace.root, prepared.pipeline.file),
        started_at=utc_now(),
        git=prepared.git.to_json(),
        snapshots=dict(prepared.facts.code_trees),
        params={name: p.value for name, p in prepared.pipeline.params.items()},
        steps=steps,
        platform=prepared.facts.platform,
        mlpipe_version=__version__,
    )


def make_fanout(
    prepared: Prepared, run_id: str, *, waves: int, runners: RunnerMap, board: Board | None, why: str
) -> FanOut:
    needs = step_needs(prepared)
    if board is not None:
        placed, mode = place(needs, waves=waves, runners=runners), "fan-out"
    else:
        placed, note = single_job(needs, waves=waves, runners=runners)
        why, mode = f"{why}; {note}" if note else why, "single"
    return FanOut(
        run_id=run_id,
        pipeline=prepared.pipeline.name,
        mode="fan-out" if mode == "fan-out" else "single",
        waves=placed,
        order=tuple(prepared.order),
        upstream={n: s.upstream for n, s in zip(prepared.order, needs, strict=True)},
        record=planned_record(prepared, run_id).to_json(),
        why=why,
        commit=prepared.git.commit,
    )


def publish_plan(fanout: FanOut, board: Board) -> FanOut:
    """Leave the plan where the jobs meet; a registry that cannot take it makes the run one job."""
    try:
        board.put("plan", fanout.to_json())
    except (CacheError, OSError) as error:
        raise CacheError(
            f"the fan-out plan could not be stored in {board.where} ({error}); the jobs could not meet there"
        ) from None
    return fanout


def read_plan(board: Board, run_id: str) -> FanOut:
    data = board.get("plan")
    if data is None:
        raise UsageError(
            f"no fan-out plan of run {run_id} in {board.where}: run `mlpipe plan --github-matrix` first (the plan "
            "job) with the same --cache, and pass its run-id output to --fan-out-run"
        )
    try:
        plan = from_json(data)
        plan_record(plan)  # checked once here: every reader of the plan's record may trust it
    except BadFanOut as error:
        raise CacheError(f"the fan-out plan of run {run_id} in {board.where} is unusable: {error}") from None
    if plan.run_id != run_id:
        raise CacheError(f"the fan-out plan stored for run {run_id} in {board.where} is run {plan.run_id}'s")
    return plan


def read_parts(
    board: Board, plan: FanOut, jobs: Sequence[str], warn: Callable[[str], None]
) -> dict[str, Part | None]:
    parts: dict[str, Part | None] = {}
    for job in jobs:
        data = board.get(f"part.{job}")
        try:
            parts[job] = None if data is None else part_from_json(data, plan, job)
        except BadFanOut as error:
            warn(f"ignoring the part of job {job} in {board.where}: {error}")
            parts[job] = None
    return parts


# -- one job ----------------------------------------------------------------------------------------------------
@frozen(kw_only=True)
class JobWork:
    work: Work | None
    """What the runner carries out (None: every step of the job is refused)."""
    refused: Mapping[str, str]
    """Step of the job -> why it is not run (an upstream step failed or has no stored result)."""


def job_steps(plan: FanOut, job_id: str, given: Sequence[str]) -> tuple[str, ...]:
    job = plan.job(job_id)
    if job is None:
        known = ", ".join(j.id for j in plan.jobs()) or "none"
        raise UsageError(f"run {plan.run_id} has no job {job_id!r} (its jobs: {known})")
    if given and set(given) != set(job.steps):
        raise UsageError(
            f"--steps {','.join(given)} are not the steps of job {job_id} ({','.join(job.steps)}); pass the "
            "matrix entry's steps, or leave --steps out"
        )
    return job.steps


def job_work(prepared: Prepared, plan: FanOut, board: Board, warn: Callable[[str], None]) -> JobWork:
    """The job's steps whose upstream results are all stored; the others refused, each with why."""
    missing = prepared.plan.missing()
    if not missing:
        return JobWork(work=prepared.work(), refused={})
    jobs = {j.id for m in missing if (j := plan.job_of(m)) is not None}
    parts = read_parts(board, plan, sorted(jobs), warn)
    unmet = {m: unmet_upstream(plan, m, parts) for m in missing}
    refused: dict[str, str] = {}
    blocked: dict[str, list[Unmet]] = {}
    steps = prepared.pipeline.steps
    for name in prepared.order:
        if name not in prepared.selected:
            continue
        causes = [unmet[u] for u in steps[name].upstream() if u in unmet]
        causes += [c for u in steps[name].upstream() if u in blocked for c in blocked[u]]
        if causes:
            blocked[name] = list({c.step: c for c in causes}.values())
            refused[name] = refusal(name, blocked[name])
    work = prepared.work()
    keep = [n for n in work.order if n not in refused and n not in unmet]
    if not any(n in work.selected for n in keep):
        return JobWork(work=None, refused=refused)
    return JobWork(
        work=replace(
            work,
            order=tuple(keep),
            selected=frozenset(n for n in work.selected if n in keep),
            needed=frozenset(keep),
            plan=Plan(steps={n: s for n, s in work.plan.steps.items() if n in keep}),
        ),
        refused=refused,
    )


def job_part(
    plan: FanOut,
    job_id: str,
    record: RunRecord | None,
    refused: Mapping[str, str],
    *,
    status: str,
    started_at: str,
    environ: Mapping[str, str],
    annotations: Sequence[Mapping[str, Any]] = (),
) -> Part:
    job = plan.job(job_id)
    steps: dict[str, StepRecord] = {}
    for name in job.steps if job is not None else ():
        if name in refused:
            steps[name] = StepRecord(status="skipped", error=refused[name])
        elif record is not None and name in record.steps:
            steps[name] = record.steps[name]
    labels = environ.get("MLPIPE_RUNNER_LABELS", "")
    runner = {"name": environ.get("RUNNER_NAME", "")[:100], "labels": labels[:500]}
    return Part(
        run_id=plan.run_id,
        job=job_id,
        status=status,
        steps=steps,
        started_at=started_at,
        ended_at=utc_now() if status != "running" else None,
        runner=runner,
        annotations=tuple(annotations),
    )


class PartPusher:
    """A Reporter that leaves the job's part where the jobs meet after each of its steps, so a job whose
    runner dies later still tells the report how far it got."""

    def __init__(
        self,
        board: Board,
        plan: FanOut,
        job_id: str,
        refused: Mapping[str, str],
        warn: Callable[[str], None],
        *,
        environ: Mapping[str, str],
    ) -> None:
        self.board, self.plan, self.job_id, self.refused, self.warn = board, plan, job_id, refused, warn
        self.environ = environ
        self.record: RunRecord | None = None
        self.started_at = utc_now()
        self.failed = ""
        self.annotations: list[dict[str, Any]] = []
        """The job's failures and warnings at their lines (set before the last push)."""
        self.warnings: list[str] = []

    def push(self, status: str) -> None:
        part = job_part(
            self.plan,
            self.job_id,
            self.record,
            self.refused,
            status=status,
            started_at=self.started_at,
            environ=self.environ,
            annotations=self.annotations,
        )
        try:
            self.board.put(f"part.{self.job_id}", part.to_json())
            self.failed = ""
        except (CacheError, OSError) as error:
            if not self.failed:
                self.warn(f"storing the part of job {self.job_id} in {self.board.where} failed: {error}")
            self.failed = str(error)

    # -- Reporter ------------------------------------------------------------------------------------------
    def run_started(self, record: RunRecord, plan: Plan) -> None:
        self.record = record

    def step_started(self, name: str, step: StepRecord) -> None:
        pass

    def step_line(self, name: str, line: str) -> None:
        pass

    def step_finished(self, name: str, step: StepRecord) -> None:
        job = self.plan.job(self.job_id)
        if job is not None and name in job.steps:
            self.push("running")

    def run_finished(self, record: RunRecord) -> None:
        self.record = record

    def message(self, text: str) -> None:
        pass

    def notice(self, notice: Notice) -> None:
        """The backends' warnings (a registry given up, an entry refused), distinct, for the job's annotations."""
        if notice.kind == "warning" and notice.text not in self.warnings and len(self.warnings) < 10:
            self.warnings.append(notice.text)


# -- the report -------------------------------------------------------------------------------------------------
def merged_record(
    board: Board, plan: FanOut, *, cancelled: bool, warn: Callable[[str], None]
) -> tuple[RunRecord, list[dict[str, Any]]]:
    """The whole run's record, and every job's annotations (each once)."""
    parts = read_parts(board, plan, [job.id for job in plan.jobs()], warn)
    return merge(plan, parts, cancelled=cancelled, ended_at=utc_now()), run_annotations(plan, parts)
