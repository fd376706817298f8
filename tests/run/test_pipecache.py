"""The parsed-pipeline cache (run/pipecache.py, spec/stored.py): a pipeline rebuilt from it is exactly the one a
fresh parse builds (locations, matrix instances, defaults, overrides), and a cache entry that is stale, damaged,
foreign or hostile is never used: the file is parsed again, and errors always come from a real parse."""

from __future__ import annotations

import ast
import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mlpipe.errors import SpecError, UsageError
from mlpipe.records import BadRecord
from mlpipe.run import pipecache
from mlpipe.spec import stored
from mlpipe.spec.load import load_pipeline
from mlpipe.spec.model import Pipeline

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SHA = "0123456789abcdef" * 4
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=os.environ.get("CI") == "true",
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

KITCHEN = f"""\
name: kitchen sink
params:
  lr: 0.1
  epochs: 3
  fast: false
  tag: v1
  big: 9223372036854775807
steps:
  prepare:
    code: src/./prep/
    run: |
      python prep.py ${{{{ inputs.raw }}}} \\
        --out ${{{{ outputs.data }}}} --tag ${{{{ params.tag }}}}
    inputs:
      raw: data//raw.csv
      web: {{url: 'https://example.org/d.csv', sha256: 'SHA256:{SHA.upper()}'}}
      far: {{path: EXTERNAL//, external: true}}
      set: sets/raw.mlpipe-data.json
      art: oci://127.0.0.1:5000/data/set@sha256:{SHA}
    outputs:
      data:
      report: {{type: file, path: reports/prep.txt}}
    env: {{SEED: 7, RATE: 0.50, DEBUG: yes, EMPTY: , UNI: "caf\\u00e9 \\U0001F600"}}
    env-passthrough: [HF_TOKEN]
    environment: {{files: [uv.lock], python: true, packages: true}}
    fan-out: true
  train:
    run: python train.py ${{{{ inputs.data }}}} ${{{{ matrix.lr }}}} ${{{{ matrix.opt }}}} > ${{{{ outputs.scores }}}}
    inputs:
      data: ${{{{ steps.prepare.outputs.data }}}}
    outputs:
      model: {{path: models/}}
      scores: {{kind: metrics, higher-is-better: [accuracy], lower-is-better: [loss]}}
    matrix: {{lr: [0.1, 1], opt: [adam, sgd]}}
    image: python:3.12
    resources: {{gpus: 2}}
    runs-on: [self-hosted, gpu]
    timeout-minutes: 30
    shm-size: 1g
    ulimits: {{nofile: 1024, memlock: "-1:-1", core: "0:10"}}
    user: "1000:1000"
    mounts: [data:/data:ro, /tmp//x:/x]
    network: none
    reuse: false
  report:
    build: {{context: docker, dockerfile: Dockerfile.ci}}
    run: cat ${{{{ inputs.all }}}}
    inputs:
      all: ${{{{ steps.train[*].outputs.scores }}}}
      one: ${{{{ steps.train[lr=0.1,opt=adam].outputs.model }}}}
    outputs:
      final: {{kind: metrics, lower-is-better: true}}
    needs: [train, prepare]
"""
RECORD = json.dumps({"format": "mlpipe.data/1", "path": "raw", "digest": f"sha256:{SHA}", "type": "dir"})
KITCHEN_FILES = {
    "src/prep/prep.py": "",
    "data/raw.csv": "x\n",
    "uv.lock": "",
    "sets/raw.mlpipe-data.json": RECORD,
    "docker/Dockerfile.ci": "FROM scratch\n",
}


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".mlpipe").mkdir()
    return tmp_path


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every real parse the cache falls back to (the real loader runs; the list only counts)."""
    seen: list[Path] = []
    parse = pipecache._parse

    def counted(path: Path, *args: Any) -> Pipeline:
        seen.append(path)
        return parse(path, *args)

    monkeypatch.setattr(pipecache, "_parse", counted)
    return seen


def kitchen(root: Path) -> Path:
    for rel, content in KITCHEN_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    external = root / "outside"
    external.mkdir(exist_ok=True)
    path = root / "mlpipe.yaml"
    path.write_text(KITCHEN.replace("EXTERNAL", str(external)))
    return path


def same(a: Pipeline, b: Pipeline) -> None:
    """Equal, and equal in every detail == overlooks: mapping order, 1 vs 1.0 vs True, tuple vs list."""
    assert a == b
    assert repr(a) == repr(b)


def entry_of(path: Path) -> Path:
    (entry,) = (path.resolve().parent / ".mlpipe" / "pipelines").glob("*.json")
    return entry


def unpacked(content: bytes) -> tuple[bytes, bytes, bytes]:
    """An entry's (key as written, checksum, sealed body); the entry is one JSON object."""
    data = json.loads(content)
    key = json.dumps(data["key"], sort_keys=True, separators=(",", ":")).encode()
    return key, data["sha256"].encode(), base64.b64decode(data["sealed"])


