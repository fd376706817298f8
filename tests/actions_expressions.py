"""GitHub Actions `${{ }}` expressions, as the test workflow runner (actions_testing.py) evaluates them.

The subset the project's workflows use, with GitHub's semantics: literals (`'text'` with `''` for a quote,
numbers, true, false, null), context properties (`needs.plan.outputs.wave-1`, `a['b']`, case-insensitive
names), `!`, `==`, `!=`, `&&`, `||` (returning an operand, as GitHub does), parentheses, and the functions
fromJSON, toJSON, always, cancelled, success and failure. `==` compares strings case-insensitively and
converts mismatched types to numbers, as GitHub's evaluator does. Anything else (another operator or
function, an unknown context, a property a strict context lacks) raises ExpressionError: the runner refuses
what it does not understand instead of guessing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

INTERPOLATION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
STATUS_FUNCTIONS = ("always", "cancelled", "success", "failure")
_TOKEN = re.compile(
    r"\s*(?:(?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(?P<string>'(?:[^']|'')*')"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*)|(?P<op>==|!=|&&|\|\||[!().\[\],*]))"
)


class ExpressionError(Exception):
    """An expression the runner does not understand, or one GitHub would reject."""


class Strict(dict[str, Any]):
    """A context object whose missing keys are an error (GitHub would give null; the runner refuses)."""

    def __init__(self, what: str, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.what = what


@dataclass(frozen=True)
class Status:
    """What the status functions answer where the expression is evaluated."""

    success: bool
    failure: bool
    cancelled: bool


def tokens(text: str) -> list[tuple[str, str]]:
    found, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ExpressionError(
                f"cannot read {text[position:]!r} in {text!r} (not in the supported subset)"
            )
        kind = match.lastgroup
        assert kind is not None
        found.append((kind, match[kind]))
        position = match.end()
    return found


class _Parser:
    def __init__(self, text: str, contexts: Mapping[str, Any], status: Status | None) -> None:
        self.text = text
        self.items = tokens(text)
        self.index = 0
        self.contexts = {name.lower(): value for name, value in contexts.items()}
        self.status = status

    # -- grammar: or -> and -> equality -> unary -> postfix -> primary -------------------------------------
    def parse(self) -> Any:
        value = self._or()
        if self.index != len(self.items):
            raise ExpressionError(f"unexpected {self.items[self.index][1]!r} in {self.text!r}")
        return value

    def _peek(self) -> str | None:
        return self.items[self.index][1] if self.index < len(self.items) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        if self.index >= len(self.items):
            raise ExpressionError(f"{self.text!r} ends early")
        item = self.items[self.index]
        if expected is not None and item[1] != expected:
            raise ExpressionError(f"expected {expected!r}, found {item[1]!r} in {self.text!r}")
        self.index += 1
        return item

    def _or(self) -> Any:
        value = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            value = value if truthy(value) else right
        return value

    def _and(self) -> Any:
        value = self._equality()
        while self._peek() == "&&":
            self._take()
            right = self._equality()
            value = right if truthy(value) else value
        return value

    def _equality(self) -> Any:
        value = self._unary()
        while self._peek() in ("==", "!="):
            op = self._take()[1]
            right = self._unary()
            value = equal(value, right) == (op == "==")
        return value

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not truthy(self._unary())
        return self._postfix()

    def _postfix(self) -> Any:
        value, path = self._primary()
        while self._peek() in (".", "["):
            if self._take()[1] == ".":
                kind, name = self._take()
                if kind != "name":
                    raise ExpressionError(f"expected a property name after {path!r} in {self.text!r}")
            else:
                name = self._or()
                self._take("]")
                if not isinstance(name, str):
                    raise ExpressionError(f"{path}[{name!r}]: only string indexes are supported")
            value = member(value, name, path)
            path = f"{path}.{name}"
        return value

    def _primary(self) -> tuple[Any, str]:
        kind, text = self._take()
        if kind == "number":
            number = float(text)
            return (int(number) if number.is_integer() else number), text
        if kind == "string":
            return text[1:-1].replace("''", "'"), text
        if text == "(":
            value = self._or()
            self._take(")")
            return value, "(...)"
        if kind != "name":
            raise ExpressionError(f"unexpected {text!r} in {self.text!r}")
        if self._peek() == "(":
            return self._call(text), f"{text}()"
        literal = {"true": True, "false": False, "null": None}
        if text in literal:
            return literal[text], text
        if text.lower() not in self.contexts:
            raise ExpressionError(
                f"unknown context {text!r} in {self.text!r} (known here: {', '.join(sorted(self.contexts))})"
            )
        return self.contexts[text.lower()], text

    def _call(self, name: str) -> Any:
        self._take("(")
        args = []
        while self._peek() != ")":
            args.append(self._or())
            if self._peek() == ",":
                self._take()
        self._take(")")
        function = FUNCTIONS.get(name.lower())
        if function is not None:
            return function(*args)
        if name.lower() in STATUS_FUNCTIONS:
            if args:
                raise ExpressionError(f"{name}() takes no arguments")
            if self.status is None:
                raise ExpressionError(f"{name}() is not available where {self.text!r} is evaluated")
            return {
                "always": True,
                "cancelled": self.status.cancelled,
                "success": self.status.success and not self.status.cancelled,
                "failure": self.status.failure,
            }[name.lower()]
        raise ExpressionError(f"the function {name}() is not supported by the test runner ({self.text!r})")


def _from_json(text: Any) -> Any:
    if not isinstance(text, str):
        raise ExpressionError(f"fromJSON() takes a string, not {text!r}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ExpressionError(f"fromJSON(): not JSON ({error}): {text[:200]!r}") from error


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "fromjson": _from_json,
    "tojson": lambda value: json.dumps(value, indent=2),
}


def member(value: Any, name: str, path: str) -> Any:
    if isinstance(value, Strict):
        for key in value:
            if key.lower() == name.lower():
                return value[key]
        raise ExpressionError(f"{path}.{name}: {value.what} has no {name!r} (it has: {', '.join(value)})")
    if isinstance(value, dict):
        return next((item for key, item in value.items() if key.lower() == name.lower()), None)
    if value is None:
        return None
    raise ExpressionError(f"{path}.{name}: {path} is {type(value).__name__}, not an object")


def truthy(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return value not in (None, False, 0, "")


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0.0
        try:
            return float(int(text, 16)) if text.lower().startswith("0x") else float(text)
        except ValueError:
            return math.nan
    return math.nan


def equal(left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    if isinstance(left, dict | list) or isinstance(right, dict | list):
        return left is right
    if type(left) is type(right) or {type(left), type(right)} <= {int, float}:
        return bool(left == right)
    return _number(left) == _number(right)


def evaluate(text: str, contexts: Mapping[str, Any], status: Status | None = None) -> Any:
    return _Parser(text, contexts, status).parse()


def uses_status_function(text: str) -> bool:
    return any(kind == "name" and word.lower() in STATUS_FUNCTIONS for kind, word in tokens(text))


def condition(text: Any, contexts: Mapping[str, Any], status: Status) -> bool:
    """An `if:` value: `${{ }}` optional; without a status function GitHub adds `success() &&`."""
    if isinstance(text, bool):
        return text and status.success and not status.cancelled
    source = str(text).strip()
    whole = INTERPOLATION.fullmatch(source)
    if whole:
        source = whole[1]
    elif "${{" in source:
        raise ExpressionError(f"if: {text!r} mixes text and ${{{{ }}}}; GitHub would read it as a string")
    if not uses_status_function(source):
        source = f"success() && ({source})"
    return truthy(evaluate(source, contexts, status))


def to_text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dict | list):
        raise ExpressionError(f"{where}: an object would be written into text; wrap it in toJSON()")
    return str(value)


def substitute(value: Any, contexts: Mapping[str, Any], where: str, status: Status | None = None) -> Any:
    """A workflow value: `${{ x }}` alone keeps x's type (a matrix, a label list); else text is interpolated."""
    if isinstance(value, dict):
        return {key: substitute(item, contexts, f"{where}.{key}", status) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, contexts, f"{where}[{i}]", status) for i, item in enumerate(value)]
    if not isinstance(value, str):
        return value
    whole = INTERPOLATION.fullmatch(value.strip())
    if whole:
        return evaluate(whole[1], contexts, status)
    return INTERPOLATION.sub(lambda m: to_text(evaluate(m[1], contexts, status), where), value)
