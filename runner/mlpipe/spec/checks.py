"""Checks across steps: every reference and `needs` entry resolves, and no steps wait for each other."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from itertools import pairwise

from mlpipe.errors import present
from mlpipe.graphs import find_cycles
from mlpipe.spec.refs import Ref, split
from mlpipe.spec.steps import Draft, Site
from mlpipe.spec.yamlnodes import Reader, position
from mlpipe.text import did_you_mean

CYCLE_FIX = "each step waits for the next; remove one of these dependencies"


def check_links(reader: Reader, params: Collection[str], drafts: Mapping[str, Draft]) -> None:
    """Report unresolved references and `needs`, then dependency cycles among the steps that resolve."""
    graph: dict[str, dict[str, Site]] = {name: {} for name in drafts}
    for name, draft in drafts.items():
        edges = graph[name]
        for site in draft.refs:
            upstream = _check_ref(reader, params, drafts, draft, site)
            if upstream is not None:
                _add_edge(edges, upstream, site)
        for need, site in draft.needs:
            if _check_need(reader, drafts, name, need, site):
                _add_edge(edges, split(need)[0], site)
    for cycle in find_cycles({name: list(edges) for name, edges in graph.items()}):
        first = graph[cycle[0]][cycle[1]]
        hops = [f"{b} (line {_line(graph[a][b])})" for a, b in pairwise(cycle)]
        reader.add(first.node, first.key, f"dependency cycle: {' -> '.join([cycle[0], *hops])}", CYCLE_FIX,
                   offset=first.offset)  # fmt: skip


def _add_edge(edges: dict[str, Site], upstream: str, site: Site) -> None:
    """Keep the edge's first site in the file, the one a cycle message points at."""
    known = edges.get(upstream)
    if known is None or position(site.node, site.offset) < position(known.node, known.offset):
        edges[upstream] = site


def _line(site: Site) -> int:
    return position(site.node, site.offset)[0]


def _check_ref(
    reader: Reader, params: Collection[str], drafts: Mapping[str, Draft], draft: Draft, site: Site
) -> str | None:
    """Report a reference that does not resolve; return the step it makes this one wait for, if any."""
    ref = present(site.ref, "a reference site without its reference")
    problem = _ref_problem(params, drafts, draft, ref, in_input=".inputs." in site.key)
    if problem is not None:
        reader.add(site.node, site.key, *problem, offset=site.offset)
        return None
    return None if ref.step is None else split(ref.step)[0]


def _ref_problem(
    params: Collection[str], drafts: Mapping[str, Draft], draft: Draft, ref: Ref, *, in_input: bool
) -> tuple[str, str] | None:
    step = draft.step
    if ref.scope == "matrix":
        return _matrix_problem(draft, ref)
    if ref.scope == "params":
        return None if ref.name in params else (f"no param {ref.name!r}", did_you_mean(ref.name, params))
    if ref.step is None:
        declared: Collection[str] = step.inputs if ref.scope == "inputs" else step.outputs
        if ref.name in declared:
            return None
        fix = did_you_mean(ref.name, declared) or f"declare it under {draft.key}.{ref.scope}"
        return f"step {step.name!r} has no {ref.scope[:-1]} {ref.name!r}", fix
    name, selector = split(ref.step)
    if name == step.name:
        fix = "" if in_input else f"use '${{{{ outputs.{ref.name} }}}}' for its own output"
        return f"step {step.name!r} refers to its own output {ref.name!r}", fix
    if name not in drafts:
        return f"no step {name!r}", did_you_mean(name, [n for n in drafts if n != step.name])
    problem = _instance_problem(drafts[name], ref, selector, in_input=in_input)
    if problem is not None:
        return problem
    declared = drafts[name].step.outputs
    if ref.name in declared:
        return None
    fix = did_you_mean(ref.name, declared) or f"declare it under steps.{name}.outputs"
    return f"step {name!r} has no output {ref.name!r}", fix


def _matrix_problem(draft: Draft, ref: Ref) -> tuple[str, str] | None:
    if ref.name in draft.matrix:
        return None
    fix = did_you_mean(ref.name, draft.matrix) or f"declare it under {draft.key}.matrix"
    return f"step {draft.step.name!r} has no matrix key {ref.name!r}", fix


def _instance_problem(
    target: Draft, ref: Ref, selector: str | None, *, in_input: bool
) -> tuple[str, str] | None:
    """A matrix step is referred to by one instance or all (`[*]`, as an input); another step never is."""
    name = target.step.name
    if not target.matrix:
        if selector is None:
            return None
        return f"step {name!r} has no matrix", f"use 'steps.{name}.outputs.{ref.name}'"
    if selector is None:
        one = next(iter(target.instances), f"{name}[KEY=VALUE,...]")
        fix = f"name one instance, e.g. 'steps.{one}.outputs.{ref.name}', or all: 'steps.{name}[*].outputs.{ref.name}'"
        return f"step {name!r} has a matrix", fix
    if selector == "*":
        if in_input:
            return None
        fix = f"declare an input 'NAME: ${{{{ steps.{name}[*].outputs.{ref.name} }}}}' and use that"
        return f"'[*]' takes every instance of {name!r}: it can only be an input", fix
    if ref.step in target.instances or not target.instances:
        return None
    return f"step {name!r} has no instance {ref.step!r}", did_you_mean(ref.step or "", target.instances)


def _check_need(reader: Reader, drafts: Mapping[str, Draft], name: str, need: str, site: Site) -> bool:
    """A step, or one instance of a matrix step (a matrix step by its name waits for every instance)."""
    if need == name:
        reader.add(site.node, site.key, f"step {name!r} cannot need itself")
    elif need not in drafts:
        base = split(need)[0]
        if base in drafts and need in drafts[base].instances:
            return base != name
        fix = did_you_mean(need, [n for n in drafts if n != name])
        reader.add(site.node, site.key, f"no step {need!r}", fix)
    return need != name and need in drafts