def packed(key: bytes, body: bytes, checksum: bytes | None = None) -> bytes:
    """An entry as mlpipe writes it (with the right checksum unless one is given)."""
    sealed = base64.b64encode(body)
    checksum = checksum or hashlib.sha256(sealed).hexdigest().encode()
    return b'{"key":%s,"sha256":"%s","sealed":"%s"}' % (key, checksum, sealed)


def body_of(path: Path) -> Any:
    """The data the entry of the pipeline file `path` holds (sealed with the file's bytes)."""
    _, _, body = unpacked(entry_of(path).read_bytes())
    return json.loads(pipecache._unseal(path.read_bytes(), body))


def rewrite(path: Path, change: Any) -> None:
    """Change the stored data with `change(data)`, sealed and checksummed again, as a hostile writer can."""
    entry = entry_of(path)
    key, _, _ = unpacked(entry.read_bytes())
    data = body_of(path)
    change(data)
    entry.write_bytes(packed(key, pipecache._seal(path.read_bytes(), data)))


# -- a rebuilt pipeline is the parsed one -----------------------------------------------------------------------
def test_the_kitchen_sink_comes_back_exactly(ws: Path, parses: list[Path]) -> None:
    path = kitchen(ws)
    fresh = load_pipeline(path)

    first = pipecache.load(path)
    again = pipecache.load(path)

    same(fresh, first)
    same(fresh, again)
    assert len(parses) == 1  # the second load read the cache
    assert list(again.steps) == [
        "prepare",
        "train[lr=0.1,opt=adam]",
        "train[lr=0.1,opt=sgd]",
        "train[lr=1.0,opt=adam]",  # lr is a float param
        "train[lr=1.0,opt=sgd]",
        "report",
    ]
    assert str(again.steps["report"].inputs["all"].loc) == "mlpipe.yaml:49:7"


@pytest.mark.parametrize(
    "example", sorted(p.name for p in EXAMPLES.iterdir() if (p / "mlpipe.yaml").is_file())
)
def test_the_examples_come_back_exactly(example: str, ws: Path, parses: list[Path]) -> None:
    shutil.copytree(EXAMPLES / example, ws / example)
    path = ws / example / "mlpipe.yaml"
    (path.parent / ".mlpipe").mkdir()
    fresh = load_pipeline(path)

    pipecache.load(path)
    cached = pipecache.load(path)

    same(fresh, cached)
    assert len(parses) == 1
    assert cached.steps["train"].loc.file == f"{example}/mlpipe.yaml"


