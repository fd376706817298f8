"""Everything measured before a plan: git provenance, code snapshots, input digests, selection, the plan."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from mlpipe.cache.base import ResultStore
from mlpipe.core import dag
from mlpipe.core.plan import Facts, Plan, StepPlan, make_plan
from mlpipe.core.reasons import CodeChanges, Earlier, FileChange
from mlpipe.digest import FileHasher
from mlpipe.errors import ContainerError
from mlpipe.events import Sink, to_stderr
from mlpipe.frozen import frozen
from mlpipe.git.provenance import GitInfo, start_git_info
from mlpipe.git.snapshot import Snapshot, Snapshotter
from mlpipe.git.treediff import CodeDiff
from mlpipe.git.workdir import materialize_snapshot
from mlpipe.interpreter import environment_facts
from mlpipe.paths import Workspace
from mlpipe.run.earlier import REGISTRY_LIMIT, EarlierFinder
from mlpipe.runs import RunHistory, RunRecord
from mlpipe.spec.model import Pipeline, RepoInput, Step

if TYPE_CHECKING:  # GPUs, image builds and registries load only when a pipeline uses them
    from mlpipe.cache.tiered import RemoteSettings
    from mlpipe.executors.gpus import Gpu
    from mlpipe.images.provide import Provided


def platform_id() -> str:
    """`sys.platform` and the machine, as `platform.machine()` reads it on POSIX (`os.uname()`, "unknown" as
    ""), without importing `platform` at start-up. Part of every fingerprint: keep it byte for byte."""
    machine = os.uname().machine
    return f"{sys.platform}-{'' if machine == 'unknown' else machine.lower()}"


@frozen(kw_only=True, eq=False, repr=False)
class Selected:
    """Which steps to run (`--only`, `--from`) and whether stored results may be reused."""

    only: tuple[str, ...] = ()
    from_: tuple[str, ...] = ()
    with_upstream: bool = False
    no_reuse: bool = False


@frozen(kw_only=True, eq=False, repr=False)
class Prepared:
    """Everything a plan and a run start from: pipeline, store, git state, snapshots, fingerprints."""

    pipeline: Pipeline
    workspace: Workspace
    store: ResultStore
    git: GitInfo
    snapshotter: Snapshotter
    snapshots: dict[str, Snapshot]
    """Code dir -> its snapshot."""
    facts: Facts
    order: list[str]
    selected: frozenset[str]
    needed: frozenset[str]
    plan: Plan
    code_changes: CodeChanges
    earlier: Callable[[str], Earlier | None]
    gpus: tuple[Gpu, ...] = ()
    """This runner's GPUs, discovered when a step to run asks for some (`resources.gpus`)."""

    def work(self) -> Work:
        return Work(
            pipeline=self.pipeline,
            order=tuple(self.order),
            selected=self.selected,
            needed=self.needed,
            plan=self.plan,
            facts=self.facts,
            code_changes=self.code_changes,
            earlier=self.earlier,
            snapshots=self.snapshots,
            gpus=self.gpus,
        )

    def site(self) -> Site:
        return Site(workspace=self.workspace, store=self.store, git=self.git, snapshotter=self.snapshotter)


@frozen(kw_only=True, eq=False, repr=False)
class Work:
    """What a runner carries out: the steps in order, the plan made before the run, and what it decides each
    step again with once the step's upstream outputs are known."""

    pipeline: Pipeline
    order: tuple[str, ...]
    selected: frozenset[str]
    """The steps to run or reuse; the others in `needed` are upstream steps whose stored results are read."""
    needed: frozenset[str]
    plan: Plan
    facts: Facts
    code_changes: CodeChanges
    """The changed files of a step's code, to name them (and the first changed line, for the notice)."""
    earlier: Callable[[str], Earlier | None]
    """A step's nearest earlier fingerprint, what a rerun's reasons compare with."""
    snapshots: Mapping[str, Snapshot]
    """Code dir -> its snapshot, copied for each step that runs."""
    gpus: tuple[Gpu, ...] = ()

    def steps(self) -> dict[str, StepWork]:
        """What the runner needs of each step, in order."""
        return {name: self.step(name) for name in self.order}

    def step(self, name: str) -> StepWork:
        spec = self.pipeline.steps[name]
        return StepWork(
            name=name,
            spec=spec,
            planned=self.plan.steps[name],
            selected=name in self.selected,
            waits_for=tuple(u for u in spec.upstream() if u in self.needed),
            snapshot=self.snapshots[spec.code],
            input_digests=self.facts.input_digests.get(name, {}),
            image=self.facts.images.get(spec.image, {}) if spec.image is not None else {},
        )


