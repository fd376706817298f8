"""Spreading a pipeline over CI jobs (issue 15): which steps run in which job of which wave. Pure.

A running step's level is the number of running steps on its longest upstream path (reused steps are done and
add nothing, but order is kept through them). Level L goes to wave L+1; every level from the last wave on goes
to the last wave. Steps of one wave and one runner kind share a job, which runs them with `-j`; sweep
instances and `fan-out: true` steps get a job each. In the last wave, jobs joined by a dependency become one
job that runs its steps in order (waves cannot wait for each other's jobs). A wave over GitHub's 256 jobs per
matrix packs its own-job steps of one kind into fewer jobs. Reused steps start no job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mlpipe.errors import UsageError
from mlpipe.frozen import frozen

MAX_JOBS = 256
"""GitHub: a matrix makes at most 256 jobs per workflow run."""
MAX_OUTPUT_BYTES = 1_000_000
"""GitHub: a job output is at most 1 MB; each wave's matrix is one output of the plan job."""
MAX_TOTAL_OUTPUT_BYTES = 50_000_000
"""GitHub: all the outputs of a workflow run together are at most 50 MB."""
MAX_STEPS_ARG = 100_000
"""A job's `--steps` list is one argument of its command line (Linux takes at most 128 KiB per argument)."""
DEFAULT_RUNNER = "ubuntu-latest"
FORMAT = "mlpipe.fanout/1"
Mode = Literal["fan-out", "single"]
RunsOn = str | tuple[str, ...]
"""A job's `runs-on`: one label, or labels a runner must all have."""
_LABEL = re.compile(r"[^\x00-\x1f\x7f,]{1,100}")
JOB_ID = re.compile(r"w[0-9]{1,3}j[0-9]{1,4}")
GPU_KEY = frozenset({"gpu"})
"""The `--runner-labels` key that also places the steps with `resources: {gpus: N}` and no `runs-on`."""


@frozen(kw_only=True)
class StepNeeds:
    """What placing one step needs to know of it."""

    name: str
    upstream: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    """Its `runs-on`."""
    own_job: bool = False
    """`fan-out: true`, or an instance of a sweep."""
    runs: bool = True
    """False: reused as planned, so it starts no job."""
    gpus: int = 0
    """`resources: {gpus: N}`: with no `runs-on`, it goes where `--runner-labels` maps `gpu`."""


@frozen(kw_only=True)
class RunnerMap:
    """How a step's `runs-on` labels become a job's `runs-on` (`--runner-labels`)."""

    default: RunsOn = DEFAULT_RUNNER
    """For steps with no `runs-on`."""
    by_labels: Mapping[frozenset[str], RunsOn] = field(default_factory=dict)

    def runs_on(self, labels: Sequence[str]) -> RunsOn:
        if not labels:
            return self.default
        return self.by_labels.get(frozenset(label.lower() for label in labels), tuple(labels))

    def for_step(self, step: StepNeeds) -> RunsOn:
        """The job's `runs-on` for `step`. A step that asks for GPUs and names no runner goes where the `gpu`
        key maps: the default runner (hosted, GPU-less) would only fail it after a job's start-up."""
        if step.labels or step.gpus <= 0:
            return self.runs_on(step.labels)
        found = self.by_labels.get(GPU_KEY)
        if found is None:
            raise UsageError(
                f"step {step.name!r} asks for {step.gpus} GPU(s) (resources: {{gpus: {step.gpus}}}) and has no "
                f"runs-on, so its job would start on the default runner {_shown(self.default)}, which mlpipe "
                "cannot know has GPUs; give the step `runs-on: [<your GPU runner's labels>]` in the pipeline "
                'file, or map GPU steps to a runner: --runner-labels \'{"gpu": ["self-hosted", "gpu"]}\''
            )
        return found