def pipelines_in_the_tests() -> list[str]:
    """Every pipeline written out in a test module (a string holding `steps:` and `run:`)."""
    found = []
    for module in sorted(Path(__file__).resolve().parents[1].rglob("test_*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and "steps:" in text and "run:" in text:
                found.append(textwrap.dedent(text))
    return sorted(set(found))


def test_the_test_suite_s_pipelines_come_back_exactly(ws: Path, parses: list[Path]) -> None:
    # Those that load in an empty workspace (the others need files, or are written to be wrong).
    clean = 0
    for number, text in enumerate(pipelines_in_the_tests()):
        path = ws / str(number) / "mlpipe.yaml"
        (path.parent / ".mlpipe").mkdir(parents=True)
        path.write_text(text)
        try:
            fresh = load_pipeline(path)
        except (SpecError, UsageError):
            continue
        clean += 1
        pipecache.load(path)
        same(fresh, pipecache.load(path))
        assert len(parses) == clean
    assert clean > 40


def test_overrides_are_applied_to_the_cached_pipeline(ws: Path, parses: list[Path]) -> None:
    path = kitchen(ws)
    overrides = {"lr": "1e-3", "epochs": "5", "fast": "YES", "tag": "v2"}
    pipecache.load(path)

    cached = pipecache.load(path, overrides)

    same(load_pipeline(path, overrides=overrides), cached)
    assert len(parses) == 1
    same(load_pipeline(path), pipecache.load(path))  # the entry holds the defaults


def test_an_override_never_reaches_the_cache(ws: Path) -> None:
    # A value given with -p may be a secret; a cold load with it stores the pipeline with its defaults.
    path = kitchen(ws)
    cached = pipecache.load(path, {"tag": "s3cret-override"})
    assert cached.params["tag"].value == "s3cret-override"
    assert b"s3cret-override" not in entry_of(path).read_bytes()
    same(load_pipeline(path), pipecache.load(path))


def test_what_the_file_holds_in_plain_text_is_not_in_the_entry(ws: Path) -> None:
    # A token written as an env value stays out of .mlpipe/, as out of run records; the file unseals it.
    path = kitchen(ws)
    path.write_text(path.read_text().replace("SEED: 7", "SEED: s3cr3t-token-value"))
    pipecache.load(path)
    content = entry_of(path).read_bytes()
    assert b"s3cr3t-token-value" not in content
    assert b"s3cr3t-token-value" not in unpacked(content)[2]  # nor once the base64 is decoded
    assert body_of(path)["steps"][0]["env"]["SEED"] == "s3cr3t-token-value"
    assert pipecache.load(path).steps["prepare"].env["SEED"] == "s3cr3t-token-value"


def test_an_override_mistake_is_the_parser_s_message(ws: Path) -> None:
    path = kitchen(ws)
    pipecache.load(path)
    for overrides in ({"nope": "1"}, {"epochs": "many"}):
        with pytest.raises(SpecError) as fresh:
            load_pipeline(path, overrides=overrides)
        with pytest.raises(SpecError) as cached:
            pipecache.load(path, overrides)
        assert str(cached.value) == str(fresh.value)


# -- hypothesis: generated pipelines, fresh == cached -------------------------------------------------------------
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}", fullmatch=True)
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0"), max_size=20)
VALUES = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
MATRIX_VALUES = st.integers(-5, 5) | st.sampled_from(["adam", "sgd", "x.1", "a+b"]) | st.booleans()


@st.composite
def pipelines(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, str]]:
    params = draw(st.dictionaries(NAMES, VALUES, max_size=4))
    steps: dict[str, Any] = {}
    for i in range(draw(st.integers(1, 4))):
        step: dict[str, Any] = {"run": draw(TEXT) + " ${{ outputs.o }}", "outputs": {"o": None}}
        if steps and draw(st.booleans()):
            up = draw(st.sampled_from(sorted(steps)))
            selector = "[*]" if "matrix" in steps[up] else ""
            step["inputs"] = {"up": f"${{{{ steps.{up}{selector}.outputs.o }}}}"}
        if draw(st.booleans()):
            step["env"] = draw(
                st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,5}", fullmatch=True), VALUES, max_size=3)
            )
        if draw(st.booleans()):
            step["matrix"] = draw(
                st.dictionaries(
                    NAMES,
                    st.lists(MATRIX_VALUES, min_size=1, max_size=3, unique_by=str),
                    min_size=1,
                    max_size=2,
                )
            )
        if draw(st.booleans()):
            step["outputs"]["m"] = {
                "kind": "metrics",
                "higher-is-better": draw(
                    st.booleans() | st.lists(TEXT.filter(bool), max_size=2, unique=True)
                ),
            }
        if draw(st.booleans()):
            step["timeout-minutes"] = draw(st.integers(1, 1000) | st.floats(0.5, 1000))
        if draw(st.booleans()):
            step["runs-on"] = draw(st.lists(TEXT, max_size=2))
        steps[f"s{i}"] = step
    overrides = {name: str(value).lower() if isinstance(value, bool) else str(value)
                 for name, value in params.items() if draw(st.booleans())}  # fmt: skip
    return {"name": draw(TEXT), "params": params, "steps": steps}, overrides


