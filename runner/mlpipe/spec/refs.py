"""`${{ ... }}` references: parsed into literal text and Ref parts, substituted, never evaluated."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator
from typing import Literal

from mlpipe.frozen import frozen

NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
SELECTOR = r"\[[^\]\s]*\]"
"""A matrix step's instance, `[lr=0.1,C=1]`, or all of them, `[*]`."""
OPEN, CLOSE = "${{", "}}"
_REF = re.compile(
    rf"^\s*(?:(?P<scope>params|inputs|outputs|matrix)\.(?P<name>{NAME})"
    rf"|steps\.(?P<step>{NAME}(?:{SELECTOR})?)\.outputs\.(?P<output>{NAME}))\s*$"
)

Scope = Literal["params", "inputs", "outputs", "matrix", "steps"]


@frozen
class Ref:
    """A `${{ }}` reference in a step's command."""

    scope: Scope
    name: str
    """Param, input or output name; for `steps.S.outputs.O` the output O."""
    step: str | None
    """S for `steps.S.outputs.O`, else None; for a matrix step with its selector: `train[lr=0.1]`, `train[*]`."""
    text: str
    """The whole `${{ ... }}` as written."""
    offset: int
    """Where it starts in its template."""


class RefSyntaxError(ValueError):
    def __init__(self, text: str, offset: int) -> None:
        super().__init__(text)
        self.text = text
        self.offset = offset


Part = str | Ref


def parse(template: str) -> list[Part]:
    """Split a template into literal strings and references; raise RefSyntaxError on a malformed one."""
    parts: list[Part] = []
    pos = 0
    # str.find, not a lazy regex: `.*?` rescans the rest of the text from every `${{` that is never
    # closed, which made a long run of them take minutes; this reads the template once.
    while (start := template.find(OPEN, pos)) >= 0:
        end = template.find(CLOSE, start + len(OPEN))
        if end < 0:
            raise RefSyntaxError(template[start:], start)
        end += len(CLOSE)
        if start > pos:
            parts.append(template[pos:start])
        text = template[start:end]
        ref = _REF.match(text[len(OPEN) : -len(CLOSE)])
        if ref is None:
            raise RefSyntaxError(text, start)
        if ref.group("step"):
            parts.append(Ref("steps", ref.group("output"), ref.group("step"), text, start))
        else:
            scope: Scope = ref.group("scope")  # type: ignore[assignment]
            parts.append(Ref(scope, ref.group("name"), None, text, start))
        pos = end
    if pos < len(template):
        parts.append(template[pos:])
    return parts


def refs(template: str) -> Iterator[Ref]:
    """The references in a template; malformed ones are skipped (the loader reports them)."""
    try:
        parts = parse(template)
    except RefSyntaxError:
        return
    yield from (p for p in parts if isinstance(p, Ref))


def step_refs(template: str) -> Iterator[Ref]:
    return (r for r in refs(template) if r.scope == "steps")


def render(template: str, value_of: Callable[[Ref], str], *, quote: bool) -> str:
    """Substitute every reference by `value_of(ref)`, shell-quoted when `quote` (for `run:` lines)."""
    out: list[str] = []
    for part in parse(template):
        if isinstance(part, str):
            out.append(part)
        else:
            value = value_of(part)
            out.append(shlex.quote(value) if quote else value)
    return "".join(out)


def split(step_ref: str) -> tuple[str, str | None]:
    """`train[lr=0.1]` -> ('train', 'lr=0.1'); `train[*]` -> ('train', '*'); `train` -> ('train', None)."""
    name, bracket, rest = step_ref.partition("[")
    return name, (rest[:-1] if bracket else None)


def param_text(value: bool | float | str) -> str:
    """How a param value reads in a command: YAML's spelling for booleans, repr for numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
