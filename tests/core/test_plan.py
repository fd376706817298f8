"""The planner: run or reuse for each step, and the exact reasons, from facts and a fake result store."""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlpipe.core import plan
from mlpipe.core.results import StepResult
from mlpipe.digest import Entry, Manifest
from mlpipe.spec.model import Location, Output, Param, Pipeline, RepoInput, Step, StepInput

LOC = Location(file="mlpipe.yaml", line=1, col=1)
COMMIT = "c0ffee" * 6 + "abcd"


def out(name: str, type_: Any = "dir") -> Output:
    return Output(name=name, type=type_, loc=LOC)


PREP = Step(
    name="prep",
    code="prep",
    run="python prep.py ${{ inputs.raw }} ${{ outputs.data }}",
    inputs={"raw": RepoInput(name="raw", path="data/raw.csv", loc=LOC)},
    outputs={"data": out("data")},
    loc=LOC,
)
TRAIN = Step(
    name="train",
    code="train",
    run="python train.py --lr ${{ params.lr }} ${{ inputs.data }} ${{ outputs.model }}",
    inputs={"data": StepInput(name="data", step="prep", output="data", loc=LOC)},
    outputs={"model": out("model")},
    loc=LOC,
)
REPORT = Step(
    name="report",
    code=".",
    run="cat ${{ steps.train.outputs.model }}/score > ${{ outputs.summary }}",
    outputs={"summary": out("summary", "file")},
    loc=LOC,
)
NOTIFY = Step(name="notify", code=".", run="echo done", needs=("prep",), loc=LOC)


def pipeline(*steps: Step, lr: float = 0.1) -> Pipeline:
    params = {
        "lr": Param(name="lr", default=0.1, value=lr, loc=LOC),
        "unused": Param(name="unused", default="x", value="x", loc=LOC),
    }
    return Pipeline(
        name="demo",
        file=Path("/w/mlpipe.yaml"),
        root=Path("/w"),
        params=params,
        steps={s.name: s for s in steps or (PREP, TRAIN, REPORT, NOTIFY)},
    )


PIPELINE = pipeline()
ORDER = ("prep", "train", "report", "notify")
TREES = {"prep": "1" * 40, "train": "2" * 40, ".": "3" * 40}
RAW = "sha256:" + "a" * 64
FACTS = plan.Facts(
    code_trees=TREES,
    input_digests={"prep": {"raw": RAW}},
    environment_digests={},
    platform="linux-x86_64",
)


def manifest(content: str) -> Manifest:
    sha = hashlib.sha256(content.encode()).hexdigest()
    return Manifest(type="file", entries=(Entry(path="", kind="file", executable=False, size=1, sha256=sha),))


@dataclass
class FakeStore:
    """Results by fingerprint and the latest result per step, like the real store's lookup and latest."""

    results: dict[str, StepResult] = field(default_factory=dict)
    latest_of: dict[str, StepResult] = field(default_factory=dict)
    looked_up: list[str] = field(default_factory=list)
    compared: list[tuple[str, str]] = field(default_factory=list)
    changed_files: list[tuple[str, str]] | None = None

    def lookup(self, key: str) -> StepResult | None:
        self.looked_up.append(key)
        return self.results.get(key)

    def latest(self, step: str) -> StepResult | None:
        return self.latest_of.get(step)

    def code_changes(self, old: str, new: str) -> list[tuple[str, str]] | None:
        self.compared.append((old, new))
        return self.changed_files

    def record_run(
        self, run_id: str, *, pipeline: Pipeline = PIPELINE, facts: plan.Facts = FACTS, dirty: bool = False
    ) -> None:
        """Store what a run of every step would have stored; each output's content depends only on its name."""
        produced: dict[str, dict[str, str]] = {}
        for name in ORDER:
            step = pipeline.steps[name]
            fingerprint = plan.fingerprint_step(pipeline, step, facts, produced)
            assert fingerprint is not None
            result = StepResult(
                fingerprint=fingerprint.key,
                parts=fingerprint.parts,
                outputs={o: manifest(f"{name}.{o}") for o in step.outputs},
                provenance={"run_id": run_id, "commit": COMMIT, "dirty": dirty},
            )
            stored = self.results.setdefault(fingerprint.key, result)  # the first complete entry wins
            self.latest_of[name] = stored
            produced[name] = stored.output_digests()


def make(
    store: FakeStore,
    *,
    pipeline: Pipeline = PIPELINE,
    facts: plan.Facts = FACTS,
    selected: Collection[str] = ORDER,
    forced: Collection[str] = (),
    needed: Collection[str] | None = None,
    no_reuse: bool = False,
) -> plan.Plan:
    return plan.make_plan(
        pipeline,
        ORDER,
        selected=selected,
        forced=forced,
        needed=selected if needed is None else needed,
        facts=facts,
        lookup=store.lookup,
        latest=store.latest,
        code_changes=store.code_changes,
        no_reuse=no_reuse,
    )


