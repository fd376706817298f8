"""A loaded `Pipeline` <-> plain JSON data, for the parsed-pipeline cache (`run/pipecache.py` reads and writes
the file). Pure: data in, data out.

What is stored was checked by the loader, but the file it is read back from is not trusted: every field is
checked again for type and range (names as the loader allows them, paths workspace-relative and normalized,
numbers in range) and anything else is `BadRecord`, a miss. Params are stored with their defaults only:
`-p` overrides are applied after (spec/params.py `with_overrides`). Locations are stored as [line, col]; the
file they name is the one the pipeline is loaded as now.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from mlpipe.records import BadRecord, array, boolean, choice, digest, obj, sha256, shown
from mlpipe.spec.facts import QUESTIONS, Fact
from mlpipe.spec.model import (
    Build,
    ContainerMount,
    DataInput,
    ExternalInput,
    Input,
    Location,
    OciInput,
    Output,
    Param,
    ParamValue,
    Pipeline,
    RepoInput,
    Step,
    StepInput,
    UrlInput,
)
from mlpipe.spec.params import INT64
from mlpipe.spec.refs import NAME as NAME_PATTERN

T = TypeVar("T")
Check = Callable[[Any, str], Any]

NAME = re.compile(NAME_PATTERN)
MAX_NAME = 100
"""As spec/steps.py allows names."""
INSTANCE = re.compile(
    rf"{NAME_PATTERN}\[{NAME_PATTERN}=[A-Za-z0-9_.+-]+(?:,{NAME_PATTERN}=[A-Za-z0-9_.+-]+)*\]"
)
MAX_INSTANCE = 200
STEP_REF = re.compile(rf"{NAME_PATTERN}(?:\[[^\]\s]*\])?")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_STRING = 1 << 20
"""No string of a pipeline is longer than its file (spec/load.py MAX_BYTES)."""
MAX_ITEMS = 100_000
"""No list or mapping holds more items than the file holds values (spec/yamlnodes.py MAX_VALUES)."""
HOST = re.compile(r"[A-Za-z0-9.:\[\]-]{1,300}")
REPO = re.compile(r"[a-z0-9][a-z0-9._/-]{0,300}")


# -- model -> data -------------------------------------------------------------------------------------------
def to_json(pipeline: Pipeline, facts: list[Fact]) -> dict[str, Any]:
    """The pipeline (params with their defaults) and the facts it was loaded with, as JSON data."""
    return {
        "name": pipeline.name,
        "params": [[p.name, p.default, _loc(p.loc)] for p in pipeline.params.values()],
        "steps": [_plain(step) for step in pipeline.steps.values()],
        "facts": [[f.kind, list(f.args), f.answer] for f in facts],
    }


KINDS: dict[type, str] = {
    RepoInput: "repo",
    StepInput: "step",
    UrlInput: "url",
    ExternalInput: "external",
    DataInput: "data",
    OciInput: "oci",
}


def _plain(item: Any) -> Any:
    """A model object as JSON data: dataclasses as objects (inputs tagged with their kind), tuples as lists."""
    if isinstance(item, Location):
        return _loc(item)
    if isinstance(item, tuple):
        return [_plain(x) for x in item]
    if isinstance(item, Mapping):
        return {key: _plain(value) for key, value in item.items()}
    if is_dataclass(item):
        out = {"kind": KINDS[type(item)]} if type(item) in KINDS else {}
        return out | {f.name: _plain(getattr(item, f.name)) for f in fields(item)}
    return item


def _loc(loc: Location) -> list[int]:
    return [loc.line, loc.col]


# -- data -> model -------------------------------------------------------------------------------------------
def from_json(data: Any, *, file: Path, root: Path, display: str) -> tuple[Pipeline, list[Fact]]:
    """The pipeline and its facts from `to_json`'s data; `file`, `root` and `display` (the name locations
    give the file) are the ones it is loaded as now. Raises BadRecord naming the first field that is wrong."""
    data = obj(data, "pipeline")
    _keys(data, ("name", "params", "steps", "facts"), "pipeline")
    check = _Checks(display)
    params = {p.name: p for p in _items(data["params"], "params", check.param)}
    steps = {s.name: s for s in _items(data["steps"], "steps", check.step)}
    if len(params) != len(data["params"]) or len(steps) != len(data["steps"]):
        raise BadRecord("pipeline", "a param or step name is listed twice")
    facts = _items(data["facts"], "facts", _fact)
    inside = str(root) + "/"
    for fact in facts:  # only the existence of an external input's path is asked outside the workspace
        where = fact.args[0]
        if fact.kind != "exists" and (
            posixpath.normpath(where) != where or not (where + "/").startswith(inside)
        ):
            raise BadRecord("facts", f"a {fact.kind!r} question about {shown(where)}, outside the workspace")
    name = check.text(data["name"], "name")
    return Pipeline(name=name, file=file, root=root, params=params, steps=steps), facts


def _keys(data: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    if set(data) != set(keys):
        raise BadRecord(
            where, f"expected the keys {', '.join(keys)}, found {', '.join(sorted(data)) or 'none'}"
        )


def _items(value: Any, where: str, check: Callable[[Any, str], T]) -> list[T]:
    items = array(value, where)
    if len(items) > MAX_ITEMS:
        raise BadRecord(where, f"more than {MAX_ITEMS} items")
    return [check(item, f"{where}[{i}]") for i, item in enumerate(items)]


def _fact(value: Any, where: str) -> Fact:
    item = array(value, where)
    if len(item) != 3:
        raise BadRecord(where, "expected [kind, [paths], answer]")
    kind = choice(item[0], QUESTIONS, f"{where}.kind")
    args = array(item[1], f"{where}.paths")
    if len(args) != QUESTIONS[kind][0] or not all(isinstance(a, str) and _encodable(a) for a in args):
        raise BadRecord(where, f"expected {QUESTIONS[kind][0]} path(s) for {kind!r}")
    answer = item[2]
    ok = answer is None or isinstance(answer, bool | str | list)
    if not ok or (isinstance(answer, list) and not all(isinstance(a, str) for a in answer)):
        raise BadRecord(
            f"{where}.answer", f"expected null, true, false, a string or strings, found {shown(answer)}"
        )
    return Fact(kind, tuple(args), answer)


def _encodable(text: str) -> bool:
    """No NUL, no lone surrogate (JSON can write one; a path or a print of it would fail)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\0" not in text and len(text) <= MAX_STRING


