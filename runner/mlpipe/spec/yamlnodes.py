"""YAML nodes keep their line:col; this reads plain values from them and records problems where they sit."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mlpipe.errors import Problem
from mlpipe.spec.model import Location

MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Entry:
    """One `key: value` pair of a mapping, with both nodes."""

    name: str
    key: Node
    value: Node


def join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """'did you mean X?' for a close name, else the list of valid names (compared case-insensitively)."""
    by_lower = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    if close:
        return f"did you mean {by_lower[close[0]]!r}?"
    return f"expected one of: {', '.join(by_lower.values())}" if by_lower else ""


def plain(node: ScalarNode) -> Any:
    """The value YAML gives a scalar (None, bool, int, float, str, date, ...)."""
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def describe(node: Node) -> str:
    """What a node is, for 'expected X, found Y' messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    assert isinstance(node, ScalarNode)
    value = plain(node)
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the string {value!r}"
    kind = {bool: "boolean", int: "integer", float: "number"}.get(type(value), type(value).__name__)
    return f"the {kind} {node.value}"


class Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
    """YAML 1.1 as PyYAML reads it, except that `1e-3` and `1E+5` are numbers (as in YAML 1.2 and JSON):
    an exported pipeline is JSON, and `json.dumps` writes small and large floats that way."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:0|[1-9][0-9]*)(?:\.[0-9]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def compose(text: str) -> Node | None:
    """The document's node tree (None for an empty file); raises yaml.YAMLError."""
    node: Node | None = yaml.compose(text, Loader=Loader)
    return node


@dataclass
class Reader:
    """Walks nodes of one file, collecting every problem instead of stopping at the first."""

    file: str
    problems: list[Problem] = field(default_factory=list)

    def add(self, node: Node, key: str, message: str, fix: str = "", *, offset: int | None = None) -> None:
        line, col = position(node, offset)
        self.add_at(line, col, key, message, fix)

    def add_at(self, line: int, col: int, key: str, message: str, fix: str = "") -> None:
        self.problems.append(Problem(file=self.file, line=line, col=col, key=key, message=message, fix=fix))

    def location(self, node: Node) -> Location:
        line, col = position(node)
        return Location(file=self.file, line=line, col=col)

    def expected(self, node: Node, key: str, what: str, fix: str = "") -> None:
        self.add(node, key, f"expected {what}, found {describe(node)}", fix)

    def entries(self, node: Node, key: str, *, what: str = "key") -> list[Entry] | None:
        """A mapping's entries in file order; duplicates are reported and dropped, `<<` merges applied."""
        if not isinstance(node, MappingNode):
            self.expected(node, key, "a mapping")
            return None
        return self._entries(node, key, what, set())

    def _entries(self, node: MappingNode, key: str, what: str, seen: set[int]) -> list[Entry]:
        seen.add(id(node))
        own = {k.value for k, _ in node.value if isinstance(k, ScalarNode) and k.tag != MERGE_TAG}
        first: dict[str, Node] = {}
        merged_names: set[str] = set()
        out: list[Entry] = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                merged = self._merged(value_node, key, what, seen)
                new = [e for e in merged if e.name not in own and e.name not in merged_names]
                out.extend(new)
                merged_names.update(e.name for e in new)
            elif not isinstance(key_node, ScalarNode):
                self.add(key_node, key, f"expected a name as key, found {describe(key_node)}")
            elif key_node.value in first:
                line = first[key_node.value].start_mark.line + 1
                message = f"duplicate {what} {key_node.value!r}"
                self.add(key_node, join(key, key_node.value), message, f"first defined at line {line}")
            else:
                first[key_node.value] = key_node
                out.append(Entry(key_node.value, key_node, value_node))
        return out

    def _merged(self, node: Node, key: str, what: str, seen: set[int]) -> list[Entry]:
        """Entries merged by `<<: *anchor` (or a list of anchors, earlier ones winning)."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        out: list[Entry] = []
        for source in sources:
            if not isinstance(source, MappingNode):
                self.expected(source, key, "a mapping to merge with '<<'")
            elif id(source) not in seen:
                names = {e.name for e in out}
                out.extend(e for e in self._entries(source, key, what, seen) if e.name not in names)
        return out

    def fields(
        self, node: Node, key: str, allowed: Sequence[str], *, required: Sequence[str] = (), owner: Node
    ) -> dict[str, Entry] | None:
        """A mapping with a fixed set of keys: unknown ones and missing required ones are reported."""
        entries = self.entries(node, key)
        if entries is None:
            return None
        for entry in entries:
            if entry.name not in allowed:
                message = f"unknown key {entry.name!r}"
                self.add(entry.key, join(key, entry.name), message, did_you_mean(entry.name, allowed))
        found = {e.name: e for e in entries if e.name in allowed}
        for name in required:
            if name not in found:
                self.add(owner, key, f"missing required key {name!r}")
        return found

    def scalar(self, node: Node, key: str, types: tuple[type, ...], what: str) -> Any:
        """The node's value if it is one of `types` (a bool is never taken for a number), else None."""
        if isinstance(node, ScalarNode):
            value = plain(node)
            if isinstance(value, types) and (bool in types or not isinstance(value, bool)):
                return value
        self.expected(node, key, what)
        return None

    def string(self, node: Node, key: str) -> str | None:
        value: str | None = self.scalar(node, key, (str,), "a string")
        return value

    def strings(self, node: Node, key: str) -> list[tuple[str, Node]]:
        """A string or a list of strings, each with its node."""
        items = node.value if isinstance(node, SequenceNode) else [node]
        what = "a string or a list of strings"
        out: list[tuple[str, Node]] = []
        for item in items:
            value = self.scalar(item, key, (str,), what)
            if value is not None:
                out.append((value, item))
        return out


def position(node: Node, offset: int | None = None) -> tuple[int, int]:
    """1-based line and column of a node, or of `offset` within a scalar that sits on one line as written."""
    mark, end = node.start_mark, node.end_mark
    line, col = mark.line + 1, mark.column + 1
    if offset is None or not isinstance(node, ScalarNode) or end.line != mark.line or mark.buffer is None:
        return line, col
    source = mark.buffer[mark.index : end.index]
    if source == node.value:
        return line, col + offset
    if node.style in {"'", '"'} and source == f"{node.style}{node.value}{node.style}":
        return line, col + 1 + offset
    return line, col