@PROPERTY
@given(pipelines(), st.sampled_from(["block", "flow", "json"]))
def test_generated_pipelines_come_back_exactly(
    ws: Path, made: tuple[dict[str, Any], dict[str, str]], style: str
) -> None:
    document, overrides = made
    text = (
        json.dumps(document, indent=1)
        if style == "json"
        else yaml.safe_dump(document, default_flow_style=style == "flow", allow_unicode=True, sort_keys=False)
    )
    path = ws / f"{len(list(ws.iterdir()))}.{'json' if style == 'json' else 'yaml'}"
    path.write_text(text)
    try:
        fresh = load_pipeline(path, overrides=overrides)
    except SpecError:
        assume(False)
        return
    first = pipecache.load(path, overrides)
    cached = pipecache.load(path, overrides)
    same(fresh, first)
    same(fresh, cached)
    assert pipecache._lookup(entry_of_file(path), *lookup_args(path)) is not None


def entry_of_file(path: Path) -> Path:
    name = hashlib.sha256(os.fsencode(path.resolve())).hexdigest()[:32]
    return path.resolve().parent / ".mlpipe" / "pipelines" / f"{name}.json"


def lookup_args(path: Path) -> tuple[bytes, bytes, Path, str]:
    raw, signature = pipecache._read(path) or (b"", [])
    key = pipecache._key(path.resolve(), path.name, signature, raw)
    return key, raw, path.resolve(), path.name


# -- what the entry is keyed on --------------------------------------------------------------------------------
def test_an_edit_is_seen_even_with_the_same_stat_data(ws: Path, parses: list[Path]) -> None:
    path = kitchen(ws)
    pipecache.load(path)
    before = path.stat()
    path.write_text(path.read_text().replace("name: kitchen sink", "name: kitchen sunk"))  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    entry = entry_of(path)
    # As if the edit had left every stat field as it was (same mtime tick, a filesystem without ctime): the
    # entry's key names the file's stat data now and only the old content's hash.
    key, _, body = unpacked(entry.read_bytes())
    fields = json.loads(key)
    fields["stat"] = [
        path.stat().st_size,
        path.stat().st_mtime_ns,
        path.stat().st_ctime_ns,
        path.stat().st_ino,
    ]
    entry.write_bytes(packed(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode(), body))

    assert pipecache.load(path).name == "kitchen sunk"
    assert len(parses) == 2


def test_a_changed_workspace_is_seen(ws: Path) -> None:
    path = kitchen(ws)
    pipecache.load(path)
    (ws / "sets/raw.mlpipe-data.json").write_text(RECORD.replace(SHA, "f" * 64))
    assert pipecache.load(path).steps["prepare"].inputs["set"].digest == "sha256:" + "f" * 64  # type: ignore[union-attr]

    shutil.rmtree(ws / "src/prep")
    with pytest.raises(SpecError) as cached:
        pipecache.load(path)
    with pytest.raises(SpecError) as fresh:
        load_pipeline(path)
    assert str(cached.value) == str(fresh.value)
    assert "code directory 'src/prep' does not exist" in str(cached.value)


