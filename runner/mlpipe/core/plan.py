"""Per step: run or reuse, and why. Pure: every measurement and lookup is passed in."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import field
from typing import Literal

from mlpipe.core import fingerprint as fp
from mlpipe.core.reasons import CodeChanges, Earlier, FileChange, Spot, what_changed
from mlpipe.core.results import StepResult
from mlpipe.digest import json_digest
from mlpipe.frozen import frozen
from mlpipe.spec.model import Pipeline, Step, StepInput

Action = Literal["run", "reuse", "missing"]
"""`missing`: a step outside the selection whose stored result is needed but absent."""


@frozen(kw_only=True, eq=False, repr=False)
class Facts:
    """What was measured on disk before planning."""

    code_trees: Mapping[str, str]
    """Code dir -> snapshot tree hash."""
    input_digests: Mapping[str, Mapping[str, str]]
    """Step -> repo input name -> content digest."""
    environment_digests: Mapping[str, Mapping[str, str]]
    """Step -> environment file -> content digest."""
    platform: str
    images: Mapping[str, Mapping[str, str | None]] = field(default_factory=dict)
    """Image as a step names it -> {"id": its config digest, "digest": its registry digest or None}."""
    pending_builds: Mapping[str, str] = field(default_factory=dict)
    """Step -> why it runs: its `build:` image is neither built nor in the cache (`mlpipe plan` builds nothing)."""


@frozen(kw_only=True, eq=False, repr=False)
class StepPlan:
    """One step's part of the plan."""

    name: str
    action: Action
    selected: bool
    """Selected to execute (run or reuse); else only its stored result is used."""
    forced: bool = False
    forced_by: str = ""
    """Why it runs whatever is stored (--from, --no-reuse, `reuse: false`), or ''."""
    fingerprint: fp.Fingerprint | None = None
    """None while an upstream step still has to run: its output digests are not known yet."""
    result: StepResult | None = None
    reasons: tuple[str, ...] = ()
    spot: Spot | None = None
    """Where what makes it run changed (a file's line, a param's), when it runs for a change."""


@frozen(kw_only=True, eq=False, repr=False)
class Plan:
    """Per step: run, reuse or missing, and why."""

    steps: Mapping[str, StepPlan] = field(default_factory=dict)
    """In execution order."""

    def missing(self) -> list[str]:
        return [name for name, s in self.steps.items() if s.action == "missing"]


def output_refs(step: Step) -> dict[str, tuple[str, str]]:
    """Every upstream output a step reads: declared step inputs by name, direct refs by 'S.O'.

    Inputs that take every instance of a matrix step (`[*]`) are in `gathered_refs` instead.
    """
    found = {
        name: (i.step, i.output)
        for name, i in step.inputs.items()
        if isinstance(i, StepInput) and not i.instances
    }
    for ref in fp.used_upstream(step):
        upstream, _, output = ref.rpartition(".")  # an instance name may hold dots: train[lr=0.1]
        found[ref] = (upstream, output)
    return found


def gathered_refs(step: Step) -> dict[str, tuple[tuple[str, ...], str]]:
    """Inputs `${{ steps.S[*].outputs.O }}`: input name -> (every instance of S, O)."""
    return {
        name: (i.instances, i.output)
        for name, i in step.inputs.items()
        if isinstance(i, StepInput) and i.instances
    }


def gathered_digest(digests: Mapping[str, str]) -> str:
    """A `[*]` input's digest: over each instance's name and output digest."""
    return json_digest(dict(digests))


def image_id(facts: Facts, step: Step) -> str | None:
    """What a step's image is by content (a moved tag reruns the step); its name only where not resolved."""
    if step.image is None:
        return None
    found = facts.images.get(step.image)
    return str(found["id"]) if found and found.get("id") else step.image


def fingerprint_step(
    pipeline: Pipeline, step: Step, facts: Facts, produced: Mapping[str, Mapping[str, str]]
) -> fp.Fingerprint | None:
    """The step's fingerprint, or None while some upstream output digest is unknown.

    `produced`: step -> output name -> digest, for upstream steps whose result is known.
    """
    input_digests = dict(facts.input_digests.get(step.name, {}))
    upstream_digests: dict[str, str] = {}
    for key, (upstream, output) in output_refs(step).items():
        digest = produced.get(upstream, {}).get(output)
        if digest is None:
            return None
        if key in step.inputs:
            input_digests[key] = digest
        else:
            upstream_digests[key] = digest
    for key, (instances, output) in gathered_refs(step).items():
        found = {instance: produced.get(instance, {}).get(output) for instance in instances}
        if None in found.values():
            return None
        input_digests[key] = gathered_digest({k: v for k, v in found.items() if v is not None})
    return fp.compute(
        step,
        params={name: p.value for name, p in pipeline.params.items()} | dict(step.matrix),
        input_digests=input_digests,
        upstream_digests=upstream_digests,
        code_tree=facts.code_trees[step.code],
        environment_digests=facts.environment_digests.get(step.name, {}),
        platform=facts.platform,
        image=image_id(facts, step),
    )