@frozen(kw_only=True, eq=False, repr=False)
class StepWork:
    """What the runner needs of one step, made once from `Work`: the seam through which a runner is handed the
    steps it carries out (a fan-out hands each runner its share). The fingerprint is not here: it is known once
    the step's upstream outputs are."""

    name: str
    spec: Step
    planned: StepPlan
    """What the plan made before the run decided, and why (the runner decides again: `core.plan.decide`)."""
    selected: bool
    """Selected to run or reuse; else an upstream step whose stored result is read."""
    waits_for: tuple[str, ...]
    """Its upstream steps in this run: it is decided once each has finished."""
    snapshot: Snapshot
    """Its code snapshot, copied for it when it runs."""
    input_digests: Mapping[str, str]
    """Its workspace inputs' digests as measured before the run: an input the step changed is told by them."""
    image: Mapping[str, str | None]
    """Its image's id and registry digest (`Facts.images`); empty without `image:` or where unresolved."""


@frozen(kw_only=True, eq=False, repr=False)
class Site:
    """Where a runner works: the workspace, its store, and the checkout's git state."""

    workspace: Workspace
    store: ResultStore
    git: GitInfo
    snapshotter: Snapshotter
    """Snapshots a dirty checkout into the run's snapshot ref."""


def prepare(
    pipeline: Pipeline,
    workspace: Workspace,
    store: ResultStore,
    selection: Selected,
    *,
    hasher: FileHasher,
    environ: Mapping[str, str],
    to_run: bool = True,
    build: bool = True,
    sink: Sink = to_stderr,
    base: RunRecord | None = None,
    registry: RemoteSettings | None = None,
    ahead: bool = False,
) -> Prepared:
    """`environ`: the command's settings' environment (where GPUs are looked for: PATH, MLPIPE_GPUS).

    `to_run=False` (reading stored results): no GPU check, and an unreachable container engine is no error.

    `build=False` (`mlpipe plan`): no image is built or loaded; a step whose image is nowhere yet will run.
    `sink` hears that an image is built here. `base`: the base commit's run (a pull request's base, `--since`),
    which reasons compare with first; `registry`: where run records are looked for when no record here has a
    step that runs. `ahead`: a runner carries the plan out, looking each result up again before it uses it, so
    the plan may look results up with `lookup_ahead` (a registry's objects arrive while the plan goes on)."""
    git = start_git_info(workspace.root)  # runs beside the snapshots, the input walk and the plan
    graph = dag.Dag.from_pipeline(pipeline)
    chosen = graph.select(only=selection.only, from_=selection.from_, with_upstream=selection.with_upstream)
    selected = frozenset(chosen.steps)
    needed = selected | set(chosen.required)
    order = [name for name in graph.order() if name in needed]

    snapshotter = Snapshotter(workspace.root, exclude=[workspace.cache])
    pipeline, built = _built_images(
        pipeline, order, snapshotter, workspace, store, build=to_run and build, strict=to_run, sink=sink
    )
    snapshots: dict[str, Snapshot] = {}
    for name in order:
        code = pipeline.steps[name].code
        if code not in snapshots:
            snapshots[code] = snapshotter.snapshot(workspace.root / code)
    for snap in snapshots.values():
        store.local.save_listing(snap.tree, [[f.path, f.mode, f.blob] for f in snap.files])

    facts = Facts(
        code_trees={code: snap.tree for code, snap in snapshots.items()},
        input_digests={name: _input_digests(pipeline, name, hasher) for name in order},
        environment_digests={name: _environment_digests(pipeline, name, hasher) for name in order},
        images=_images(pipeline, order, strict=to_run) | (built.images if built is not None else {}),
        platform=platform_id(),
        pending_builds=built.pending if built is not None else {},
    )

    hasher.save()

    code_changes = _code_changes(snapshotter, workspace, store)
    earlier = _earlier(pipeline, workspace, store, base=base, registry=registry)
    planner = partial(
        make_plan,
        pipeline,
        order,
        selected=selected,
        forced=frozenset(chosen.forced),
        needed=needed,
        lookup=store.lookup_ahead if ahead else store.lookup,
        earlier=earlier,
        code_changes=code_changes,
        no_reuse=selection.no_reuse,
    )
    plan = planner(facts=facts)
    # Built images only the registry has are loaded for the steps that run (and the engine's pushed for them);
    # one that had to be built instead has a new id, so the plan is made again with it.
    if (
        to_run
        and build
        and built is not None
        and built.settle(store, {n for n, s in plan.steps.items() if s.action == "run"})
    ):
        facts = replace(facts, images={**facts.images, **built.images})
        plan = planner(facts=facts)
    return Prepared(
        pipeline=pipeline,
        workspace=workspace,
        store=store,
        git=git(),
        snapshotter=snapshotter,
        snapshots=snapshots,
        facts=facts,
        order=order,
        selected=selected,
        needed=frozenset(needed),
        plan=plan,
        code_changes=code_changes,
        earlier=earlier,
        gpus=_gpus(pipeline, plan, selected, environ) if to_run else (),
    )


def _code_changes(snapshotter: Snapshotter, workspace: Workspace, store: ResultStore) -> CodeChanges:
    """The changed files of a step's code between two snapshot trees, by repository path."""
    repo_root = snapshotter.repo.root if snapshotter.repo is not None else None
    inside = workspace_path(snapshotter.root, Path(os.path.realpath(workspace.root)))
    differ = CodeDiff(
        repo_root=repo_root,
        workspace="" if inside == "." else inside,
        listing=store.local.listing,
        pool=workspace.snapshots / "blobs",
    )

    def changes(code: str, old: str, new: str) -> list[FileChange] | None:
        found = differ(code, old, new)
        if found is None:
            return None
        return [FileChange(change=kind, path=path, line=line) for kind, path, line in found]

    return changes


