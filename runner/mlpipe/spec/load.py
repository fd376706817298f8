"""`mlpipe.yaml` -> `Pipeline`, reporting every problem at its line:col instead of stopping at the first."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node

from mlpipe.errors import SpecError, UsageError
from mlpipe.spec.checks import check_links
from mlpipe.spec.facts import Facts, display_path
from mlpipe.spec.indent import bad_dedent, slips
from mlpipe.spec.matrix import expand, make_instances
from mlpipe.spec.model import Param, Pipeline
from mlpipe.spec.params import convert
from mlpipe.spec.steps import Draft, build_step, check_name
from mlpipe.spec.yamlnodes import Entry, Reader, Refused, compose, join
from mlpipe.text import did_you_mean

TOP_KEYS = ("format", "name", "params", "steps")
FORMAT = "mlpipe.pipeline/1"
"""The `format` an exported pipeline carries; a hand-written file may leave it out."""
CONFLICT_MARKER = re.compile(r"(<{7}|={7}|>{7}|\|{7})(?:\s|$)")
MAX_BYTES = 1 << 20
"""A pipeline file is at most 1 MiB; mlpipe's own pipelines are a few KiB, a 1,000-step one about 100 KiB."""


def load_pipeline(
    path: Path,
    *,
    overrides: Mapping[str, str] = {},
    root: Path | None = None,
    raw: bytes | None = None,
    facts: Facts | None = None,
) -> Pipeline:
    """Load and check a pipeline file; raise SpecError with every problem found.

    `root` is the workspace root every path is relative to: by default the file's directory (as with dvc.yaml,
    so a pipeline can live in a subdirectory of its repository). `overrides` are `-p name=value` strings, converted to each param's type.
    `raw`: the file's bytes, when the caller has read them (the parsed-pipeline cache keys on exactly what was
    parsed); `facts` hears every question the loader asks the disk, with its answer.
    """
    reader = Reader(display_path(path), facts=Facts() if facts is None else facts)
    text = _decode(reader, _read(reader, path) if raw is None else raw)
    file = path.resolve()
    workspace = (root or file.parent).resolve()
    pipeline, doc = (None, None) if text is None else _build(reader, text, file, workspace, overrides)
    if reader.problems or pipeline is None:
        problems = sorted(dict.fromkeys(reader.problems), key=lambda p: (p.line, p.col))
        slipped = [] if doc is None else slips(doc, problems, reader.file)
        if slipped:  # the rest are its consequences: one hint instead of a cascade
            raise SpecError(slipped)
        if reader.dropped:
            last = problems[-1]
            more = f"and {reader.dropped} more problems"
            problems.append(replace(last, key="", message=more, fix="fix the ones above first"))
        raise SpecError(problems)
    return pipeline


def _read(reader: Reader, path: Path) -> bytes:
    try:
        with path.open("rb") as stream:
            return stream.read(MAX_BYTES + 1)  # never more: the file may be huge, or endless
    except FileNotFoundError:
        raise UsageError(f"{reader.file}: no such file") from None
    except OSError as error:
        raise UsageError(f"{reader.file}: cannot read: {error.strerror}") from None


def _decode(reader: Reader, raw: bytes) -> str | None:
    if len(raw) > MAX_BYTES:
        message = f"the file is larger than {MAX_BYTES >> 20} MiB, the most a pipeline file may be"
        reader.add_at(1, 1, "", message, "keep data out of it: give data files as inputs")
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        reader.add_at(line, 1, "", "the file is not UTF-8 text", "save it as UTF-8")
        return None


def _build(
    reader: Reader, text: str, file: Path, root: Path, overrides: Mapping[str, str]
) -> tuple[Pipeline | None, Node | None]:
    """The pipeline (None when it cannot be built) and the document it was read from."""
    if _conflict_markers(reader, text):
        return None, None
    if file.suffix.lower() == ".json" and text.strip():
        if not _check_json(reader, text):
            return None, None
        # A raw tab cannot sit inside a JSON string, so each one is whitespace; YAML refuses tabs as such.
        text = text.replace("\t", " ")
    try:
        doc = compose(text)
    except Refused as refused:
        for r in refused.refusals:
            reader.add_at(r.line, r.col, r.key, r.message, r.fix)
        return None, None
    except yaml.YAMLError as error:
        _yaml_problem(reader, text, error)
        return None, None
    if doc is None:
        reader.add_at(1, 1, "", "the file is empty", "a pipeline needs 'name' and 'steps'")
        return None, None
    if not isinstance(doc, MappingNode):
        reader.expected(doc, "", "a mapping with 'name' and 'steps' at the top level")
        return None, doc
    top = reader.fields(doc, "", TOP_KEYS, required=("name", "steps"), owner=doc) or {}
    name = reader.string(top["name"].value, "name") if "name" in top else None
    if "format" in top:
        _check_format(reader, top["format"].value)
    params, declared = _params(reader, top.get("params"), overrides, doc)
    drafts = _steps(reader, root, top.get("steps"))
    make_instances(reader, drafts, params)
    check_links(reader, declared, drafts)
    steps = expand(drafts)
    return Pipeline(name=name or "", file=file, root=root, params=params, steps=steps), doc


