"""One step's nodes -> a `Step`, reporting every problem in the step; cross-step checks come later."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mlpipe.frozen import frozen
from mlpipe.spec import datainputs, refs
from mlpipe.spec.model import (
    Build,
    ContainerMount,
    Input,
    Location,
    Output,
    ParamValue,
    RepoInput,
    Step,
    StepInput,
)
from mlpipe.spec.yamlnodes import Entry, Reader, join, plain
from mlpipe.text import close_matches, did_you_mean

STEP_KEYS = (
    "code", "run", "inputs", "outputs", "env", "env-passthrough", "matrix", "reuse", "needs",
    "image", "resources", "runs-on", "fan-out", "timeout-minutes", "environment",
    "shm-size", "ulimits", "user", "mounts", "network", "build",
)  # fmt: skip
CONTAINER_KEYS = ("shm-size", "ulimits", "user", "mounts", "network")
"""Keys that only a step with `image:` or `build:` may have."""
ULIMITS = (
    "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
    "rtprio", "rttime", "sigpending", "stack",
)  # fmt: skip
"""The names Docker and podman accept (`docker run --ulimit`)."""
NETWORKS = ("none", "host", "bridge")
SHM_SIZE = re.compile(r"[1-9][0-9]*[bkmgBKMG]?")
ULIMIT_VALUE = re.compile(r"(-1|[0-9]{1,18})(?::(-1|[0-9]{1,18}))?")
"""`-1` is unlimited; a limit fits 64 bits (the engines take int64)."""
MAX_MINUTES = 525_600
"""A step's timeout is at most a year: a longer one overflows the clocks that wait for it."""
USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?")
MOUNT = re.compile(r"([^:]+):([^:]+)(?::(ro|rw))?")
FIELDS = {
    "shm-size": "shm_size",
    "resources": "gpus",
    "runs-on": "runs_on",
    "fan-out": "fan_out",
    "timeout-minutes": "timeout_minutes",
    "env-passthrough": "env_passthrough",
}
"""Step keys whose model field has another name."""
OUTPUT_KEYS = ("kind", "type", "path", "higher-is-better", "lower-is-better")
DIRECTIONS = {"higher-is-better": True, "lower-is-better": False}
ENVIRONMENT_KEYS = ("files", "python", "packages")
NAME = re.compile(refs.NAME)
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
REF_FORMS = (
    "expected ${{ params.NAME }}, ${{ inputs.NAME }}, ${{ outputs.NAME }}, ${{ matrix.NAME }} "
    "or ${{ steps.STEP.outputs.NAME }}"
)
MATRIX_VALUE = re.compile(r"[A-Za-z0-9_.+-]+")
"""A matrix string value: it becomes part of the instance's name, `train[opt=adam]`."""
MatrixSpec = dict[str, list[tuple[ParamValue, Node]]]


@frozen
class Site:
    """A reference, a `needs` entry or an input, with the node and key path it was written at."""

    node: Node
    key: str
    ref: refs.Ref | None = None
    offset: int | None = None


@dataclass
class Draft:
    """A step built from its nodes, plus the sites that cross-step checks point at."""

    step: Step
    key: str
    refs: list[Site] = field(default_factory=list)
    """Every well-formed `${{ }}` in `run` and `env`, and every step-output input."""
    needs: list[tuple[str, Site]] = field(default_factory=list)
    matrix: MatrixSpec = field(default_factory=dict)
    """`matrix:` as written: key -> its values, each with its node."""
    instances: dict[str, dict[str, ParamValue]] = field(default_factory=dict)
    """For a matrix step: instance name -> its values, once the values are checked against the params."""


MAX_NAME = 100
"""Names become file names (`.mlpipe/logs/<run>/<step>.log`) and env variable names: well under 255 bytes."""


def check_name(reader: Reader, entry: Entry, key: str, what: str, pattern: re.Pattern[str] = NAME) -> bool:
    if pattern.fullmatch(entry.name) and len(entry.name) > MAX_NAME:
        reader.add(entry.key, key, f"{what} name of {len(entry.name)} characters", f"use at most {MAX_NAME}")
        return False
    if pattern.fullmatch(entry.name):
        return True
    chars = "letters, digits and '_'" if pattern is ENV_NAME else "letters, digits, '_' and '-'"
    fix = f"use {chars}, starting with a letter or '_'"
    reader.add(entry.key, key, f"invalid {what} name {entry.name!r}", fix)
    return False