class _Checks:
    """The checks of each model type; `display` is the file every Location names."""

    def __init__(self, display: str) -> None:
        self.display = display

    # scalars
    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not _encodable(value):
            raise BadRecord(where, f"expected a string without NUL, found {shown(value)}")
        return value

    def some_text(self, value: Any, where: str) -> str:
        if not self.text(value, where):
            raise BadRecord(where, "expected a non-empty string")
        return str(value)

    def name(self, value: Any, where: str, pattern: re.Pattern[str] = NAME) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value) or len(value) > MAX_NAME:
            raise BadRecord(where, f"expected a name of at most {MAX_NAME} characters, found {shown(value)}")
        return value

    def env_name(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not ENV_NAME.fullmatch(value) or len(value) > MAX_STRING:
            raise BadRecord(where, f"expected a variable name, found {shown(value)}")
        return value

    def step_name(self, value: Any, where: str) -> str:
        if isinstance(value, str) and INSTANCE.fullmatch(value) and len(value.encode()) <= MAX_INSTANCE:
            return value
        return self.name(value, where)

    def step_ref(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not STEP_REF.fullmatch(value) or len(value) > MAX_INSTANCE:
            raise BadRecord(where, f"expected a step, found {shown(value)}")
        return value

    def rel(self, value: Any, where: str) -> str:
        """A workspace-relative, normalized, '/'-separated path ('.': the root), as spec/steps.py makes them."""
        text = self.some_text(value, where)
        if text.startswith(("/", "../")) or posixpath.normpath(text) != text or text == "..":
            raise BadRecord(where, f"expected a normalized path inside the workspace, found {shown(value)}")
        return text

    def absolute(self, value: Any, where: str) -> str:
        text = self.some_text(value, where)
        if not text.startswith("/") or posixpath.normpath(text) != text:
            raise BadRecord(where, f"expected a normalized absolute path, found {shown(value)}")
        return text

    def integer(self, value: Any, where: str, low: int = 0, high: int = INT64.stop - 1) -> int:
        if type(value) is not int or not low <= value <= high:
            raise BadRecord(where, f"expected a whole number from {low} to {high}, found {shown(value)}")
        return value

    def minutes(self, value: Any, where: str) -> float:
        if type(value) is not float or not math.isfinite(value) or value <= 0:
            raise BadRecord(where, f"expected a positive number, found {shown(value)}")
        return value

    def value(self, value: Any, where: str) -> ParamValue:
        if type(value) is bool or type(value) is str:
            return self.text(value, where) if isinstance(value, str) else value
        if type(value) is int:
            return self.integer(value, where, INT64.start, INT64.stop - 1)
        if type(value) is float and math.isfinite(value):
            return value
        raise BadRecord(where, f"expected a boolean, integer, finite number or string, found {shown(value)}")

    def loc(self, value: Any, where: str) -> Location:
        pair = array(value, where)
        if len(pair) != 2:
            raise BadRecord(where, "expected [line, column]")
        line, col = (self.integer(n, where, 1, MAX_STRING + 1) for n in pair)
        return Location(file=self.display, line=line, col=col)

    # composites
    def record(self, cls: type[T], value: Any, where: str, checks: Mapping[str, Check]) -> T:
        """A dataclass from an object holding exactly its fields, each passed through its check."""
        data = obj(value, where)
        names = tuple(checks) + (("kind",) if cls in KINDS else ())
        _keys(data, names, where)
        return cls(**{name: check(data[name], f"{where}.{name}") for name, check in checks.items()})

    def param(self, value: Any, where: str) -> Param:
        item = array(value, where)
        if len(item) != 3:
            raise BadRecord(where, "expected [name, default, [line, column]]")
        name, default = self.name(item[0], where), self.value(item[1], where)
        return Param(name=name, default=default, value=default, loc=self.loc(item[2], where))

    def step(self, value: Any, where: str) -> Step:
        return self.record(Step, value, where, self.step_checks())

    def step_checks(self) -> dict[str, Check]:
        opt_text = _optional(self.text)
        return {
            "name": self.step_name,
            "code": self.rel,
            "run": self.text,
            "inputs": _named(self.input),
            "outputs": _named(self.output),
            "env": _mapping(self.env_name, self.text),
            "reuse": boolean,
            "needs": _tuple(self.step_name),
            "image": opt_text,
            "build": _optional(self.build),
            "shm_size": opt_text,
            "ulimits": _mapping(self.name, self.limits),
            "user": opt_text,
            "mounts": _tuple(self.mount),
            "network": _optional(lambda v, w: choice(v, ("none", "host", "bridge"), w)),
            "gpus": self.integer,
            "runs_on": _tuple(self.text),
            "fan_out": boolean,
            "timeout_minutes": _optional(self.minutes),
            "environment": _tuple(self.rel),
            "environment_python": boolean,
            "environment_packages": boolean,
            "env_passthrough": _tuple(self.env_name),
            "matrix": _mapping(self.name, self.value),
            "instance_of": _optional(self.name),
            "loc": self.loc,
        }

    def limits(self, value: Any, where: str) -> tuple[int, int]:
        pair = array(value, where)
        if len(pair) != 2:
            raise BadRecord(where, "expected [soft, hard]")
        soft, hard = (self.integer(n, where, -1) for n in pair)
        return soft, hard

    def build(self, value: Any, where: str) -> Build:
        return self.record(Build, value, where, {"context": self.rel, "dockerfile": self.rel})

    def mount(self, value: Any, where: str) -> ContainerMount:
        host = lambda v, w: self.text(v, w) if isinstance(v, str) and v.startswith("/") else self.rel(v, w)
        checks = {"host": host, "target": self.absolute, "read_only": boolean}
        return self.record(ContainerMount, value, where, checks)

    def output(self, value: Any, where: str) -> Output:
        checks: dict[str, Check] = {
            "name": self.name,
            "type": lambda v, w: choice(v, ("dir", "file"), w),
            "kind": lambda v, w: choice(v, ("data", "metrics"), w),
            "path": _optional(self.rel),
            "higher_is_better": _optional(boolean),
            "metric_directions": _tuple(self.direction),
            "loc": self.loc,
        }
        return self.record(Output, value, where, checks)

    def direction(self, value: Any, where: str) -> tuple[str, bool]:
        pair = array(value, where)
        if len(pair) != 2:
            raise BadRecord(where, "expected [metric, higher is better]")
        return self.text(pair[0], where), boolean(pair[1], where)

    def input(self, value: Any, where: str) -> Input:
        data = obj(value, where)
        kind = choice(data.get("kind"), KINDS.values(), f"{where}.kind")
        common: dict[str, Check] = {"name": self.name, "loc": self.loc}
        checks: dict[str, dict[str, Check]] = {
            "repo": {"path": self.rel},
            "step": {"step": self.step_ref, "output": self.name, "instances": _tuple(self.step_name)},
            "url": {"url": self.url, "sha256": sha256},
            "external": {"path": self.absolute},
            "data": {"file": self.rel, "path": self.rel, "digest": digest},
            "oci": {"host": _pattern(HOST), "repo": _pattern(REPO), "digest": digest},
        }
        cls = next(c for c, k in KINDS.items() if k == kind)
        found: Input = self.record(cls, data, where, common | checks[kind])
        return found

    def url(self, value: Any, where: str) -> str:
        text = self.some_text(value, where)
        if not text.startswith(("https://", "http://")) or not text.isprintable():
            raise BadRecord(where, f"expected an http(s) URL, found {shown(value)}")
        return text


def _optional(check: Check) -> Check:
    return lambda value, where: None if value is None else check(value, where)


def _tuple(check: Check) -> Check:
    return lambda value, where: tuple(_items(value, where, check))


def _mapping(key: Check, check: Check) -> Check:
    def checked(value: Any, where: str) -> dict[str, Any]:
        data = obj(value, where)
        if len(data) > MAX_ITEMS:
            raise BadRecord(where, f"more than {MAX_ITEMS} items")
        return {key(k, where): check(v, f"{where}.{k}") for k, v in data.items()}

    return checked


def _named(check: Check) -> Check:
    """A mapping of name -> item, stored as an object whose keys are the items' names."""

    def checked(value: Any, where: str) -> dict[str, Any]:
        items: dict[str, Any] = _mapping(lambda k, w: k, check)(value, where)
        for name, item in items.items():
            if item.name != name:
                raise BadRecord(f"{where}.{name}", f"holds the item named {shown(item.name)}")
        return items

    return checked


def _pattern(pattern: re.Pattern[str]) -> Check:
    def checked(value: Any, where: str) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise BadRecord(where, f"expected {pattern.pattern}, found {shown(value)}")
        return value

    return checked
