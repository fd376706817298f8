"""Steps as a graph: a stable order, transitive up/downstream sets, and what `--only`/`--from` select."""

from __future__ import annotations

import graphlib
import heapq
from collections.abc import Iterable, Sequence

from mlpipe.errors import UsageError
from mlpipe.frozen import frozen
from mlpipe.graphs import Graph, reach
from mlpipe.spec.model import Pipeline
from mlpipe.text import did_you_mean

"""Step -> the steps it waits for, keys in file order."""


@frozen(kw_only=True)
class Selection:
    """Which steps a command executes; every tuple is in DAG order."""

    steps: tuple[str, ...]
    """Selected to execute: each runs, or is reused when its fingerprint matches a stored result."""
    forced: tuple[str, ...]
    """The selected steps that must run even when a stored result matches (`--from` and its downstream)."""
    required: tuple[str, ...]
    """Steps outside the selection whose stored results the selection reads; the caller checks they exist."""


class Dag:
    def __init__(self, upstream: Graph) -> None:
        self._index = {name: i for i, name in enumerate(upstream)}
        self._up = {name: tuple(upstream[name]) for name in upstream}
        down: dict[str, list[str]] = {name: [] for name in upstream}
        for name, ups in self._up.items():
            for up in ups:
                down[up].append(name)
        self._down = {name: tuple(steps) for name, steps in down.items()}

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline) -> Dag:
        return cls({name: step.upstream() for name, step in pipeline.steps.items()})

    def order(self) -> tuple[str, ...]:
        """Topological order; among steps that are ready together, file order wins."""
        sorter = graphlib.TopologicalSorter(self._up)
        sorter.prepare()
        ready = [(self._index[name], name) for name in sorter.get_ready()]
        heapq.heapify(ready)
        out: list[str] = []
        while ready:
            _, name = heapq.heappop(ready)
            out.append(name)
            sorter.done(name)
            for nxt in sorter.get_ready():
                heapq.heappush(ready, (self._index[nxt], nxt))
        return tuple(out)

    def upstream(self, step: str) -> frozenset[str]:
        """Every step `step` waits for, directly or through others."""
        return frozenset(reach(self._up, step))

    def downstream(self, step: str) -> frozenset[str]:
        """Every step that waits for `step`, directly or through others."""
        return frozenset(reach(self._down, step))

    def select(
        self, *, only: Sequence[str] = (), from_: Sequence[str] = (), with_upstream: bool = False
    ) -> Selection:
        self._check_names(only, "--only")
        self._check_names(from_, "--from")
        chosen = set(only) if only else set(self._index)
        if with_upstream:
            chosen.update(*(self.upstream(name) for name in only))
        for name in from_:
            if name not in chosen:
                raise UsageError(
                    f"--from {name}: step {name!r} is not selected by --only; "
                    "add it to --only or pass --with-upstream"
                )
        forced = set(from_).union(*(self.downstream(name) for name in from_)) & chosen
        required = set().union(*(self.upstream(name) for name in chosen)) - chosen
        order = self.order()
        return Selection(
            steps=tuple(n for n in order if n in chosen),
            forced=tuple(n for n in order if n in forced),
            required=tuple(n for n in order if n in required),
        )

    def _check_names(self, names: Iterable[str], option: str) -> None:
        for name in names:
            if name not in self._index:
                fix = did_you_mean(name, self._index)
                raise UsageError(f"{option}: no step {name!r}" + (f"; {fix}" if fix else ""))


def select(
    pipeline: Pipeline, *, only: Sequence[str] = (), from_: Sequence[str] = (), with_upstream: bool = False
) -> Selection:
    return Dag.from_pipeline(pipeline).select(only=only, from_=from_, with_upstream=with_upstream)