def test_an_output_path_that_became_a_link_out_is_refused(
    ws: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = kitchen(ws)
    pipecache.load(path)
    (ws / "reports").symlink_to(tmp_path_factory.mktemp("elsewhere"))
    with pytest.raises(SpecError, match="leads outside the workspace"):
        pipecache.load(path)


def test_the_key_names_the_place_and_the_name(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = kitchen(ws)
    pipecache.load(path)
    (ws / "sub").mkdir()
    monkeypatch.chdir(ws / "sub")
    cached = pipecache.load(path)
    same(load_pipeline(path), cached)
    assert str(cached.steps["prepare"].loc).startswith(f"{ws / 'mlpipe.yaml'}:")


# -- errors come from a parse, never from the cache -------------------------------------------------------------
def test_a_pipeline_with_problems_is_never_stored(ws: Path) -> None:
    path = ws / "mlpipe.yaml"
    path.write_text("name: x\nsteps:\n  a:\n    run: echo\n    code: nowhere\n")
    for _ in range(2):
        with pytest.raises(
            SpecError, match=re.escape("mlpipe.yaml:5:11: steps.a.code: code directory 'nowhere'")
        ):
            pipecache.load(path)
    assert list((ws / ".mlpipe").iterdir()) == []


def test_nothing_is_stored_without_a_state_directory(tmp_path: Path) -> None:
    path = kitchen(tmp_path)
    pipecache.load(path)
    assert not (tmp_path / ".mlpipe").exists()
    pipecache.load(path, make_state=True)
    assert entry_of(path).is_file()
    assert (tmp_path / ".mlpipe" / ".gitignore").is_file()


# -- damaged, foreign and hostile entries ---------------------------------------------------------------------
def damaged(good: bytes, raw: bytes) -> Iterator[tuple[str, bytes]]:
    yield "empty", b""
    for cut in (1, len(good) // 3, len(good) // 2, len(good) - 1):
        yield f"cut at {cut}", good[:cut]
    yield "garbage", os.urandom(2000)
    key, checksum, body = unpacked(good)
    assert packed(key, body) == good
    plain = pipecache._unseal(raw, body)
    at = plain.index(b",", plain.index(b'"loc":[')) - 1  # a line number's last digit: valid, but wrong
    flipped = body[:at] + bytes([body[at] ^ 1]) + body[at + 1 :]  # the same bit flips in the plain text
    yield "a flipped bit in the body", packed(key, flipped, checksum)
    not_utf8 = body[:at] + bytes([body[at] ^ plain[at] ^ 0xFF]) + body[at + 1 :]
    yield "not UTF-8 (a matching checksum)", packed(key, not_utf8)
    yield "sealed with another file", packed(key, pipecache._unseal(raw + b"#", plain))
    yield "another version", packed(key.replace(b"mlpipe.pipeline-cache/1", b"mlpipe.pipeline-cache/9"), body)
    yield "no checksum", b'{"key":%s,"sealed":"%s"}' % (key, base64.b64encode(body))
    yield "a key with spaces", packed(json.dumps(json.loads(key), sort_keys=True).encode(), body)
    bad = b"!!" + base64.b64encode(body)
    yield (
        "not base64",
        good.replace(base64.b64encode(body), bad).replace(checksum, hashlib.sha256(bad).hexdigest().encode()),
    )


def warm(ws: Path) -> tuple[Path, Pipeline, Path, bytes]:
    """The kitchen sink, freshly parsed, and its entry (path and content) once stored."""
    path = kitchen(ws)
    fresh = load_pipeline(path)
    pipecache.load(path)
    entry = entry_of(path)
    return path, fresh, entry, entry.read_bytes()


def test_a_damaged_or_foreign_entry_is_a_miss(ws: Path, parses: list[Path]) -> None:
    path, fresh, entry, good = warm(ws)
    for what, content in damaged(good, path.read_bytes()):
        entry.write_bytes(content)
        count = len(parses)
        same(fresh, pipecache.load(path))
        assert len(parses) == count + 1, what
        assert entry.read_bytes() == good, what  # stored again, whole


HOSTILE = {
    "a path out of the workspace": lambda d: d["steps"][0].update(code="../../etc"),
    "an absolute code path": lambda d: d["steps"][0].update(code="/etc"),
    "an unnormalized path": lambda d: d["steps"][0]["outputs"]["report"].update(path="reports/../x"),
    "a step name that is a path": lambda d: d["steps"][0].update(name="../x"),
    "a step stored under another name": lambda d: d["steps"][0]["outputs"]["report"].update(name="other"),
    "a NUL in a command": lambda d: d["steps"][0].update(run="echo \0"),
    "a lone surrogate": lambda d: d["steps"][0].update(run="\ud800"),
    "a string for a number": lambda d: d["steps"][1].update(gpus="2"),
    "a boolean for a number": lambda d: d["steps"][1].update(gpus=True),
    "a negative count": lambda d: d["steps"][1].update(gpus=-1),
    "a huge integer param": lambda d: d["params"][0].__setitem__(1, 2**64),
    "an unknown input kind": lambda d: d["steps"][0]["inputs"]["raw"].update(kind="ftp"),
    "a missing field": lambda d: d["steps"][0].pop("env"),
    "an extra field": lambda d: d["steps"][0].update(extra=1),
    "a list for a mapping": lambda d: d["steps"][0].update(env=[]),
    "a location at line 0": lambda d: d["steps"][0].update(loc=[0, 1]),
    "a bad digest": lambda d: d["steps"][0]["inputs"]["set"].update(digest="sha256:xyz"),
    "a fact read outside the workspace": lambda d: d["facts"].append(["record", ["/dev/zero"], None]),
    "a fact of an unknown kind": lambda d: d["facts"].append(["run", ["/bin/sh"], None]),
    "a step listed twice": lambda d: d["steps"].append(d["steps"][0]),
    "no facts": lambda d: d.pop("facts"),
    "a list at the top": lambda d: d.clear(),
}


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_a_hostile_entry_is_a_miss(what: str, ws: Path, parses: list[Path]) -> None:
    path = kitchen(ws)
    fresh = load_pipeline(path)
    pipecache.load(path)
    rewrite(path, HOSTILE[what])

    same(fresh, pipecache.load(path))
    assert len(parses) == 2


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_the_decoder_refuses_each_hostile_change(what: str, ws: Path) -> None:
    path = kitchen(ws)
    pipecache.load(path)
    data = body_of(path)
    stored.from_json(data, file=path.resolve(), root=ws.resolve(), display="mlpipe.yaml")  # whole, it passes
    HOSTILE[what](data)
    with pytest.raises(BadRecord):
        stored.from_json(data, file=path.resolve(), root=ws.resolve(), display="mlpipe.yaml")


def test_an_entry_that_is_no_regular_file_is_a_miss(ws: Path, parses: list[Path]) -> None:
    path = kitchen(ws)
    fresh = load_pipeline(path)
    pipecache.load(path)
    entry = entry_of(path)
    entry.unlink()
    os.mkfifo(entry)  # a read would wait forever
    same(fresh, pipecache.load(path))
    entry.unlink()
    entry.symlink_to("/dev/zero")  # a read would never end
    same(fresh, pipecache.load(path))
    entry.unlink()
    entry.mkdir()  # and the store cannot replace it: still no crash
    same(fresh, pipecache.load(path))
    same(fresh, pipecache.load(path))
    assert len(parses) == 5


@PROPERTY
@given(st.data())
def test_decoding_any_damage_raises_bad_record_or_builds_a_pipeline(ws: Path, data: st.DataObject) -> None:
    path = kitchen(ws) if not (ws / "mlpipe.yaml").exists() else ws / "mlpipe.yaml"
    pipecache.load(path)
    document = body_of(path)
    junk = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=5,
    )
    for _ in range(data.draw(st.integers(1, 3))):
        node, keys = document, []
        while isinstance(node, dict | list) and node and data.draw(st.booleans()):
            key = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
            keys.append(key)
            node = node[key]
        if keys:
            parent = document
            for key in keys[:-1]:
                parent = parent[key]
            parent[keys[-1]] = data.draw(junk)
    with contextlib.suppress(BadRecord):
        stored.from_json(document, file=path.resolve(), root=ws.resolve(), display="mlpipe.yaml")


# -- concurrency and kills ------------------------------------------------------------------------------------
WORKER = """
import os, sys
from pathlib import Path
from mlpipe.run import pipecache
path, expected, entry = Path(sys.argv[1]), Path(sys.argv[2]).read_text(), Path(sys.argv[3])
for _ in range(25):
    try:
        entry.unlink()
    except FileNotFoundError:
        pass
    got = repr(pipecache.load(path))
    if got != expected:
        sys.exit("wrong pipeline: " + got[:300])
print("ok")
"""


def test_concurrent_writers_and_readers_agree(ws: Path) -> None:
    path = kitchen(ws)
    expected = ws / "expected.txt"
    expected.write_text(repr(load_pipeline(path)))
    pipecache.load(path)
    entry = entry_of(path)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), str(expected), str(entry)],
            cwd=ws,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for worker in workers:
        out, err = worker.communicate(timeout=240)
        assert (worker.returncode, out) == (0, "ok\n"), err
    pipecache.load(path)
    assert pipecache._lookup(entry, *lookup_args(path)) is not None
    assert sorted(p.name for p in entry.parent.iterdir()) == [entry.name]  # no temporary file left