def build_step(reader: Reader, root: Path, entry: Entry) -> Draft:
    key = join("steps", entry.name)
    check_name(reader, entry, key, "step")
    builder = _StepBuilder(reader, root, key)
    fields = reader.fields(entry.value, key, STEP_KEYS, required=("run",), owner=entry.key) or {}
    values = {FIELDS.get(name, name): builder.field(name, e.value) for name, e in fields.items()}
    values = {"code": ".", "run": ""} | {name: value for name, value in values.items() if value is not None}
    values |= values.pop("environment", {})  # `environment:` sets several model fields
    if "env-passthrough" in fields and "env" in fields:
        _check_passthrough_overlap(reader, fields["env-passthrough"].value, values, key)
    if "image" not in fields and "build" not in fields:
        for name in (n for n in CONTAINER_KEYS if n in fields):
            message = f"{name} applies only to a step with an image"
            reader.add(
                fields[name].key, join(key, name), message, f"add 'image' or 'build', or remove '{name}'"
            )
    if "image" in fields and "build" in fields:
        fix = "remove 'image': the built image is the step's"
        reader.add(fields["build"].key, join(key, "build"), "a step has either an image or a build", fix)
    step = Step(name=entry.name, loc=reader.location(entry.key), **values)
    return Draft(step=step, key=key, refs=builder.refs, needs=builder.need_sites, matrix=builder.matrix_spec)