def actions(p: plan.Plan) -> dict[str, str]:
    return {name: s.action for name, s in p.steps.items()}


def reasons(p: plan.Plan) -> dict[str, list[str]]:
    return {name: list(s.reasons) for name, s in p.steps.items()}


UPSTREAM_PREP = "upstream prep will run (reused after all if its outputs come out the same)"
UPSTREAM_TRAIN = "upstream train will run (reused after all if its outputs come out the same)"


def test_nothing_stored_runs_everything_and_waits_for_upstream_digests() -> None:
    store = FakeStore()
    p = make(store)
    assert actions(p) == {"prep": "run", "train": "run", "report": "run", "notify": "run"}
    assert reasons(p) == {
        "prep": ["no stored result for this step yet"],
        "train": [UPSTREAM_PREP],
        "report": [UPSTREAM_TRAIN],
        "notify": ["no stored result for this step yet"],
    }
    prep = p.steps["prep"]
    assert prep.fingerprint == plan.fingerprint_step(PIPELINE, PREP, FACTS, {})
    assert (prep.selected, prep.forced, prep.result) == (True, False, None)
    assert p.steps["train"].fingerprint is None
    assert p.steps["report"].fingerprint is None
    # Only steps with a known fingerprint are looked up.
    assert store.looked_up == [prep.fingerprint.key, p.steps["notify"].fingerprint.key]  # type: ignore[union-attr]
    assert p.missing() == []


def test_everything_stored_is_reused_naming_the_run_that_made_it() -> None:
    store = FakeStore()
    store.record_run("20260101T000000000Z-1111", dirty=True)
    p = make(store)
    assert actions(p) == {"prep": "reuse", "train": "reuse", "report": "reuse", "notify": "reuse"}
    assert reasons(p)["prep"] == ["same fingerprint as run 20260101T000000000Z-1111 at c0ffeec0ff (dirty)"]
    for name, step in p.steps.items():
        assert step.result is store.latest_of[name]
        assert step.fingerprint is not None and step.fingerprint.key == step.result.fingerprint


def test_reuse_reason_without_commit() -> None:
    store = FakeStore()
    store.record_run("r1")
    for result in list(store.results.values()):
        store.results[result.fingerprint] = replace(result, provenance={"run_id": "r1", "commit": None})
    assert reasons(make(store, selected=["prep"]))["prep"] == ["same fingerprint as run r1"]


def test_a_changed_param_reruns_the_steps_that_use_it_and_waits_downstream() -> None:
    store = FakeStore()
    store.record_run("r1")
    p = make(store, pipeline=pipeline(lr=0.2))
    assert actions(p) == {"prep": "reuse", "train": "run", "report": "run", "notify": "reuse"}
    assert reasons(p)["train"] == ["param lr: 0.1 -> 0.2"]
    assert reasons(p)["report"] == [UPSTREAM_TRAIN]
    assert p.steps["train"].fingerprint is not None
    assert p.steps["report"].fingerprint is None


def test_a_changed_unused_param_reuses_everything() -> None:
    store = FakeStore()
    store.record_run("r1")
    other = replace(
        PIPELINE, params={**PIPELINE.params, "unused": replace(PIPELINE.params["unused"], value="y")}
    )
    assert set(actions(make(store, pipeline=other)).values()) == {"reuse"}


def test_a_changed_input_names_it() -> None:
    store = FakeStore()
    store.record_run("r1")
    facts = replace(FACTS, input_digests={"prep": {"raw": "sha256:" + "b" * 64}})
    p = make(store, facts=facts)
    assert actions(p)["prep"] == "run"
    assert reasons(p)["prep"] == ["input raw changed"]


def test_a_code_change_names_the_files_and_compares_the_right_trees() -> None:
    store = FakeStore(changed_files=[("modified", "prep.py"), ("added", "util/io.py")])
    store.record_run("r1")
    facts = replace(FACTS, code_trees={**TREES, "prep": "4" * 40})
    p = make(store, facts=facts)
    assert reasons(p)["prep"] == ["code changed: prep.py modified, util/io.py added"]
    assert store.compared == [("1" * 40, "4" * 40)]


def test_a_code_change_with_many_files_shows_five() -> None:
    store = FakeStore(changed_files=[("modified", f"f{i}.py") for i in range(7)])
    store.record_run("r1")
    p = make(store, facts=replace(FACTS, code_trees={**TREES, "prep": "4" * 40}))
    assert reasons(p)["prep"] == [
        "code changed: f0.py modified, f1.py modified, f2.py modified, f3.py modified, f4.py modified and 2 more"
    ]


