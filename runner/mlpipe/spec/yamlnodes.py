"""YAML nodes keep their line:col; this reads plain values from them and records problems where they sit."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent
from yaml.nodes import CollectionNode, MappingNode, Node, ScalarNode, SequenceNode

from mlpipe.errors import BrokenInvariant, Problem
from mlpipe.frozen import frozen
from mlpipe.spec.facts import Facts
from mlpipe.spec.model import Location
from mlpipe.spec.params import INT64
from mlpipe.text import did_you_mean


@frozen
class Entry:
    """One `key: value` pair of a mapping, with both nodes."""

    name: str
    key: Node
    value: Node


def join(path: str, name: str) -> str:
    """`steps.train` + `env` -> `steps.train.env`. A name from the file is cut at 64 characters: a key path
    is built for every node below it, and a 400 KB key copied into each made a 1 MB file take 24 GB."""
    name = name if len(name) <= MAX_NAME else f"{name[: MAX_NAME - 3]}..."
    return f"{path}.{name}" if path else name


def plain(node: ScalarNode) -> Any:
    """The value YAML gives a scalar (None, bool, int, float, str, date, ...).

    `<<` is a merge only as a key (Reader.entries merges it); anywhere else it is the text, which PyYAML
    has no constructor for (`name: <<` was a ConstructorError traceback).
    """
    if node.tag == MERGE_TAG:
        return node.value
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def describe(node: Node) -> str:
    """What a node is, for 'expected X, found Y' messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if not isinstance(node, ScalarNode):
        raise BrokenInvariant(f"a YAML node that is no mapping, list or scalar: {type(node).__name__}")
    value = plain(node)
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the string {value!r}"
    kind = {bool: "boolean", int: "integer", float: "number"}.get(type(value), type(value).__name__)
    return f"the {kind} {node.value}"


YAML = "tag:yaml.org,2002:"
MERGE_TAG = YAML + "merge"
STR_TAG = YAML + "str"
TAGS = frozenset(YAML + name for name in ("str", "int", "float", "bool", "null", "seq", "map"))
"""The tags a file may write out (`!!str 007`); any other (`!!python/object`, `!!binary`, `!foo`) is refused."""
MAX_DEPTH = 64
"""Lists and mappings nested deeper than this are refused: a pipeline needs about six levels."""
MAX_VALUES = 100_000
"""Values a document may stand for once every alias is expanded (a 'billion laughs' stands for billions)."""
MAX_NAME = 64
"""Characters of one name shown in a key path."""
MAX_PROBLEMS = 200
"""Problems reported for one file; the rest are counted. A file of 100,000 wrong values gets one screen."""
MAX_TEXT = 500
"""Characters of a problem's message or fix (a message may quote a value from the file)."""
SURROGATE = re.compile("[\ud800-\udfff]")
TYPE_FIX = "use a plain string, number, boolean, list or mapping"
ALIAS_FIX = "write fewer aliases of large anchors"


@frozen
class Refusal:
    """Well-formed YAML that mlpipe will not read, at its 1-based line:col and key path."""

    line: int
    col: int
    key: str
    message: str
    fix: str


class Refused(yaml.YAMLError):  # type: ignore[misc]  # PyYAML ships no types
    """Raised by `compose`, with every refusal found before it stopped."""

    def __init__(self, refusals: Sequence[Refusal]) -> None:
        super().__init__("; ".join(r.message for r in refusals))
        self.refusals = tuple(refusals)


class Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
    """YAML 1.1 as PyYAML reads it, except that `1e-3` and `1E+5` are numbers (as in YAML 1.2 and JSON):
    an exported pipeline is JSON, and `json.dumps` writes small and large floats that way.

    It also bounds what a file can make mlpipe do: nesting depth and the size an alias expands to (both
    stop composing at once), and refuses every scalar that could not become a plain value later: an unknown
    tag, a string holding NUL or a lone surrogate, an integer beyond 64 bits, an infinite or NaN number.
    An implicit date or `=` that is not one (`2001-13-45`) is a string, as YAML 1.2 reads it.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.values = 0
        self.sizes: dict[int, int] = {}
        """id(node) -> how many values it stands for, once composed; an alias adds its target's."""
        self.refusals: list[Refusal] = []
        self.keys = [""]
        """The key path of the node being composed, as messages name it (`steps.train.env.A`)."""

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        self.keys.append(join(self.keys[-1], index.value) if isinstance(index, ScalarNode) else self.keys[-1])
        try:
            return self._compose(event, parent, index)
        finally:
            self.keys.pop()

    def _compose(self, event: Any, parent: Node | None, index: Any) -> Node:
        if isinstance(event, AliasEvent):
            node: Node = super().compose_node(parent, index)
            size = self.sizes.get(id(node))
            if size is None:
                self.stop(event, f"alias *{event.anchor} refers to a list or mapping that contains it", "")
            self.count(event, size or 0, f"alias *{event.anchor} makes the document stand for", ALIAS_FIX)
            return node
        explicit = event.tag not in (None, "!")
        if explicit and event.tag not in TAGS:
            self.refuse(event, f"YAML tag {_short(event.tag)!r} is not supported", TYPE_FIX)
        if isinstance(event, CollectionStartEvent) and self.depth >= MAX_DEPTH:
            message = f"lists and mappings nested more than {MAX_DEPTH} deep"
            self.stop(event, message, "a pipeline needs a few levels: flatten the file")
        self.depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        children = _children(node) if isinstance(node, CollectionNode) else []
        self.sizes[id(node)] = 1 + sum(self.sizes[id(child)] for child in children)
        self.count(event, 1, "the file holds", "a pipeline is far smaller: keep data out of it")
        if isinstance(node, ScalarNode) and isinstance(event, ScalarEvent):
            self.check_scalar(node, explicit=explicit and event.tag in TAGS)
        return node

    def count(self, event: Any, size: int, what: str, fix: str) -> None:
        self.values += size
        if self.values > MAX_VALUES:
            self.stop(event, f"{what} more than {MAX_VALUES} values", fix)

    def check_scalar(self, node: ScalarNode, *, explicit: bool) -> None:
        if node.tag == MERGE_TAG:
            return
        try:
            value = plain(node)
        except (ValueError, KeyError, TypeError, IndexError, yaml.YAMLError):  # IndexError: `!!int` of ""
            if explicit or node.tag in {YAML + "int", YAML + "float"}:
                self.refuse(node, *_unreadable(node))
            else:
                node.tag = STR_TAG  # `2001-13-45`, `=`: not a date or a value key, so the text as written
            return
        if isinstance(value, str) and SURROGATE.search(value):
            value = node.value = _paired(value)
        problem = _value_problem(value, node)
        if problem is not None:
            self.refuse(node, *problem)

    def refuse(self, at: Any, message: str, fix: str) -> None:
        mark, key = at.start_mark, self.keys[-1]
        key = key if len(key) <= 120 else f"{key[:117]}..."
        self.refusals.append(Refusal(mark.line + 1, mark.column + 1, key, message, fix))

    def stop(self, at: Any, message: str, fix: str) -> None:
        self.refuse(at, message, fix)
        raise Refused(self.refusals)


def _children(node: CollectionNode) -> list[Node]:
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    return list(node.value)


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix(YAML) if tag.startswith(YAML) else tag


def _unreadable(node: ScalarNode) -> tuple[str, str]:
    kind = _short(node.tag)
    if node.tag == YAML + "int" and len(node.value) > 20:
        return f"integer of {len(node.value)} digits is out of range", _range_fix("an integer")
    return f"{node.value[:40]!r} is not a valid {kind}", f"write a valid {kind}, or remove the tag"


def _paired(text: str) -> str:
    """`"\\ud83d\\ude00"` as one character, as JSON reads it (an exported pipeline is JSON, and json.dumps
    writes characters beyond U+FFFF so); PyYAML reads each escape alone. Lone halves stay, for the check."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _range_fix(what: str) -> str:
    return f"use {what} between -2**63 and 2**63-1, or quote it to make it a string"


def _value_problem(value: Any, node: ScalarNode) -> tuple[str, str] | None:
    """Why a scalar's value cannot reach a command, a path or a record, if it cannot."""
    if isinstance(value, str):
        if "\0" in value:
            return (
                "a string holds the NUL character",
                "remove it: commands, paths and variables cannot hold it",
            )
        half = SURROGATE.search(value)
        if half is not None:
            fix = "escape the character itself (\\UXXXXXXXX), not half of a UTF-16 pair"
            return f"a string holds the lone surrogate \\u{ord(half.group()):04x}", fix
    elif isinstance(value, bool):
        return None
    elif isinstance(value, int) and value not in INT64:
        return f"integer {node.value[:40]} is out of range", _range_fix("an integer")
    elif isinstance(value, float) and not math.isfinite(value):
        return (
            f"{node.value[:40]} is not a finite number",
            "use a finite number, or quote it to make it a string",
        )
    return None


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:0|[1-9][0-9]*)(?:\.[0-9]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def compose(text: str) -> Node | None:
    """The document's node tree (None for an empty file); raises yaml.YAMLError, Refused among them."""
    loader = Loader(text)
    try:
        node: Node | None = loader.get_single_node()
    finally:
        loader.dispose()
    if loader.refusals:
        raise Refused(loader.refusals)
    return node


@dataclass
class Reader:
    """Walks nodes of one file, collecting every problem instead of stopping at the first."""

    file: str
    problems: list[Problem] = field(default_factory=list)
    dropped: int = 0
    """Problems past MAX_PROBLEMS, counted, not kept."""
    facts: Facts = field(default_factory=Facts)
    """The loader's questions to the disk and their answers (what a cached pipeline depends on)."""

    def add(self, node: Node, key: str, message: str, fix: str = "", *, offset: int | None = None) -> None:
        line, col = position(node, offset)
        self.add_at(line, col, key, message, fix)

    def add_at(self, line: int, col: int, key: str, message: str, fix: str = "") -> None:
        """Record a problem; past MAX_PROBLEMS only count it, and cut long texts (they may quote the file)."""
        if len(self.problems) >= MAX_PROBLEMS:
            self.dropped += 1
            return
        message, fix = _cut(message, MAX_TEXT), _cut(fix, MAX_TEXT)
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


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


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
