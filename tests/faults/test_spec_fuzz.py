"""Property-based fuzzing of the pipeline loader: whatever a file holds, `load_pipeline` returns a pipeline or
raises SpecError whose every problem is one `file:line:col:` line; never another exception. A pipeline it
accepts exports to strict JSON that loads back to the same export.

Inputs: (a) a valid pipeline mutated as data (keys, values of every type, deep nesting, `${{ }}` references,
unicode, matrices, params), dumped as YAML and then mutated as text (tags, anchors and aliases, plain scalars
YAML resolves specially, brackets, tabs, escapes, duplicated, dropped or cut lines); (b) random bytes and
byte-flipped pipelines. In-process for speed, and a sample through the real `mlpipe validate`.

Bounded: a few hundred examples and no deadline per example; derandomized under CI=true so a failure there
reproduces, and no example database is written into the work tree.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import fault_tally
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlpipe.errors import SpecError
from mlpipe.spec.export import export_json
from mlpipe.spec.load import load_pipeline

FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=os.environ.get("CI") == "true",
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
BASE: dict[str, Any] = {
    "name": "demo",
    "params": {"lr": 0.1, "epochs": 3, "fast": False, "tag": "v1"},
    "steps": {
        "prepare": {
            "code": "src",
            "run": "python prep.py ${{ inputs.raw }} ${{ outputs.data }} ${{ params.tag }}",
            "inputs": {"raw": "data/raw.csv"},
            "outputs": {"data": None, "report": {"type": "file", "path": "reports/prep.txt"}},
            "env": {"SEED": 7, "FAST": "${{ params.fast }}"},
            "environment": ["uv.lock"],
        },
        "train": {
            "run": "python train.py ${{ inputs.data }} ${{ params.lr }} ${{ matrix.opt }} ${{ outputs.model }}",
            "inputs": {"data": "${{ steps.prepare.outputs.data }}"},
            "outputs": {
                "model": {"path": "models/"},
                "scores": {"kind": "metrics", "higher-is-better": True},
            },
            "matrix": {"opt": ["adam", "sgd"], "epochs": [1, 2]},
            "image": "python:3.12",
            "resources": {"gpus": 1},
            "timeout-minutes": 30,
            "ulimits": {"nofile": 1024, "memlock": "-1:-1"},
            "shm-size": "1g",
            "mounts": ["data:/data:ro"],
            "network": "none",
        },
        "report": {
            "run": "cat ${{ inputs.scores }}",
            "inputs": {"scores": "${{ steps.train[*].outputs.scores }}"},
            "needs": ["prepare"],
            "reuse": False,
            "runs-on": ["cpu"],
        },
    },
}
FILES = {"src/prep.py": "", "data/raw.csv": "x\n", "uv.lock": "", "models/.keep": ""}
NAMES = ["name", "params", "steps", "code", "run", "inputs", "outputs", "env", "matrix", "needs", "image",
         "build", "path", "kind", "type", "url", "sha256", "external", "gpus", "<<", "prepare", "train", "x"]  # fmt: skip
REFS = st.builds(
    lambda scope, name, extra: f"${{{{ {scope}.{name}{extra} }}}}",
    st.sampled_from(["params", "inputs", "outputs", "matrix", "steps", "env", ""]),
    st.sampled_from(
        [
            "lr",
            "data",
            "prepare.outputs.data",
            "train[*].outputs.scores",
            "train[opt=adam]",
            "nope",
            "",
            "a b",
            "${{",
        ]
    ),
    st.sampled_from(["", ".outputs.x", "}}", "[", " ${{ params.lr"]),
)
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
"""Any code point, lone surrogates and NUL included."""
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | TEXT
    | REFS
    | st.sampled_from(
        [
            "data/raw.csv",
            "src",
            "../x",
            "/etc/passwd",
            ".git/hooks/x",
            ".",
            "a/../.mlpipe/x",
            "oci://127.0.0.1/r@sha256:" + "0" * 64,
            "https://x/y",
            "python:3.12",
            "1g",
            "-1:-1",
        ]
    )
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(NAMES) | TEXT, inner, max_size=4)
    ),
    max_leaves=12,
)
RAW = [
    "!!python/object/apply:os.system ['touch PWNED']", "!!binary aGVsbG8=", "!foo x", "!!int abc", "!!str 1",
    "&a [1, 2]", "*a", "*undefined", "&b {run: x, again: *b}", "[*a, *a, *a]", "{<<: *a}", "<<", "=",
    ".inf", "-.nan", "~", "yes", "0x1F", "0o17", "1_000", "1:30:00", "2001-12-14", "2001-13-45",
    "99999999999999999999999", "1e999", "9" * 5000, '"\\0"', '"\\ud800"', '"\\x1b[2J"', "'${{ params.lr }}'",
    "${{", "}}", "[", "]", "{", "}", "[[[[[[[[", "{a: {b: {c:", "? [a, b]\n  : c", "- x", "--- ", "...",
    "%YAML 1.1", "|", ">-", "@x", "`x`", "\t", "'", '"', "#", ": :", "a: b: c",
]  # fmt: skip


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    (root / ".git").mkdir()
    for rel, content in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    return root


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path of a dict/list tree, the root included."""
    out = [prefix]
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        out.extend(paths(child, (*prefix, key)))
    return out