class _StepBuilder:
    def __init__(self, reader: Reader, root: Path, key: str) -> None:
        self.reader, self.root, self.key = reader, root, key
        self.refs: list[Site] = []
        self.need_sites: list[tuple[str, Site]] = []
        self.matrix_spec: MatrixSpec = {}

    def field(self, name: str, node: Node) -> Any:
        """The model value for one step key, or None when it is wrong (and reported)."""
        key = join(self.key, name)
        if name in {"image", "run"}:
            text = self.reader.string(node, key)
            if name == "run" and text is not None:
                self.template(node, key, text)
            return text
        if name in {"reuse", "fan-out"}:
            return self.reader.scalar(node, key, (bool,), "true or false")
        if name == "runs-on":
            return tuple(text for text, _ in self.reader.strings(node, key))
        method = getattr(self, name.replace("-", "_"))
        return method(node, key)

    def template(self, node: Node, key: str, text: str) -> None:
        try:
            parts = refs.parse(text)
        except refs.RefSyntaxError as error:
            syntax_problem(self.reader, node, key, error)
            return
        for part in parts:
            if isinstance(part, refs.Ref):
                self.refs.append(Site(node, key, part, part.offset))

    def code(self, node: Node, key: str) -> str | None:
        rel = workspace_path(self.reader, node, key)
        if rel is None:
            return None
        if not self.reader.facts.exists(self.root / rel):
            message = f"code directory {rel!r} does not exist"
            self.reader.add(node, key, message, missing_fix(self.root, rel))
        elif not self.reader.facts.is_dir(self.root / rel):
            self.reader.add(
                node, key, f"code {rel!r} is not a directory", "give the directory holding the code"
            )
        return rel

    def env(self, node: Node, key: str) -> dict[str, str] | None:
        entries = self.reader.entries(node, key)
        if entries is None:
            return None
        out: dict[str, str] = {}
        for entry in entries:
            var_key = join(key, entry.name)
            check_name(self.reader, entry, var_key, "environment variable", ENV_NAME)
            if not isinstance(entry.value, ScalarNode):
                self.reader.expected(entry.value, var_key, "a string, number or boolean")
                continue
            out[entry.name] = env_text(entry.value)
            self.template(entry.value, var_key, out[entry.name])
        return out

    def inputs(self, node: Node, key: str) -> dict[str, Input] | None:
        entries = self.reader.entries(node, key)
        if entries is None:
            return None
        out: dict[str, Input] = {}
        for entry in entries:
            in_key = join(key, entry.name)
            check_name(self.reader, entry, in_key, "input")
            loc = self.reader.location(entry.key)
            if isinstance(entry.value, MappingNode):  # a URL or an external path: spec/datainputs.py
                found = datainputs.mapping_input(self.reader, entry.name, entry.value, in_key, loc)
                # Kept when wrong (reported) so that `${{ inputs.NAME }}` is not reported as undeclared too.
                out[entry.name] = found or RepoInput(name=entry.name, path="", loc=loc)
                continue
            text = self.reader.string(entry.value, in_key)
            if text is not None:
                out[entry.name] = self.one_input(entry.name, entry.value, in_key, text, loc)
        return out

    def one_input(self, name: str, node: Node, key: str, text: str, loc: Location) -> Input:
        if datainputs.is_oci(text):
            return datainputs.oci_input(self.reader, name, node, key, text, loc)
        if "${{" not in text:
            rel = workspace_path(self.reader, node, key)
            if rel is not None and datainputs.is_data_file(rel):
                return datainputs.data_file_input(self.reader, self.root, name, node, key, rel, loc)
            if rel is not None and not self.reader.facts.exists(self.root / rel):
                fix = missing_fix(self.root, rel)
                self.reader.add(node, key, f"input path {rel!r} does not exist", fix)
            return RepoInput(name=name, path=rel or text, loc=loc)
        try:
            parts = refs.parse(text.strip())
        except refs.RefSyntaxError as error:
            syntax_problem(self.reader, node, key, error)
            parts = []
        ref = parts[0] if len(parts) == 1 else None
        if isinstance(ref, refs.Ref) and ref.step is not None:
            self.refs.append(Site(node, key, ref))
            return StepInput(name=name, step=ref.step, output=ref.name, loc=loc)
        if parts:
            message = "an input is a workspace path or exactly '${{ steps.STEP.outputs.NAME }}'"
            self.reader.add(node, key, f"{message}, found {text!r}")
        return RepoInput(name=name, path=text, loc=loc)

    def outputs(self, node: Node, key: str) -> dict[str, Output] | None:
        entries = self.reader.entries(node, key)
        if entries is None:
            return None
        out: dict[str, Output] = {}
        for entry in entries:
            out_key = join(key, entry.name)
            check_name(self.reader, entry, out_key, "output")
            out[entry.name] = self.one_output(entry, out_key, self.reader.location(entry.key))
        return out

    def one_output(self, entry: Entry, key: str, loc: Location) -> Output:
        if isinstance(entry.value, ScalarNode) and plain(entry.value) is None:
            return Output(name=entry.name, type="dir", loc=loc)
        fields = self.reader.fields(entry.value, key, OUTPUT_KEYS, owner=entry.key) or {}
        kind = self.choice(fields.get("kind"), join(key, "kind"), ("data", "metrics")) or "data"
        type_ = self.choice(fields.get("type"), join(key, "type"), ("dir", "file"))
        if kind == "metrics" and type_ == "dir":
            fix = "remove 'type' or set it to file"
            self.reader.add(fields["type"].value, join(key, "type"), "a metrics output is a JSON file", fix)
        path = None
        if "path" in fields:
            path_key, path_node = join(key, "path"), fields["path"].value
            path = workspace_path(self.reader, path_node, path_key)
            problem = None if path is None else self.reader.facts.destination_problem(self.root, path)
            if problem is not None:
                self.reader.add(path_node, path_key, *problem)
                path = None
        out_type: Literal["dir", "file"] = "file" if kind == "metrics" or type_ == "file" else "dir"
        out_kind: Literal["data", "metrics"] = "metrics" if kind == "metrics" else "data"
        better, per_metric = self.directions(fields, key, out_kind)
        return Output(
            name=entry.name,
            type=out_type,
            kind=out_kind,
            path=path,
            higher_is_better=better,
            metric_directions=per_metric,
            loc=loc,
        )

    def directions(
        self, fields: Mapping[str, Entry], key: str, kind: str
    ) -> tuple[bool | None, tuple[tuple[str, bool], ...]]:
        """`higher-is-better`/`lower-is-better`: `true` for every metric of the file, or a list of metric
        names; (the whole file's direction, each listed metric's)."""
        whole: bool | None = None
        per_metric: dict[str, bool] = {}
        for name, higher in DIRECTIONS.items():
            if name not in fields:
                continue
            node, at = fields[name].value, join(key, name)
            if kind != "metrics":
                fix = f"add 'kind: metrics' or remove '{name}'"
                self.reader.add(fields[name].key, at, "only a metrics output has a direction", fix)
                continue
            if isinstance(node, SequenceNode):
                for metric, item in self.reader.strings(node, at):
                    if metric in per_metric:
                        fix = "a metric has one direction: list it under one of the two keys"
                        self.reader.add(item, at, f"metric {metric!r} is listed twice", fix)
                    per_metric[metric] = higher
                continue
            value = self.reader.scalar(node, at, (bool,), "true, false or a list of metric names")
            if value is not None and whole is not None:
                fix = "give one of them, or list metric names under each"
                self.reader.add(fields[name].key, at, "the direction of every metric is given twice", fix)
            elif value is not None:
                whole = value == higher  # `higher-is-better: false` is `lower-is-better: true`
        return whole, tuple(per_metric.items())

    def choice(self, entry: Entry | None, key: str, choices: tuple[str, ...]) -> str | None:
        if entry is None:
            return None
        value = plain(entry.value) if isinstance(entry.value, ScalarNode) else None
        if value in choices:
            return str(value)
        expected = " or ".join(repr(c) for c in choices)
        fix = ""
        if isinstance(value, str):
            close = close_matches(value, choices, n=1)
            fix = f"did you mean {close[0]!r}?" if close else ""
        self.reader.expected(entry.value, key, expected, fix)
        return None

    def needs(self, node: Node, key: str) -> tuple[str, ...]:
        items = self.reader.strings(node, key)
        self.need_sites.extend((name, Site(item, key)) for name, item in items)
        return tuple(name for name, _ in items)

    def resources(self, node: Node, key: str) -> int | None:
        """The `gpus` count, the one resource so far."""
        fields = self.reader.fields(node, key, ("gpus",), owner=node)
        if not fields or "gpus" not in fields:
            return None
        gpus_node = fields["gpus"].value
        gpus: int | None = self.reader.scalar(gpus_node, join(key, "gpus"), (int,), "a non-negative integer")
        if gpus is not None and gpus < 0:
            self.reader.expected(gpus_node, join(key, "gpus"), "a non-negative integer")
            return None
        return gpus

    def timeout_minutes(self, node: Node, key: str) -> float | None:
        minutes = self.reader.scalar(node, key, (int, float), "a positive number of minutes")
        if minutes is not None and minutes <= 0:
            self.reader.expected(node, key, "a positive number of minutes")
            return None
        if minutes is not None and minutes > MAX_MINUTES:
            self.reader.expected(node, key, f"at most {MAX_MINUTES} minutes (a year)")
            return None
        return None if minutes is None else float(minutes)

    def build(self, node: Node, key: str) -> Build | None:
        """`build: DIR` (its Dockerfile) or `build: {context: DIR, dockerfile: FILE}` (FILE relative to DIR)."""
        context_node, file_node = node, None
        if isinstance(node, MappingNode):
            fields = self.reader.fields(
                node, key, ("context", "dockerfile"), required=("context",), owner=node
            )
            if not fields or "context" not in fields:
                return None
            context_node, file_node = fields["context"].value, fields.get("dockerfile")
        context_key = join(key, "context") if file_node is not None or context_node is not node else key
        context = self.directory(context_node, context_key, "build context")
        dockerfile: str | None = "Dockerfile"
        if file_node is not None:
            dockerfile = workspace_path(self.reader, file_node.value, join(key, "dockerfile"))
        if context is None or dockerfile is None:
            return None
        path = posixpath.normpath(posixpath.join(context, dockerfile))
        if not self.reader.facts.is_file(self.root / path):
            where = file_node.value if file_node is not None else context_node
            where_key = join(key, "dockerfile") if file_node is not None else context_key
            fix = "add it, or name it with 'dockerfile' (relative to the context)"
            self.reader.add(where, where_key, f"Dockerfile {path!r} does not exist", fix)
        return Build(context=context, dockerfile=dockerfile)

    def directory(self, node: Node, key: str, what: str) -> str | None:
        rel = workspace_path(self.reader, node, key)
        if rel is not None and not self.reader.facts.is_dir(self.root / rel):
            self.reader.add(node, key, f"{what} {rel!r} is not a directory", missing_fix(self.root, rel))
            return None
        return rel

    def shm_size(self, node: Node, key: str) -> str | None:
        value = plain(node) if isinstance(node, ScalarNode) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return str(value)
        if isinstance(value, str) and SHM_SIZE.fullmatch(value):
            return value
        self.reader.expected(node, key, "a size in bytes, or a number ending in b, k, m or g such as '2g'")
        return None

    def ulimits(self, node: Node, key: str) -> dict[str, tuple[int, int]] | None:
        entries = self.reader.entries(node, key, what="ulimit")
        if entries is None:
            return None
        out: dict[str, tuple[int, int]] = {}
        for entry in entries:
            limit_key = join(key, entry.name)
            if entry.name not in ULIMITS:
                self.reader.add(
                    entry.key, limit_key, f"unknown ulimit {entry.name!r}", did_you_mean(entry.name, ULIMITS)
                )
                continue
            limits = self.ulimit(entry.value, limit_key)
            if limits is not None:
                out[entry.name] = limits
        return out

    def ulimit(self, node: Node, key: str) -> tuple[int, int] | None:
        value = plain(node) if isinstance(node, ScalarNode) else None
        if isinstance(value, int) and not isinstance(value, bool) and value >= -1:
            return value, value
        found = ULIMIT_VALUE.fullmatch(value) if isinstance(value, str) else None
        if found is None:
            self.reader.expected(node, key, "a limit (-1: unlimited) or 'SOFT:HARD'")
            return None
        soft, hard = int(found[1]), int(found[2] or found[1])
        if hard != -1 and (soft == -1 or soft > hard):
            self.reader.add(
                node, key, f"soft limit {soft} is above hard limit {hard}", "give SOFT:HARD, SOFT <= HARD"
            )
            return None
        return soft, hard

    def user(self, node: Node, key: str) -> str | None:
        value = plain(node) if isinstance(node, ScalarNode) else None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return str(value)
        if isinstance(value, str) and USER.fullmatch(value):
            return value
        self.reader.expected(node, key, "a user name or uid, optionally with ':GROUP'")
        return None

    def mounts(self, node: Node, key: str) -> tuple[ContainerMount, ...]:
        out: list[ContainerMount] = []
        for text, item in self.reader.strings(node, key):
            mount = self.mount(item, key, text)
            if mount is not None:
                out.append(mount)
        return tuple(out)

    def mount(self, node: Node, key: str, text: str) -> ContainerMount | None:
        found = MOUNT.fullmatch(text)
        if found is None:
            self.reader.add(node, key, f"expected HOST:CONTAINER or HOST:CONTAINER:ro, found {text!r}")
            return None
        host, target = found[1], found[2]
        if not target.startswith("/"):
            self.reader.add(node, key, f"container path {target!r} is not absolute", "start it with '/'")
            return None
        target = posixpath.normpath(target)
        if target == "/mlpipe" or target.startswith("/mlpipe/"):
            fix = "mlpipe mounts the code, inputs and outputs there; choose another path"
            self.reader.add(node, key, f"container path {target!r} is inside /mlpipe", fix)
            return None
        if not host.startswith("/"):
            rel = posixpath.normpath(host)
            if rel == ".." or rel.startswith("../"):
                fix = "give it relative to the workspace root, or absolute"
                self.reader.add(node, key, f"host path {host!r} is outside the workspace root", fix)
                return None
            if not self.reader.facts.exists(self.root / rel):
                self.reader.add(node, key, f"host path {rel!r} does not exist", missing_fix(self.root, rel))
            host = rel
        return ContainerMount(host=host, target=target, read_only=found[3] == "ro")

    def network(self, node: Node, key: str) -> str | None:
        value = plain(node) if isinstance(node, ScalarNode) else None
        if value in NETWORKS:
            return str(value)
        fix = did_you_mean(value, NETWORKS) if isinstance(value, str) else ""
        self.reader.expected(node, key, "'none', 'host' or 'bridge'", fix if fix.startswith("did") else "")
        return None

    def matrix(self, node: Node, key: str) -> None:
        """Kept on the draft (`matrix_spec`): instances are made once the params are known."""
        entries = self.reader.entries(node, key)
        if entries == []:
            self.reader.add(node, key, "expected at least one key", "remove 'matrix' or list values to sweep")
        for entry in entries or []:
            entry_key = join(key, entry.name)
            check_name(self.reader, entry, entry_key, "matrix key")
            if not isinstance(entry.value, SequenceNode) or not entry.value.value:
                self.reader.expected(entry.value, entry_key, "a non-empty list of values")
                continue
            values = self.matrix_spec.setdefault(entry.name, [])
            for item in entry.value.value:
                what = "a boolean, integer, number or string"
                value = self.reader.scalar(item, entry_key, (bool, int, float, str), what)
                if isinstance(value, str) and not MATRIX_VALUE.fullmatch(value):
                    fix = "use letters, digits and '_', '.', '+', '-' (the value is part of the instance's name)"
                    self.reader.add(item, entry_key, f"invalid matrix value {value!r}", fix)
                elif value is not None:
                    values.append((value, item))

    def env_passthrough(self, node: Node, key: str) -> tuple[str, ...]:
        out: list[str] = []
        for name, item in self.reader.strings(node, key):
            if not ENV_NAME.fullmatch(name):
                fix = "use letters, digits and '_', starting with a letter or '_'"
                self.reader.add(item, key, f"invalid environment variable name {name!r}", fix)
            elif name.startswith("MLPIPE_"):
                self.reader.add(item, key, f"{name} is set by mlpipe", "remove it from env-passthrough")
            else:
                out.append(name)
        return tuple(out)

    def environment(self, node: Node, key: str) -> dict[str, Any]:
        """Model fields: `environment` (files), and `environment_python`/`environment_packages` flags."""
        if not isinstance(node, MappingNode):
            return {"environment": self.environment_files(node, key)}
        fields = self.reader.fields(node, key, ENVIRONMENT_KEYS, owner=node) or {}
        out: dict[str, Any] = {}
        if "files" in fields:
            out["environment"] = self.environment_files(fields["files"].value, join(key, "files"))
        for flag in ("python", "packages"):
            if flag in fields:
                value = self.reader.scalar(fields[flag].value, join(key, flag), (bool,), "true or false")
                if value is not None:
                    out[f"environment_{flag}"] = value
        return out

    def environment_files(self, node: Node, key: str) -> tuple[str, ...]:
        out: list[str] = []
        for _, item in self.reader.strings(node, key):
            rel = workspace_path(self.reader, item, key)
            if rel is None:
                continue
            if not self.reader.facts.exists(self.root / rel):
                fix = missing_fix(self.root, rel)
                self.reader.add(item, key, f"environment file {rel!r} does not exist", fix)
            elif not self.reader.facts.is_file(self.root / rel):
                self.reader.add(
                    item, key, f"environment file {rel!r} is not a file", "list the files themselves"
                )
            out.append(rel)
        return tuple(out)


