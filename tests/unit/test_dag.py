"""The step graph: stable order, transitive sets, `--only`/`--from` selection, cycles."""

from __future__ import annotations

import graphlib
from pathlib import Path

import pytest

from mlpipe.dag import Dag, Selection, find_cycles, select
from mlpipe.errors import UsageError
from mlpipe.spec.model import Location, Pipeline, Step, StepInput

LOC = Location(file="mlpipe.yaml", line=1, col=1)

# Keys in file order; each step lists the steps it waits for.
GRAPH = {
    "report": ["evaluate"],
    "evaluate": ["train", "prepare"],
    "train": ["features"],
    "features": ["prepare"],
    "prepare": [],
    "lint": [],
}


def test_order_is_topological_and_takes_the_first_ready_step_in_file_order() -> None:
    assert Dag(GRAPH).order() == ("prepare", "features", "train", "evaluate", "report", "lint")
    assert Dag({"c": [], "a": [], "b": []}).order() == ("c", "a", "b")
    assert Dag({"b": ["a"], "c": [], "a": []}).order() == ("c", "a", "b")


def test_order_of_a_cycle_raises() -> None:
    with pytest.raises(graphlib.CycleError):
        Dag({"a": ["b"], "b": ["a"]}).order()


def test_upstream_and_downstream_are_transitive() -> None:
    dag = Dag(GRAPH)

    assert dag.upstream("evaluate") == {"train", "features", "prepare"}
    assert dag.upstream("prepare") == set()
    assert dag.downstream("features") == {"train", "evaluate", "report"}
    assert dag.downstream("prepare") == {"features", "train", "evaluate", "report"}
    assert dag.downstream("lint") == set()


@pytest.mark.parametrize(
    ("only", "from_", "with_upstream", "expected"),
    [
        (
            (),
            (),
            False,
            Selection(
                steps=("prepare", "features", "train", "evaluate", "report", "lint"), forced=(), required=()
            ),
        ),
        (("train",), (), False, Selection(steps=("train",), forced=(), required=("prepare", "features"))),
        (("train",), (), True, Selection(steps=("prepare", "features", "train"), forced=(), required=())),
        (
            ("report", "lint"),
            (),
            False,
            Selection(
                steps=("report", "lint"), forced=(), required=("prepare", "features", "train", "evaluate")
            ),
        ),
        (
            (),
            ("train",),
            False,
            Selection(
                steps=("prepare", "features", "train", "evaluate", "report", "lint"),
                forced=("train", "evaluate", "report"),
                required=(),
            ),
        ),
        (
            ("evaluate",),
            ("evaluate",),
            False,
            Selection(steps=("evaluate",), forced=("evaluate",), required=("prepare", "features", "train")),
        ),
        (
            ("train",),
            ("features",),
            True,
            Selection(steps=("prepare", "features", "train"), forced=("features", "train"), required=()),
        ),
        (
            (),
            ("lint", "features"),
            False,
            Selection(
                steps=("prepare", "features", "train", "evaluate", "report", "lint"),
                forced=("features", "train", "evaluate", "report", "lint"),
                required=(),
            ),
        ),
    ],
)
def test_select(
    only: tuple[str, ...], from_: tuple[str, ...], with_upstream: bool, expected: Selection
) -> None:
    assert Dag(GRAPH).select(only=only, from_=from_, with_upstream=with_upstream) == expected


@pytest.mark.parametrize(
    ("only", "from_", "message"),
    [
        (("trian",), (), "--only: no step 'trian'; did you mean 'train'?"),
        (
            (),
            ("zzz",),
            "--from: no step 'zzz'; expected one of: report, evaluate, train, features, prepare, lint",
        ),
        (
            ("train",),
            ("features",),
            "--from features: step 'features' is not selected by --only; add it to --only or pass --with-upstream",
        ),
    ],
)
def test_select_rejects_steps_it_cannot_use(
    only: tuple[str, ...], from_: tuple[str, ...], message: str
) -> None:
    with pytest.raises(UsageError) as info:
        Dag(GRAPH).select(only=only, from_=from_)
    assert str(info.value) == message


def step(name: str, run: str = "true", **fields: object) -> Step:
    return Step(name=name, code=".", run=run, loc=LOC, **fields)  # type: ignore[arg-type]


def test_from_pipeline_uses_inputs_references_and_needs() -> None:
    pipeline = Pipeline(
        name="p",
        file=Path("/w/mlpipe.yaml"),
        root=Path("/w"),
        steps={
            "report": step("report", run="cat ${{ steps.train.outputs.m }}", needs=("lint",)),
            "train": step("train", inputs={"d": StepInput(name="d", step="prepare", output="o", loc=LOC)}),
            "prepare": step("prepare"),
            "lint": step("lint", env={"X": "${{ steps.prepare.outputs.o }}"}),
        },
    )
    dag = Dag.from_pipeline(pipeline)

    assert dag.order() == ("prepare", "train", "lint", "report")
    assert dag.upstream("report") == {"train", "prepare", "lint"}
    assert select(pipeline, only=["report"]) == Selection(
        steps=("report",), forced=(), required=("prepare", "train", "lint")
    )
    assert select(pipeline, from_=["lint"], only=["lint", "report"]) == Selection(
        steps=("lint", "report"), forced=("lint", "report"), required=("prepare", "train")
    )


def test_find_cycles_gives_one_shortest_cycle_per_group_starting_in_file_order() -> None:
    graph = {
        "a": ["b"],
        "b": ["c", "a"],
        "c": ["a"],
        "d": ["d"],
        "e": ["f", "x"],
        "f": [],
        "g": ["h"],
        "h": ["i"],
        "i": ["g"],
    }
    assert find_cycles(graph) == [("a", "b", "a"), ("d", "d"), ("g", "h", "i", "g")]
    assert find_cycles(GRAPH) == []
