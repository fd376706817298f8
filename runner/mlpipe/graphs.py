"""Graph algorithms on step names, stdlib only: strongly connected groups, one shortest cycle per group, the
steps one reaches. Shared by the pipeline checks (spec/checks.py: cycles are a spec error) and the step graph
(core/dag.py)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping, Sequence

Graph = Mapping[str, Sequence[str]]


def find_cycles(upstream: Graph) -> list[tuple[str, ...]]:
    """One shortest cycle per strongly connected group of steps, as a path `(a, b, ..., a)`.

    Each step in the path waits for the next. A cycle starts at its group's first step in file order.
    Names that are not keys of `upstream` are ignored.
    """
    groups = _groups(upstream)
    cycles: list[tuple[str, ...]] = []
    done: set[str] = set()
    for name in upstream:
        group = groups[name]
        if name in done or (len(group) == 1 and name not in upstream[name]):
            continue
        done.update(group)
        cycles.append(_shortest_cycle(upstream, name, group))
    return cycles


def _groups(edges: Graph) -> dict[str, frozenset[str]]:
    """Each step's strongly connected group, in time linear in the steps and edges (Tarjan's algorithm,
    iterative). The set of steps each one reaches was quadratic in memory: a 15,000-step chain, a 500 KB
    file, took two minutes and 6 GB to validate."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: dict[str, frozenset[str]] = {}

    def visit(name: str) -> tuple[str, Iterator[str]]:
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        return name, iter([n for n in edges[name] if n in edges])

    for root in edges:
        if root in index:
            continue
        work = [visit(root)]
        while work:
            name, nexts = work[-1]
            for nxt in nexts:
                if nxt not in index:
                    work.append(visit(nxt))
                    break
                if nxt in on_stack:
                    low[name] = min(low[name], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[name])
                if low[name] == index[name]:
                    members: list[str] = []
                    while not members or members[-1] != name:
                        members.append(stack.pop())
                        on_stack.discard(members[-1])
                    group = frozenset(members)
                    groups.update(dict.fromkeys(members, group))
    return groups


def reach(edges: Graph, start: str) -> set[str]:
    seen: set[str] = set()
    queue = deque(edges[start])
    while queue:
        name = queue.popleft()
        if name not in seen and name in edges:
            seen.add(name)
            queue.extend(edges[name])
    return seen


def _shortest_cycle(edges: Graph, start: str, group: frozenset[str]) -> tuple[str, ...]:
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        name = queue.popleft()
        for nxt in edges[name]:
            if nxt == start:
                path = [name]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return (*reversed(path), start)
            if nxt in group and nxt not in parent:
                parent[nxt] = name
                queue.append(nxt)
    raise ValueError(f"{start!r} is not on a cycle")