def test_a_code_change_without_the_old_listing_names_the_trees() -> None:
    store = FakeStore(changed_files=None)
    store.record_run("r1")
    p = make(store, facts=replace(FACTS, code_trees={**TREES, "prep": "4" * 40}))
    assert reasons(p)["prep"] == ["code changed (tree 1111111111 -> 4444444444)"]


def test_a_changed_command_and_several_changes_are_all_named_in_order() -> None:
    store = FakeStore(changed_files=[("deleted", "old.py")])
    store.record_run("r1")
    changed = replace(PREP, run=PREP.run + " --fast", image="python:3.12")
    p = make(
        store,
        pipeline=pipeline(changed, TRAIN, REPORT, NOTIFY),
        facts=replace(
            FACTS,
            code_trees={**TREES, "prep": "4" * 40},
            input_digests={"prep": {"raw": "sha256:" + "b" * 64}},
        ),
    )
    assert reasons(p)["prep"] == [
        "code changed: old.py deleted",
        "input raw changed",
        "command changed",
        "image changed: None -> python:3.12",
    ]


def test_identical_parts_but_no_entry_says_the_result_is_gone() -> None:
    store = FakeStore()
    store.record_run("r1")
    store.results.clear()
    assert reasons(make(store, selected=["prep"]))["prep"] == ["stored result is gone (deleted or corrupt)"]


def test_upstream_reused_with_the_same_outputs_lets_downstream_reuse() -> None:
    # prep's code changed and it ran, but the stored entry for its new fingerprint has the same outputs:
    # downstream fingerprints are computed from output digests, so they still match.
    store = FakeStore()
    store.record_run("r1")
    facts = replace(FACTS, code_trees={**TREES, "prep": "4" * 40})
    store.record_run("r2", facts=facts)
    p = make(store, facts=facts)
    assert actions(p) == {"prep": "reuse", "train": "reuse", "report": "reuse", "notify": "reuse"}
    assert reasons(p)["train"] == ["same fingerprint as run r1 at c0ffeec0ff"]


def test_a_step_that_only_needs_a_running_step_is_decided_now() -> None:
    # `needs` orders steps without data: notify's fingerprint does not depend on prep's outputs.
    store = FakeStore()
    store.record_run("r1")
    p = make(store, facts=replace(FACTS, input_digests={"prep": {"raw": "sha256:" + "b" * 64}}))
    assert actions(p) == {"prep": "run", "train": "run", "report": "run", "notify": "reuse"}
    assert reasons(p)["notify"] == ["same fingerprint as run r1 at c0ffeec0ff"]
    assert p.steps["notify"].fingerprint is not None


def test_from_forces_without_looking_up() -> None:
    store = FakeStore()
    store.record_run("r1")
    store.looked_up.clear()
    p = make(store, forced=["train", "report"])
    assert actions(p) == {"prep": "reuse", "train": "run", "report": "run", "notify": "reuse"}
    assert reasons(p)["train"] == ["forced by --from"]
    assert reasons(p)["report"] == ["forced by --from"]
    assert (p.steps["train"].forced, p.steps["prep"].forced) == (True, False)
    assert p.steps["train"].fingerprint is not None  # known: prep is reused
    assert p.steps["report"].fingerprint is None  # waits for train
    assert store.looked_up == [p.steps["prep"].fingerprint.key, p.steps["notify"].fingerprint.key]  # type: ignore[union-attr]


def test_reuse_false_in_the_pipeline_file_forces_the_step() -> None:
    store = FakeStore()
    store.record_run("r1")
    p = make(store, pipeline=pipeline(PREP, TRAIN, REPORT, replace(NOTIFY, reuse=False)))
    assert actions(p)["notify"] == "run"
    assert reasons(p)["notify"] == ["reuse: false in the pipeline file"]
    assert p.steps["notify"].forced is True


def test_no_reuse_forces_every_selected_step() -> None:
    store = FakeStore()
    store.record_run("r1")
    p = make(store, no_reuse=True)
    assert actions(p) == {"prep": "run", "train": "run", "report": "run", "notify": "run"}
    assert set(map(tuple, reasons(p).values())) == {("--no-reuse given",)}
    assert all(s.forced for s in p.steps.values())
    # Forcing with --from wins the explanation.
    assert reasons(make(store, no_reuse=True, forced=["prep"]))["prep"] == ["forced by --from"]


def test_an_unselected_needed_step_with_a_result_is_reused_but_not_selected() -> None:
    store = FakeStore()
    store.record_run("r1")
    p = make(store, selected=["train"], needed=["prep", "train"])
    assert list(p.steps) == ["prep", "train"]
    assert actions(p) == {"prep": "reuse", "train": "reuse"}
    assert (p.steps["prep"].selected, p.steps["train"].selected) == (False, True)
    assert p.missing() == []