def _check_passthrough_overlap(reader: Reader, node: Node, values: dict[str, Any], key: str) -> None:
    """A variable is either set by the file (and fingerprinted) or passed through from the caller, not both."""
    items = node.value if isinstance(node, SequenceNode) else [node]
    for item in items:
        if isinstance(item, ScalarNode) and item.value in values.get("env", {}):
            message = f"{item.value} is also set under env"
            fix = "remove it from one: env values are fingerprinted, passed-through ones are not"
            reader.add(item, join(key, "env-passthrough"), message, fix)


def syntax_problem(reader: Reader, node: Node, key: str, error: refs.RefSyntaxError) -> None:
    """A malformed `${{ }}`, pointed at its column when the string sits on one line as written."""
    if not error.text.endswith("}}"):
        text = error.text.splitlines()[0][:40]
        reader.add(node, key, f"unclosed expression {text!r}", "close it with '}}'", offset=error.offset)
        return
    head, dot, rest = error.text[3:-2].strip().partition(".")
    close = close_matches(head, ("params", "inputs", "outputs", "matrix", "steps"), n=1)
    fix = f"did you mean '${{{{ {close[0]}.{rest} }}}}'?" if dot and close and close[0] != head else REF_FORMS
    reader.add(node, key, f"malformed expression {error.text!r}", fix, offset=error.offset)