def _check_format(reader: Reader, node: Node) -> None:
    value = reader.string(node, "format")
    if value is not None and value != FORMAT:
        fix = f"this mlpipe reads {FORMAT!r}; export the pipeline again with this version, or upgrade mlpipe"
        reader.add(node, "format", f"unsupported format {value!r}", fix)


def _conflict_markers(reader: Reader, text: str) -> bool:
    """Report git merge-conflict marker lines; YAML would misread them or fail far away."""
    found = False
    for number, line in enumerate(text.splitlines(), 1):
        match = CONFLICT_MARKER.match(line)
        if match:
            fix = "resolve the merge conflict and delete the marker lines"
            reader.add_at(number, 1, "", f"git merge conflict marker {match.group(1)!r}", fix)
            found = True
    return found


def _check_json(reader: Reader, text: str) -> bool:
    """A `.json` file must be JSON; its own parser's words read better than YAML's for JSON mistakes."""
    try:
        json.loads(text)
    except RecursionError:
        return True  # nested too deep for Python's parser: the YAML loader says where, and stops there
    except json.JSONDecodeError as error:
        lines = text.splitlines()
        snippet = lines[error.lineno - 1].strip() if error.lineno <= len(lines) else ""
        fix = f"near {snippet!r}" if snippet else ""
        reader.add_at(error.lineno, error.colno, "", f"invalid JSON: {error.msg}", fix)
        return False
    return True


def _yaml_problem(reader: Reader, text: str, error: yaml.YAMLError) -> None:
    """The parser's own words at its line:col, with the line it stumbled on."""
    if isinstance(error, yaml.reader.ReaderError):  # a character YAML forbids: NUL, other control characters
        line = text.count("\n", 0, error.position) + 1
        col = error.position - text.rfind("\n", 0, error.position)
        message = (
            f"invalid YAML: the character {chr(error.character)!r} (#x{error.character:04x}) is not allowed"
        )
        reader.add_at(line, col, "", message, "remove it, or write it as an escape in a double-quoted string")
        return
    if not isinstance(error, yaml.MarkedYAMLError) or error.problem_mark is None:
        reader.add_at(1, 1, "", f"invalid YAML: {error}")
        return
    mark, context_mark = error.problem_mark, error.context_mark
    words = [f"{error.context} at line {context_mark.line + 1}"] if error.context and context_mark else []
    words += [error.problem] if error.problem else []
    lines = text.splitlines()
    snippet = lines[mark.line].strip() if mark.line < len(lines) else ""
    if not snippet and context_mark is not None and context_mark.line < len(lines):
        snippet = lines[context_mark.line].strip()
    fix = f"near {snippet!r}" if snippet else ""
    here = lines[mark.line] if mark.line < len(lines) else ""
    if _misindented_key(error.problem or "", here.lstrip(), mark.column - (len(here) - len(here.lstrip()))):
        fix = "; ".join(f for f in (fix, bad_dedent(text, mark.line + 1)) if f)
    reader.add_at(mark.line + 1, mark.column + 1, "", f"invalid YAML: {', '.join(words)}", fix)


def _misindented_key(problem: str, line: str, column: int) -> bool:
    """YAML's words for a key indented less than its siblings (`expected <block end>`), or more (a `key:`
    that would be the value of the line above: `mapping values are not allowed here` at the line's first
    colon; elsewhere on the line that error is a colon inside a plain value)."""
    if problem.startswith("expected <block end>"):
        return True
    return problem == "mapping values are not allowed here" and line.find(":") == column


def _params(
    reader: Reader, entry: Entry | None, overrides: Mapping[str, str], doc: Node
) -> tuple[dict[str, Param], dict[str, Node]]:
    """The params with overrides applied, and every declared name's key node (valid or not)."""
    entries = (reader.entries(entry.value, "params") or []) if entry is not None else []
    declared = {e.name: e.key for e in entries}
    params: dict[str, Param] = {}
    for e in entries:
        key = join("params", e.name)
        what = "a boolean, integer, number or string default"
        default = reader.scalar(e.value, key, (bool, int, float, str), what)
        if check_name(reader, e, key, "param") and default is not None:
            params[e.name] = Param(name=e.name, default=default, value=default, loc=reader.location(e.key))
    for name, text in overrides.items():
        if name not in declared:
            fix = did_you_mean(name, declared) or "declare it under params"
            reader.add(entry.key if entry else doc, "params", f"-p {name}={text}: no param {name!r}", fix)
        elif name in params:
            try:
                params[name] = replace(params[name], value=convert(text, params[name].default))
            except ValueError as error:
                message = f"-p {name}={text}: expected {error}, found {text!r}"
                reader.add(declared[name], join("params", name), message)
    return params, declared


def _steps(reader: Reader, root: Path, entry: Entry | None) -> dict[str, Draft]:
    if entry is None:
        return {}
    entries = reader.entries(entry.value, "steps", what="step")
    if entries is None:
        return {}
    if not entries:
        reader.add(entry.value, "steps", "expected at least one step")
    return {e.name: build_step(reader, root, e) for e in entries}