def test_an_unselected_needed_step_without_a_result_is_missing() -> None:
    store = FakeStore()
    p = make(store, selected=["train"], needed=["prep", "train"])
    assert actions(p) == {"prep": "missing", "train": "run"}
    assert reasons(p) == {
        "prep": ["no stored result for its current code, params and inputs"],
        "train": ["upstream prep has no stored result to read"],
    }
    assert p.steps["train"].fingerprint is None
    assert p.steps["prep"].selected is False
    assert p.steps["prep"].fingerprint == plan.fingerprint_step(PIPELINE, PREP, FACTS, {})
    assert p.missing() == ["prep"]


def test_a_forced_step_below_a_missing_step_says_it_is_forced() -> None:
    p = make(FakeStore(), selected=["train"], needed=["prep", "train"], forced=["train"])
    assert reasons(p)["train"] == ["forced by --from"]


def test_an_unselected_step_is_never_forced() -> None:
    store = FakeStore()
    store.record_run("r1")
    p = make(store, selected=["train"], needed=["prep", "train"], no_reuse=True, forced=["prep"])
    assert actions(p) == {"prep": "reuse", "train": "run"}
    assert p.steps["prep"].forced is False


def test_output_refs_cover_declared_step_inputs_and_direct_references() -> None:
    step = replace(REPORT, run=REPORT.run + " ${{ steps.prep.outputs.data }}", inputs=TRAIN.inputs)
    assert plan.output_refs(step) == {
        "data": ("prep", "data"),
        "prep.data": ("prep", "data"),
        "train.model": ("train", "model"),
    }


def test_fingerprint_step_puts_step_inputs_with_inputs_and_direct_refs_with_upstream() -> None:
    produced = {"prep": {"data": "sha256:p"}, "train": {"model": "sha256:t"}}
    train = plan.fingerprint_step(PIPELINE, TRAIN, FACTS, produced)
    report = plan.fingerprint_step(PIPELINE, REPORT, FACTS, produced)
    assert train is not None and report is not None
    assert (train.parts["inputs"], train.parts["upstream"]) == ({"data": "sha256:p"}, {})
    assert (report.parts["inputs"], report.parts["upstream"]) == ({}, {"train.model": "sha256:t"})
    assert report.parts["code"] == "3" * 40
    assert plan.fingerprint_step(PIPELINE, TRAIN, FACTS, {"prep": {}}) is None


def test_decide_once_upstream_ran_keeps_the_forced_reason_and_names_early_cutoff() -> None:
    """The runner's second decision, made once upstream outputs are known, is the plan's `decide`."""
    fingerprint = plan.fingerprint_step(PIPELINE, PREP, FACTS, {})
    assert fingerprint is not None
    stored = StepResult(fingerprint=fingerprint.key, parts=fingerprint.parts, outputs={"data": manifest("x")})
    common: dict[str, Any] = {
        "fingerprint": fingerprint,
        "previous": None,
        "code_changes": None,
    }
    forced = plan.decide(selected=True, forced_by="--no-reuse given", found=None, **common)
    assert (forced.action, forced.reasons) == ("run", ("--no-reuse given",))
    cutoff = plan.decide(selected=True, forced_by="", found=stored, upstream_reran=True, **common)
    assert (cutoff.action, cutoff.result, cutoff.reasons) == (
        "reuse",
        stored,
        ("upstream reran but produced identical outputs",),
    )
    gone = plan.decide(selected=False, forced_by="", found=None, **common)
    assert (gone.action, gone.result) == ("missing", None)
    changed = plan.decide(
        selected=True, forced_by="", found=None, **common | {"previous": replace(stored, parts={})}
    )
    assert changed.action == "run" and changed.reasons != ("no stored result for this step yet",)


def test_decide_names_the_changed_code_files_it_is_given_as_data() -> None:
    fingerprint = plan.fingerprint_step(PIPELINE, PREP, FACTS, {})
    assert fingerprint is not None
    new_tree = fingerprint.parts["code"]
    old = StepResult(fingerprint="f" * 64, parts={**fingerprint.parts, "code": "0" * 40}, outputs={})
    assert plan.changed_code(old, fingerprint) == ("0" * 40, new_tree)
    assert plan.changed_code(None, fingerprint) is None
    assert plan.changed_code(replace(old, parts=fingerprint.parts), fingerprint) is None
    common: dict[str, Any] = {"selected": True, "forced_by": "", "fingerprint": fingerprint, "found": None}
    named = plan.decide(**common, previous=old, code_changes=[("modified", "prep.py"), ("added", "util.py")])
    assert named.reasons == ("code changed: prep.py modified, util.py added",)
    unknown = plan.decide(**common, previous=old, code_changes=None)
    assert unknown.reasons == (f"code changed (tree {'0' * 10} -> {new_tree[:10]})",)
