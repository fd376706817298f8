"""The step graph: stable order, transitive sets, `--only`/`--from` selection, cycles."""

from __future__ import annotations

import graphlib
import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpipe.core.dag import Dag, Selection, select
from mlpipe.errors import UsageError
from mlpipe.graphs import find_cycles
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


def _groups_by_reach(graph: dict[str, list[str]]) -> dict[str, frozenset[str]]:
    """The definition, quadratic: a step's group is every step it reaches that reaches it back."""
    reach = {}
    for start, waits_for in graph.items():
        seen, todo = set(), list(waits_for)
        while todo:
            name = todo.pop()
            if name in graph and name not in seen:
                seen.add(name)
                todo.extend(graph[name])
        reach[start] = seen
    return {a: frozenset({a} | {b for b in reach[a] if a in reach[b]}) for a in graph}


def _shortest_return(graph: dict[str, list[str]], start: str) -> int:
    """Hops of the shortest way from `start` back to itself: breadth first, over the whole graph."""
    dist, queue = {start: 0}, [start]
    for name in queue:  # grows while it is walked: nodes come in order of distance
        for nxt in graph[name]:
            if nxt == start:
                return dist[name] + 1
            if nxt in graph and nxt not in dist:
                dist[nxt] = dist[name] + 1
                queue.append(nxt)
    raise AssertionError(f"{start} is on no cycle")


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(
    st.integers(1, 12).flatmap(
        lambda n: st.dictionaries(
            st.sampled_from([f"s{i}" for i in range(n)]),
            st.lists(st.sampled_from([f"s{i}" for i in range(n)] + ["outside"]), max_size=4),
            min_size=1,
        )
    )
)
def test_find_cycles_finds_one_shortest_cycle_in_each_group_the_definition_gives(graph) -> None:
    groups = _groups_by_reach(graph)
    cycles = find_cycles(graph)

    on_cycles = [g for name, g in groups.items() if len(g) > 1 or name in graph[name]]
    assert len(cycles) == len(set(on_cycles))
    for cycle in cycles:
        assert cycle[0] == cycle[-1] and all(b in graph[a] for a, b in itertools.pairwise(cycle))
        assert set(cycle) <= groups[cycle[0]]
        assert len(cycle) - 1 == _shortest_return(graph, cycle[0])
        assert cycle[0] == next(name for name in graph if name in groups[cycle[0]])  # first in file order


@pytest.mark.timeout(120)
def test_find_cycles_on_a_long_chain_and_a_long_cycle() -> None:
    """Linear: the reach sets it was built on took minutes and gigabytes for a 15,000-step chain."""
    n = 20_000
    chain = {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(n)}
    ring = {f"s{i}": [f"s{(i + 1) % n}"] for i in range(n)}

    assert find_cycles(chain) == []
    assert find_cycles(ring) == [tuple(f"s{i % n}" for i in range(n + 1))]