def make_plan(
    pipeline: Pipeline,
    order: Sequence[str],
    *,
    selected: Collection[str],
    forced: Collection[str],
    needed: Collection[str],
    facts: Facts,
    lookup: Callable[[str], StepResult | None],
    earlier: Callable[[str], Earlier | None],
    code_changes: CodeChanges,
    no_reuse: bool = False,
) -> Plan:
    """Decide each needed step in `order`.

    `needed`: the selected steps and the upstream steps whose stored results they read. `earlier(step)`: the
    step's nearest earlier fingerprint, asked only for a step that runs for a change; `code_changes(code dir,
    old tree, new tree)`: the changed files, asked only when its code changed.
    """
    produced: dict[str, dict[str, str]] = {}
    will_run: set[str] = set()
    plans: dict[str, StepPlan] = {}
    for name in order:
        if name not in needed:
            continue
        step = pipeline.steps[name]
        is_selected = name in selected
        forced_by = force_reason(step, from_flag=name in forced, no_reuse=no_reuse) if is_selected else ""
        # `needs` only orders steps: a step whose outputs are not read leaves the fingerprint known.
        reads = {upstream for upstream, _ in output_refs(step).values()}
        reads.update(*(instances for instances, _ in gathered_refs(step).values()))
        waiting_on = [u for u in step.upstream() if u in will_run and u in reads]
        pending = facts.pending_builds.get(name, "")  # no image id: no fingerprint, nothing to reuse
        step_fp = None if waiting_on or pending else fingerprint_step(pipeline, step, facts, produced)
        found = lookup(step_fp.key) if step_fp and not forced_by else None
        compared = found is None and is_selected and not (forced_by or waiting_on or pending)
        previous = earlier(name) if compared else None
        trees = changed_code(previous, step_fp)
        decision = decide(
            pipeline=pipeline,
            step=step,
            selected=is_selected,
            forced_by=forced_by,
            fingerprint=step_fp,
            found=found,
            earlier=previous,
            code_changes=code_changes(step.code, *trees) if trees else None,
            waiting_on=waiting_on,
            lacking=[u for u in waiting_on if plans[u].action == "missing"],
            pending=pending,
        )
        if decision.result is not None:
            produced[name] = decision.result.output_digests()
        else:
            will_run.add(name)
        plans[name] = StepPlan(
            name=name,
            action=decision.action,
            selected=is_selected,
            forced=bool(forced_by),
            forced_by=forced_by,
            fingerprint=step_fp,
            result=decision.result,
            reasons=decision.reasons,
            spot=decision.spot,
        )
    return Plan(steps=plans)


@frozen(kw_only=True, eq=False, repr=False)
class Decision:
    """Run or reuse one step, and why."""

    action: Action
    result: StepResult | None = None
    """The stored result to reuse."""
    reasons: tuple[str, ...] = ()
    spot: Spot | None = None


def decide(
    *,
    pipeline: Pipeline,
    step: Step,
    selected: bool,
    forced_by: str,
    fingerprint: fp.Fingerprint | None,
    found: StepResult | None,
    earlier: Earlier | None,
    code_changes: Sequence[FileChange] | None = None,
    waiting_on: Sequence[str] = (),
    lacking: Sequence[str] = (),
    pending: str = "",
    upstream_reran: bool = False,
) -> Decision:
    """Run or reuse one step, and why: what the plan decides before the run, and the runner again once the
    step's upstream outputs are known. Pure: the caller looks the store up and passes what it found.

    `forced_by`: why the step runs whatever is stored, or ''. `found`: the stored result for `fingerprint`
    (None when there is none, it was not looked up, or the fingerprint is not known yet). `earlier`: the step's
    nearest earlier fingerprint, to name what changed; `code_changes`: its changed files, when its code changed
    since `earlier` (`changed_code`) and the caller could list them. `waiting_on`: upstream steps that run first, so the
    fingerprint is not known yet; `lacking`: those of them that have no stored result to read. `pending`: why
    the step's image is not there yet. `upstream_reran`: decided after upstream steps ran (early cutoff).
    """
    if found is not None:
        why = "upstream reran but produced identical outputs" if upstream_reran else _reused_from(found)
        return Decision(action="reuse", result=found, reasons=(why,))
    if not selected:
        return Decision(
            action="missing", reasons=(pending or "no stored result for its current code, params and inputs",)
        )
    if forced_by:
        reasons = [forced_by]
    elif lacking:
        reasons = [f"upstream {', '.join(lacking)} has no stored result to read"]
    elif pending:
        reasons = [pending]
    elif waiting_on:
        names = ", ".join(waiting_on)
        reasons = [f"upstream {names} will run (reused after all if its outputs come out the same)"]
    else:
        changed = what_changed(pipeline, step, earlier, fingerprint, code_changes)
        return Decision(action="run", reasons=changed.reasons, spot=changed.spot)
    return Decision(action="run", reasons=tuple(reasons))


def changed_code(previous: Earlier | None, new: fp.Fingerprint | None) -> tuple[str, str] | None:
    """The (old, new) code trees when a step's code changed since its nearest earlier fingerprint: what the
    caller lists the changed files of (`decide`'s `code_changes`), or None."""
    if previous is None or new is None:
        return None
    old, current = previous.parts.get("code"), new.parts.get("code")
    if isinstance(old, str) and isinstance(current, str) and old != current:
        return old, current
    return None


def force_reason(step: Step, *, from_flag: bool, no_reuse: bool) -> str:
    """Why a selected step runs whatever is stored, or ''."""
    if from_flag:
        return "forced by --from"
    if no_reuse:
        return "--no-reuse given"
    return "" if step.reuse else "reuse: false in the pipeline file"


def _reused_from(result: StepResult) -> str:
    prov = result.provenance
    commit = str(prov.get("commit") or "")[:10]
    where = f" at {commit}" if commit else ""
    dirty = " (dirty)" if prov.get("dirty") else ""
    return f"same fingerprint as run {prov.get('run_id', '?')}{where}{dirty}"