def _earlier(
    pipeline: Pipeline,
    workspace: Workspace,
    store: ResultStore,
    *,
    base: RunRecord | None,
    registry: RemoteSettings | None,
) -> EarlierFinder:
    remote = None
    if registry is not None:
        from mlpipe.cache.tiered import TieredStore
        from mlpipe.run.stores import remote_run_records, run_records_from

        if isinstance(store, TieredStore):  # the run's own registry connection: no second login, no new token
            tiered_store = store
            remote = lambda: run_records_from(tiered_store.open_registry(), limit=REGISTRY_LIMIT)
        else:
            remote = partial(
                remote_run_records, registry, workspace.cache, workspace.root, limit=REGISTRY_LIMIT
            )
    return EarlierFinder(
        pipeline.name, store, base=base, history=RunHistory(workspace.runs).records, remote=remote
    )


def _input_digests(pipeline: Pipeline, step: str, hasher: FileHasher) -> dict[str, str]:
    from mlpipe.inputs.resolve import other_digests  # URL, external and data-file inputs

    inputs = pipeline.steps[step].inputs.values()
    found = {i.name: hasher.digest(pipeline.root / i.path) for i in inputs if isinstance(i, RepoInput)}
    return found | other_digests(pipeline.root, inputs, hasher)


def _environment_digests(pipeline: Pipeline, step: str, hasher: FileHasher) -> dict[str, str]:
    spec = pipeline.steps[step]
    files = {path: hasher.digest(pipeline.root / path) for path in spec.environment}
    return files | environment_facts(python=spec.environment_python, packages=spec.environment_packages)


def _gpus(
    pipeline: Pipeline, plan: Plan, selected: frozenset[str], environ: Mapping[str, str]
) -> tuple[Gpu, ...]:
    """The runner's GPUs, when a step that is to run needs some; one that needs more than there are fails now."""
    needs = {
        name: pipeline.steps[name].gpus
        for name, step_plan in plan.steps.items()
        if name in selected and step_plan.action != "reuse" and pipeline.steps[name].gpus
    }
    if not needs:
        return ()
    from mlpipe.executors.gpus import check_fits, discover, why_no_gpus

    gpus = tuple(discover(environ))
    check_fits(needs, gpus, why_none=why_no_gpus(environ))
    return gpus


def _built_images(
    pipeline: Pipeline,
    order: Sequence[str],
    snapshotter: Snapshotter,
    workspace: Workspace,
    store: ResultStore,
    *,
    build: bool,
    strict: bool,
    sink: Sink,
) -> tuple[Pipeline, Provided | None]:
    """Steps with `build:` get `image:` set to their built image, tagged by the context's tree hash (an unchanged
    context is not rebuilt); the build context is the snapshot's files, exactly what the tag names. The image
    comes from the engine, else from the OCI cache, else is built (`build`) and pushed there. None: no step to
    run or reuse has `build:` (the image modules are not even loaded)."""
    if all(pipeline.steps[name].build is None for name in order):
        return pipeline, None
    from mlpipe.images.provide import BuildRequest, Provided, build_key, build_tag, provide

    steps = dict(pipeline.steps)
    requests = []
    for name in order:
        spec = steps[name].build
        if spec is None:
            continue
        snapshot = snapshotter.snapshot(workspace.root / spec.context)
        tag = build_tag(steps[name].instance_of or name, snapshot.tree)
        requests.append(
            BuildRequest(
                step=name,
                tag=tag,
                key=build_key(snapshot.tree, spec.dockerfile, platform_id()),
                shown=spec.context,
                dockerfile=spec.dockerfile,
                context=partial(materialize_snapshot, snapshot, workspace.snapshots),
            )
        )
        steps[name] = replace(steps[name], image=tag)
    try:
        provided = provide(requests, store, build=build, sink=sink)
    except ContainerError:
        if strict:
            raise
        provided = Provided()  # no engine: the images are unresolved, as `_images` leaves them
    return replace(pipeline, steps=steps), provided


def _images(pipeline: Pipeline, order: Sequence[str], *, strict: bool) -> dict[str, dict[str, str | None]]:
    """Each step image's id (pulled if missing); the engine is asked only when some step has an image.

    Built images are left to `_built_images`: they are never pulled (one `mlpipe plan` did not build is nowhere)."""
    refs = {pipeline.steps[name].image for name in order if pipeline.steps[name].build is None} - {None}
    if not refs:
        return {}
    from mlpipe.images.pull import resolve_images

    try:
        return resolve_images(ref for ref in refs if ref is not None)
    except ContainerError:
        if strict:
            raise
        return {}  # fingerprints then name the image, match nothing, and readers fall back to the latest result


def workspace_path(root: Path, path: Path) -> str:
    """A path as shown to users: relative to the workspace root when inside it."""
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)