def parse_runner_map(text: str | None) -> RunnerMap:
    """`--runner-labels`: a JSON object, a step's `runs-on` labels (comma-separated, any order) or `default` ->
    a runner label or a list of labels."""
    if not text:
        return RunnerMap()
    try:
        data = json.loads(text)
    except ValueError as error:
        raise UsageError(
            f"--runner-labels is not JSON ({error}); expected an object such as {_EXAMPLE}"
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"--runner-labels must be a JSON object, such as {_EXAMPLE}")
    default: RunsOn = DEFAULT_RUNNER
    found: dict[frozenset[str], RunsOn] = {}
    for key, value in data.items():
        runs_on = _runs_on_value(key, value)
        if key == "default":
            default = runs_on
            continue
        labels = [label.strip() for label in key.split(",")]
        if not all(_LABEL.fullmatch(label) for label in labels):
            raise UsageError(
                f"--runner-labels: key {key[:100]!r} is not a list of runner labels "
                "(comma-separated, each 1 to 100 printable characters)"
            )
        found[frozenset(label.lower() for label in labels)] = runs_on
    return RunnerMap(default=default, by_labels=found)


_EXAMPLE = '{"default": "ubuntu-latest", "self-hosted,gpu": ["self-hosted", "gpu"]}'


def _runs_on_value(key: str, value: Any) -> RunsOn:
    labels = [value] if isinstance(value, str) else value
    if (
        not isinstance(labels, list)
        or not labels
        or not all(isinstance(v, str) and _LABEL.fullmatch(v) for v in labels)
    ):
        raise UsageError(
            f"--runner-labels: {key[:100]!r} maps to {json.dumps(value)[:100]}; expected a runner label or a "
            "non-empty list of labels (each 1 to 100 printable characters, no commas)"
        )
    return labels[0] if isinstance(value, str) else tuple(labels)


@frozen(kw_only=True)
class Job:
    id: str
    """`w<wave>j<n>`: stable within a run; names the job in the registry and in messages."""
    wave: int
    runs_on: RunsOn
    steps: tuple[str, ...]
    """In pipeline order: a job runs them in that order (with `-j`: as their dependencies allow)."""
    name: str

    def entry(self) -> dict[str, Any]:
        runs_on = self.runs_on if isinstance(self.runs_on, str) else list(self.runs_on)
        return {"job": self.id, "name": self.name, "runs-on": runs_on, "steps": ",".join(self.steps)}


@frozen(kw_only=True)
class FanOut:
    """The plan of a fan-out run: the jobs of each wave, and what the plan found reused."""

    run_id: str
    pipeline: str
    mode: Mode
    waves: tuple[tuple[Job, ...], ...]
    order: tuple[str, ...]
    """Every step of the pipeline, in DAG order."""
    upstream: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    record: Mapping[str, Any] = field(default_factory=dict)
    """The run record as planned (JSON): reused steps done, the others pending, with why they run."""
    why: str = ""
    """In `single` mode: why the registry cannot be the meeting point."""
    check_run_id: int | None = None
    commit: str | None = None

    def jobs(self) -> tuple[Job, ...]:
        return tuple(job for wave in self.waves for job in wave)

    def job_of(self, step: str) -> Job | None:
        return next((job for job in self.jobs() if step in job.steps), None)

    def job(self, job_id: str) -> Job | None:
        return next((job for job in self.jobs() if job.id == job_id), None)

    def matrix(self, wave: int) -> dict[str, Any]:
        return {"include": [job.entry() for job in self.waves[wave - 1]]}

    def outputs(self) -> dict[str, str]:
        """The plan job's outputs (FANOUT.md): run-id, mode, wave-K and wave-K-jobs, check-run-id."""
        values = {"run-id": self.run_id, "mode": self.mode}
        for k, wave in enumerate(self.waves, start=1):
            values[f"wave-{k}"] = json.dumps(self.matrix(k), separators=(",", ":"))
            values[f"wave-{k}-jobs"] = str(len(wave))
        values["check-run-id"] = str(self.check_run_id) if self.check_run_id else ""
        return values

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "mode": self.mode,
            "why": self.why,
            "waves": [[{**job.entry(), "steps": list(job.steps)} for job in wave] for wave in self.waves],
            "order": list(self.order),
            "upstream": {name: list(ups) for name, ups in self.upstream.items()},
            "record": dict(self.record),
            "check_run_id": self.check_run_id,
            "commit": self.commit,
        }