PARAM_NAMES = st.sampled_from(["lr", "epochs", "fast", "tag", "opt", "seed"]) | TEXT
PARAMS = st.dictionaries(PARAM_NAMES, SCALARS, max_size=6)
MATRIX = st.dictionaries(PARAM_NAMES, st.lists(SCALARS, max_size=5) | SCALARS, max_size=4)


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    """The valid pipeline with new params and matrix (of every type), then one to three changes as data."""
    doc: Any = copy.deepcopy(BASE)
    if draw(st.booleans()):
        doc["params"] = draw(PARAMS)
    if draw(st.booleans()):
        doc["steps"]["train"]["matrix"] = draw(MATRIX)
    for _ in range(draw(st.integers(0 if doc != BASE else 1, 3))):
        where = draw(st.sampled_from(paths(doc)))
        action = draw(st.sampled_from(["replace", "delete", "add", "nest"]))
        if not where:
            doc = draw(VALUES) if action == "replace" else doc
            continue
        parent = doc
        for key in where[:-1]:
            parent = parent[key]
        key = where[-1]
        if action == "replace":
            parent[key] = draw(VALUES)
        elif action == "delete":
            del parent[key]
        elif action == "add" and isinstance(parent[key], dict):
            parent[key][draw(st.sampled_from(NAMES) | TEXT)] = draw(VALUES)
        elif action == "nest":
            for _ in range(draw(st.integers(1, 100))):
                parent[key] = draw(st.sampled_from([lambda v: [v], lambda v: {"x": v}]))(parent[key])
    return doc


NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}", fullmatch=True)
GOOD_SCALARS = (
    st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=20)
)


@st.composite
def valid_documents(draw: st.DrawFn) -> Any:
    """The base pipeline with params of every type, a matrix and references to them: mostly valid, so the
    export round trip is exercised too."""
    doc: Any = copy.deepcopy(BASE)
    params = {**BASE["params"], **draw(st.dictionaries(NAME, GOOD_SCALARS, max_size=5))}
    doc["params"] = params
    values = st.from_regex(r"[A-Za-z0-9_.+-]{1,8}", fullmatch=True) | st.integers(-1000, 1000) | st.booleans()
    names = [n for n in draw(st.lists(NAME, max_size=3, unique=True)) if n not in params]
    matrix = {n: draw(st.lists(values, min_size=1, max_size=4, unique_by=str)) for n in names}
    train = doc["steps"]["train"]
    train["matrix"] = matrix or {"opt": ["adam"]}
    train["run"] = "run " + " ".join(f"${{{{ params.{n} }}}}" for n in params) + " ${{ outputs.model }}"
    train["run"] += "".join(f" ${{{{ matrix.{n} }}}}" for n in matrix)
    train["env"] = {n.replace("-", "_"): value for n, value in params.items()}
    return doc


@st.composite
def yaml_texts(draw: st.DrawFn) -> str:
    """A mutated document dumped as YAML in some style, then changed as text."""
    doc = draw(valid_documents() | mutated_documents())
    try:
        text = yaml.safe_dump(
            doc,
            default_flow_style=draw(st.sampled_from([False, True, None])),
            allow_unicode=draw(st.booleans()),
            sort_keys=False,
            width=draw(st.sampled_from([20, 80, 10_000])),
        )
    except (yaml.YAMLError, RecursionError):  # a document the emitter itself cannot write
        text = yaml.safe_dump(BASE, sort_keys=False)
    lines = text.splitlines()
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):
        if not lines:
            break
        at = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["value", "insert", "delete", "duplicate", "cut", "indent"]))
        raw = draw(st.sampled_from(RAW) | TEXT)
        if action == "value":
            head, colon, _ = lines[at].partition(": ")
            lines[at] = f"{head}: {raw}" if colon else f"{lines[at]} {raw}"
        elif action == "insert":
            lines.insert(at, draw(st.sampled_from(["", "  ", "    "])) + raw)
        elif action == "delete":
            del lines[at]
        elif action == "duplicate":
            lines.insert(at, lines[at])
        elif action == "cut":
            lines = [*lines[:at], lines[at][: draw(st.integers(0, len(lines[at])))]]
        else:
            lines[at] = draw(st.sampled_from([" ", "\t", "  "])) + lines[at]
    return "\n".join(lines) + "\n"