LOOPER = """
import sys
from pathlib import Path
from mlpipe.run import pipecache
path, entry = Path(sys.argv[1]), Path(sys.argv[2])
print("ready", flush=True)
for _ in range(100_000):
    entry.unlink(missing_ok=True)
    pipecache.load(path)
"""


def test_kill_9_of_a_writer_never_leaves_an_entry_that_is_used_half(ws: Path) -> None:
    path, fresh, entry, _ = warm(ws)
    for kill in range(8):
        writer = subprocess.Popen(
            [sys.executable, "-c", LOOPER, str(path), str(entry)], cwd=ws, stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
        time.sleep(0.01 + 0.02 * kill)
        writer.kill()
        writer.wait(timeout=60)
        if entry.exists():  # the old entry or the new one, whole
            assert pipecache._lookup(entry, *lookup_args(path)) is not None
        same(fresh, pipecache.load(path))


def test_a_writer_killed_half_way_leaves_nothing_that_is_used(ws: Path, parses: list[Path]) -> None:
    # A kill -9 between write and rename leaves the temporary file; one before the rename completes leaves
    # the old entry. Neither is read as the entry.
    path, fresh, entry, good = warm(ws)
    entry.unlink()
    half = entry.with_name(f".{entry.name}.12345.deadbeef.tmp")
    half.write_bytes(good[: len(good) // 2])
    same(fresh, pipecache.load(path))
    assert len(parses) == 2
    assert entry.read_bytes() == good
    assert half.exists()  # it might be a writer's at work: only an old one is removed, by the next store
    os.utime(half, (time.time() - 3600,) * 2)
    busy = entry.with_name(f".{entry.name}.12346.cafe.tmp")
    busy.write_bytes(b"")
    entry.unlink()
    pipecache.load(path)
    assert sorted(p.name for p in entry.parent.iterdir()) == sorted([entry.name, busy.name])


def test_validate_makes_no_state_and_a_run_fills_the_cache(project_factory: Any) -> None:
    project = project_factory(
        {"mlpipe.yaml": textwrap.dedent(KITCHEN_MINI), "src/a.txt": "a\n"},
    )
    project.run("validate").assert_success()
    assert not (project.root / ".mlpipe").exists()
    project.run("plan").assert_success()
    assert len(list((project.root / ".mlpipe" / "pipelines").glob("*.json"))) == 1


KITCHEN_MINI = """\
name: mini
steps:
  a:
    code: src
    run: cat a.txt > ${{ outputs.o }}
    outputs: {o: {type: file}}
"""