class BadFanOut(ValueError):
    """A stored fan-out plan or part that is not what mlpipe writes."""


def from_json(data: Any) -> FanOut:
    """A fan-out plan read back (from the registry: untrusted), checked before anything uses it."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadFanOut(f"not a fan-out plan (format {FORMAT})")
    try:
        order = tuple(_names(data["order"]))
        known = set(order)
        waves = tuple(
            tuple(_job(raw, wave, known) for raw in jobs) for wave, jobs in enumerate(data["waves"], 1)
        )
        upstream = {_name(k, known): tuple(_names(v)) for k, v in data["upstream"].items()}
        record = data["record"]
        if not isinstance(record, dict) or not set(record.get("steps") or {}) <= known:
            raise BadFanOut("bad run record")
        mode = data["mode"]
        check = data.get("check_run_id")
        commit = data.get("commit")
        if mode not in ("fan-out", "single") or not isinstance(data["run_id"], str):
            raise BadFanOut("bad mode or run id")
        if check is not None and (isinstance(check, bool) or not isinstance(check, int) or check <= 0):
            raise BadFanOut("bad check run id")
        if commit is not None and not (isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{40,64}", commit)):
            raise BadFanOut("bad commit")
    except (KeyError, TypeError, AttributeError) as error:
        raise BadFanOut(f"malformed fan-out plan: {error!r}") from None
    return FanOut(
        run_id=data["run_id"],
        pipeline=str(data["pipeline"])[:200],
        mode=mode,
        waves=waves,
        order=order,
        upstream=upstream,
        record=record,
        why=str(data.get("why") or "")[:500],
        check_run_id=check,
        commit=commit,
    )


def _names(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 1000 for v in value):
        raise BadFanOut("expected a list of step names")
    return value


def _name(value: Any, known: set[str]) -> str:
    if value not in known:
        raise BadFanOut(f"unknown step {str(value)[:100]!r}")
    return str(value)


def _job(raw: Any, wave: int, known: set[str]) -> Job:
    if not isinstance(raw, dict) or not isinstance(raw.get("job"), str) or not JOB_ID.fullmatch(raw["job"]):
        raise BadFanOut("bad job id")
    steps = tuple(_name(s, known) for s in _names(raw["steps"]))
    runs_on = raw["runs-on"]
    return Job(
        id=raw["job"],
        wave=wave,
        runs_on=runs_on if isinstance(runs_on, str) else tuple(_names(runs_on)),
        steps=steps,
        name=str(raw.get("name") or "")[:200],
    )


# -- placing steps ---------------------------------------------------------------------------------------------
def running_upstream(steps: Sequence[StepNeeds]) -> dict[str, set[str]]:
    """Running step -> the running steps it waits for, directly or through reused ones."""
    by = {s.name: s for s in steps}
    reach: dict[str, set[str]] = {}
    for s in steps:
        found: set[str] = set()
        for u in s.upstream:
            if u not in by:
                continue
            found |= {u} if by[u].runs else reach[u]
        reach[s.name] = found
    return {name: ups for name, ups in reach.items() if by[name].runs}


def levels(steps: Sequence[StepNeeds]) -> dict[str, int]:
    """Running step -> its level: 0 when it waits for no running step, else one more than the deepest it waits for.

    `steps` in DAG order (upstream first)."""
    ups = running_upstream(steps)
    level: dict[str, int] = {}
    for name, waits in ups.items():
        level[name] = max((level[u] + 1 for u in waits), default=0)
    return level


@dataclass
class _Group:
    steps: list[str]
    runs_on: RunsOn
    flexible: bool
    """Every step has no `runs-on`: it can join a job on any runner."""
    own: bool


def place(steps: Sequence[StepNeeds], *, waves: int, runners: RunnerMap) -> tuple[tuple[Job, ...], ...]:
    """The jobs of each of `waves` waves. `steps`: every step of the pipeline, in DAG order."""
    if waves < 1:
        raise UsageError("--waves must be at least 1")
    order = {s.name: i for i, s in enumerate(steps)}
    by = {s.name: s for s in steps}
    level = levels(steps)
    last = waves - 1
    placed: list[list[_Group]] = [[] for _ in range(waves)]
    shared: dict[tuple[int, str], _Group] = {}
    group_of: dict[str, _Group] = {}
    for name, lvl in level.items():
        step, wave = by[name], min(lvl, last)
        runs_on = runners.for_step(step)
        key = (wave, json.dumps(runs_on))
        if step.own_job or key not in shared:
            flexible = not step.labels and step.gpus <= 0
            group = _Group(steps=[], runs_on=runs_on, flexible=flexible, own=step.own_job)
            placed[wave].append(group)
            if not step.own_job:
                shared[key] = group
        group = shared[key] if not step.own_job else placed[wave][-1]
        group.flexible = group.flexible and not step.labels and step.gpus <= 0
        group.steps.append(name)
        group_of[name] = group
    placed[last] = _join_chains(placed[last], group_of, running_upstream(steps), level, last)
    result = []
    for k, groups in enumerate(placed, start=1):
        groups = _within_limit(groups, k)
        jobs = []
        for n, group in enumerate(groups, start=1):
            names = tuple(sorted(group.steps, key=order.__getitem__))
            jobs.append(
                Job(id=f"w{k}j{n}", wave=k, runs_on=group.runs_on, steps=names, name=_job_name(group, names))
            )
        result.append(tuple(jobs))
    _check_sizes(result)
    return tuple(result)


def _join_chains(
    groups: list[_Group],
    group_of: dict[str, _Group],
    ups: Mapping[str, set[str]],
    level: Mapping[str, int],
    last: int,
) -> list[_Group]:
    """In the last wave, steps that wait for each other must share a job: jobs of one wave run side by side."""
    parent = {id(g): g for g in groups}

    def root(g: _Group) -> _Group:
        while parent[id(g)] is not g:
            g = parent[id(g)]
        return g

    for name, waits in ups.items():
        if level[name] < last:
            continue
        for u in waits:
            if level[u] >= last:
                a, b = root(group_of[name]), root(group_of[u])
                if a is not b:
                    parent[id(b)] = a
    joined: dict[int, list[_Group]] = {}
    for g in groups:
        joined.setdefault(id(root(g)), []).append(g)
    return [_merge(members) for members in joined.values()]


def _merge(members: list[_Group]) -> _Group:
    if len(members) == 1:
        return members[0]
    fixed = {json.dumps(g.runs_on): g for g in members if not g.flexible}
    if len(fixed) > 1:
        kinds = "; ".join(f"{_shown(g.runs_on)} ({', '.join(g.steps[:3])})" for g in fixed.values())
        raise UsageError(
            "the pipeline is deeper than the waves, so its last levels run in one job each chain, but this chain "
            f"needs runners of different kinds: {kinds}; give more waves (--waves, and as many wave jobs in the "
            "workflow), or map these labels to one runner with --runner-labels"
        )
    runs_on = next(iter(fixed.values())).runs_on if fixed else members[0].runs_on
    steps = [name for g in members for name in g.steps]
    return _Group(steps=steps, runs_on=runs_on, flexible=not fixed, own=False)


def _within_limit(groups: list[_Group], wave: int) -> list[_Group]:
    """At most MAX_JOBS jobs: the kind with the most jobs shares fewer jobs, round robin, until the wave fits."""
    while len(groups) > MAX_JOBS:
        kinds: dict[str, list[_Group]] = {}
        for g in groups:
            kinds.setdefault(json.dumps(g.runs_on), []).append(g)
        crowded = max(kinds.values(), key=len)
        if len(crowded) < 2:
            raise UsageError(
                f"wave {wave} needs more than {MAX_JOBS} jobs on {len(kinds)} different runner kinds; GitHub "
                f"starts at most {MAX_JOBS} jobs per matrix: map labels to fewer runners with --runner-labels"
            )
        buckets = max(1, len(crowded) - (len(groups) - MAX_JOBS))
        packed = [
            _Group(steps=[], runs_on=crowded[0].runs_on, flexible=True, own=True) for _ in range(buckets)
        ]
        for i, g in enumerate(crowded):
            packed[i % buckets].steps.extend(g.steps)
            packed[i % buckets].flexible &= g.flexible
        kept = [g for g in groups if json.dumps(g.runs_on) != json.dumps(crowded[0].runs_on)]
        groups = kept + packed
    return groups


def _check_sizes(waves: Sequence[Sequence[Job]]) -> None:
    total = 0
    for k, jobs in enumerate(waves, start=1):
        for job in jobs:
            if len(",".join(job.steps)) > MAX_STEPS_ARG:
                raise UsageError(
                    f"job {job.id} of wave {k} runs {len(job.steps)} steps whose names take more than "
                    f"{MAX_STEPS_ARG} characters, too long for its command line; give more waves or shorter names"
                )
        size = len(json.dumps({"include": [job.entry() for job in jobs]}, separators=(",", ":")).encode())
        if size > MAX_OUTPUT_BYTES:
            raise UsageError(
                f"wave {k}'s matrix takes {size} bytes, over GitHub's {MAX_OUTPUT_BYTES} bytes per job output; "
                "give more waves, or shorter step names"
            )
        total += size
    if total > MAX_TOTAL_OUTPUT_BYTES:
        raise UsageError(
            f"the waves' matrices take {total} bytes, over GitHub's {MAX_TOTAL_OUTPUT_BYTES} bytes of outputs per "
            "workflow run; give fewer waves, or shorter step names"
        )


def _shown(runs_on: RunsOn) -> str:
    return runs_on if isinstance(runs_on, str) else "[" + ", ".join(runs_on) + "]"


def _job_name(group: _Group, steps: Sequence[str]) -> str:
    listed = ", ".join(steps[:3]) + (f" and {len(steps) - 3} more" if len(steps) > 3 else "")
    return f"{listed} ({_shown(group.runs_on)})"[:200]


def single_job(
    steps: Sequence[StepNeeds], *, waves: int, runners: RunnerMap
) -> tuple[tuple[tuple[Job, ...], ...], str]:
    """Every running step in one job of wave 1 (the registry cannot be a meeting point), and a note when some
    step asks for a runner the job is not on."""
    running = tuple(s for s in steps if s.runs)
    kinds = {json.dumps(runners.for_step(s)): runners.for_step(s) for s in running if s.labels or s.gpus > 0}
    runs_on = next(iter(kinds.values())) if len(kinds) == 1 else runners.default
    note = ""
    if len(kinds) > 1:
        note = (
            f"steps ask for {len(kinds)} runner kinds ({', '.join(_shown(k) for k in kinds.values())}) and one "
            f"job runs on {_shown(runs_on)}: a step whose labels that runner lacks is skipped"
        )
    waves_jobs: list[tuple[Job, ...]] = [() for _ in range(max(1, waves))]
    if running:
        names = tuple(s.name for s in running)
        group = _Group(steps=list(names), runs_on=runs_on, flexible=False, own=False)
        waves_jobs[0] = (Job(id="w1j1", wave=1, runs_on=runs_on, steps=names, name=_job_name(group, names)),)
    _check_sizes(waves_jobs)
    return tuple(waves_jobs), note
