"""Indentation slips: YAML nests by indentation, so one key written two spaces short (or one mapping's lines left
at its key's column) is still valid YAML that means something else, and every check after it reports a
consequence. Found here, the slip is reported alone, as the one thing to fix."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mlpipe.errors import Problem
from mlpipe.spec.yamlnodes import position

NULL = "tag:yaml.org,2002:null"


def slips(doc: Node, problems: Sequence[Problem], file: str) -> list[Problem]:
    """A key with nothing under it where a value was expected (a problem sits at its value), whose next line
    is a sibling key at the same column: the sibling and the keys after it were meant to be its children."""
    at = {(p.line, p.col) for p in problems}
    found = []
    for key, value, following in _pairs(doc):
        if not _empty(value) or position(value) not in at:
            continue
        if following.start_mark.line != _last_line(key) + 1:
            continue
        name, child = str(key.value), str(following.value) if isinstance(following, ScalarNode) else "…"
        line, col = position(key)
        message = (
            f"'{name}:' has nothing under it, and the next line ({line + 1}: '{child}:') starts at the same "
            f"column ({col}), so YAML reads it as a sibling of '{name}', not its content"
        )
        fix = (
            f"indent the lines that belong to '{name}' further than '{name}:' (e.g. {col + 1} spaces); "
            "the other problems may all come from this"
        )
        found.append(Problem(file=file, line=line, col=col, key="", message=message, fix=fix))
    return found


def bad_dedent(text: str, line: int) -> str:
    """For YAML's "expected <block end>" at `line` (1-based): the indentation the line has and the one the key
    above it has, as a fix; "" when they agree (then it is not an indentation slip)."""
    lines = text.splitlines()
    if not 1 < line <= len(lines):
        return ""
    here = _indent(lines[line - 1])
    above = next((_indent(s) for s in reversed(lines[: line - 1]) if s.strip() and not _comment(s)), None)
    if above is None or above == here:
        return ""
    return (
        f"line {line} starts at column {here + 1} but the key above it at column {above + 1}: the keys of "
        "one mapping must start at the same column; line it up with its siblings"
    )


def _pairs(node: Node) -> Iterator[tuple[Node, Node, Node]]:
    """(key, value, next key) of every mapping in the document, depth first, bounded by the loader's limits."""
    stack, seen = [node], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:  # an alias: its node was walked where it is defined
            continue
        seen.add(id(current))
        if isinstance(current, MappingNode):
            pairs = current.value
            for index, (key, value) in enumerate(pairs):
                if index + 1 < len(pairs):
                    yield key, value, pairs[index + 1][0]
                stack.append(value)
        elif isinstance(current, SequenceNode):
            stack.extend(current.value)


def _empty(node: Node) -> bool:
    """`key:` with nothing written after it (not an explicit `null` or `~`)."""
    return isinstance(node, ScalarNode) and node.tag == NULL and node.value == ""


def _last_line(key: Node) -> int:
    return int(key.end_mark.line)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _comment(line: str) -> bool:
    return line.lstrip().startswith("#")