def env_text(node: ScalarNode) -> str:
    """An env value as a string: numbers as written, booleans as true/false, null as empty."""
    value = plain(node)
    if value is None:
        return ""
    if isinstance(value, bool):
        return refs.param_text(value)
    return value if isinstance(value, str) else str(node.value)


def workspace_path(reader: Reader, node: Node, key: str) -> str | None:
    """A workspace-relative, normalized, '/'-separated path, or None when it is not one (reported)."""
    text = reader.string(node, key)
    if text is None:
        return None
    if not text.strip():
        reader.expected(node, key, "a path relative to the workspace root")
        return None
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute():
        reader.add(node, key, f"path {text!r} is absolute", "give it relative to the workspace root")
        return None
    rel = posixpath.normpath(text)
    if rel == ".." or rel.startswith("../"):
        fix = "mlpipe only reads files inside the workspace (the pipeline file's directory)"
        reader.add(node, key, f"path {text!r} is outside the workspace root", fix)
        return None
    return rel


def missing_fix(root: Path, rel: str) -> str:
    """'did you mean' a sibling with a close name, else where paths are relative to."""
    parent = (root / rel).parent
    if parent.is_dir():
        siblings = sorted(p.name for p in parent.iterdir())
        close = close_matches(PurePosixPath(rel).name, siblings, n=1)
        if close:
            return f"did you mean {posixpath.join(posixpath.dirname(rel), close[0])!r}?"
    return f"paths are relative to the workspace root {root}"