BOMB_USES = [
    "name: *A\nsteps: {a: {run: x}}",
    "name: x\nsteps: *A",
    "name: x\nparams: *A\nsteps: {a: {run: x}}",
    "name: x\nsteps: {a: {run: x, env: *A}}",
    "name: x\nsteps: {a: {run: x, matrix: {k: *A}}}",
    "name: x\nsteps: {a: {run: *A, needs: *A, outputs: {o: *A}}}",
    "name: x\nsteps: {a: {<<: *A, run: x}}",
]


@st.composite
def alias_bombs(draw: st.DrawFn) -> str:
    """Anchors of lists (or mappings), each holding `fan` aliases of the one before, used in the pipeline."""
    fan, levels = draw(st.integers(2, 12)), draw(st.integers(1, 9))
    mapping = draw(st.booleans())
    lines = ["a0: &a0 {k: x}" if mapping else "a0: &a0 [x]"]
    for i in range(1, levels + 1):
        items = [f"k{j}: *a{i - 1}" if mapping else f"*a{i - 1}" for j in range(fan)]
        lines.append(
            f"a{i}: &a{i} " + ("{" + ", ".join(items) + "}" if mapping else "[" + ", ".join(items) + "]")
        )
    return "\n".join(lines) + "\n" + draw(st.sampled_from(BOMB_USES)).replace("*A", f"*a{levels}") + "\n"


def check(ws: Path, content: str | bytes, name: str = "mlpipe.yaml") -> str:
    """The property: a pipeline or SpecError problems each one `file:line:col:` line; 'valid' or 'invalid'."""
    path = ws / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    try:
        pipeline = load_pipeline(path)
    except SpecError as error:
        assert error.problems
        for problem in error.problems:
            text = str(problem)
            assert problem.line >= 1 and problem.col >= 1, text
            assert text.startswith(f"{problem.file}:{problem.line}:{problem.col}: "), text
            assert "\n" not in text, text
        return "invalid"
    exported = export_json(pipeline)
    json.loads(exported, parse_constant=lambda c: pytest.fail(f"export wrote {c}, which is not JSON"))
    again = ws / "exported.json"
    again.write_text(exported)
    assert export_json(load_pipeline(again)) == exported
    return "valid"


@settings(FUZZ, max_examples=400)
@given(text=yaml_texts())
def test_mutated_pipelines_are_a_pipeline_or_located_problems(ws: Path, text: str) -> None:
    check(ws, text)
    assert not (ws / "PWNED").exists()
    fault_tally.record("hostile pipeline file (fuzzed)")


@settings(FUZZ, max_examples=60)
@given(text=alias_bombs())
def test_alias_bombs_are_refused_or_read_without_expanding(ws: Path, text: str) -> None:
    check(ws, text)
    fault_tally.record("hostile pipeline file (fuzzed)")


@settings(FUZZ, max_examples=200)
@given(
    content=st.binary(max_size=2000)
    | st.builds(
        lambda flips: bytes(b ^ flips.get(i, 0) for i, b in enumerate(yaml.safe_dump(BASE).encode())),
        st.dictionaries(st.integers(0, 1500), st.integers(1, 255), max_size=8),
    ),
    name=st.sampled_from(["mlpipe.yaml", "pipeline.json"]),
)
def test_random_bytes_are_a_pipeline_or_located_problems(ws: Path, content: bytes, name: str) -> None:
    check(ws, content, name)
    fault_tally.record("hostile pipeline file (fuzzed)")


def test_the_base_pipeline_is_valid(ws: Path) -> None:
    """Mutations start from a pipeline that loads, so they explore near valid files, not only broken ones."""
    assert check(ws, yaml.safe_dump(BASE, sort_keys=False)) == "valid"


LINE = re.compile(r"mlpipe\.yaml:\d+:\d+: \S")


@settings(FUZZ, max_examples=20)
@given(text=yaml_texts() | alias_bombs())
def test_a_sample_through_the_real_validate_command(ws: Path, text: str) -> None:
    (ws / "mlpipe.yaml").write_bytes(text.encode("utf-8", "surrogatepass"))

    done = subprocess.run(
        [sys.executable, "-m", "mlpipe", "validate"],
        cwd=ws, capture_output=True, text=True, errors="replace", timeout=60, check=False,
    )  # fmt: skip

    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in {0, 2}, done.stderr
    if done.returncode == 2:
        assert done.stdout == ""
        assert all(LINE.match(line) for line in done.stderr.splitlines()), done.stderr
    else:
        assert re.fullmatch(r"mlpipe\.yaml: ok \(\d+ steps?\)\n", done.stdout), done.stdout
    fault_tally.record("hostile pipeline file (fuzzed)", runs_completed=1)
