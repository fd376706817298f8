"""jsonstream.Scanner reads what json.loads reads, whatever the size of each read, and words errors as it does;
StepResult.read gives what StepResult.from_json gives of the same record."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from mlpipe.core.results import StepResult
from mlpipe.digest import Entry, Manifest
from mlpipe.jsonstream import Scanner
from mlpipe.records import BadRecord, load_json


def trickle(data: bytes, step: int) -> Callable[[int], bytes]:
    """A read that gives at most `step` bytes each call, so values and characters cross every boundary."""
    stream = io.BytesIO(data)
    return lambda n: stream.read(min(n, step))


def walked(scanner: Scanner, where: str = "doc") -> Any:
    """A value read as a caller walks it: objects and arrays member by member, scalars whole."""
    first = scanner.peek()
    if first == "{":
        return {key: walked(scanner, f"{where}.{key}") for key in scanner.members(where)}
    if first == "[":
        out = []
        for _ in scanner.items(where, lambda v, w: v):
            out.append(walked(scanner, where))
        return out
    return scanner.value()


DOCS = [
    '{"a": 1, "b": [1, 2.5e3, -0, true, false, null], "c": {"d": "é\\u00e9\\n", "e": {}}, "f": []}',
    '  {\n "big": 12345678901234567890123 ,\n\t"s": "a\\"b\\\\c", "nan": NaN, "inf": -Infinity }\n ',
    '{"k": 1, "k": 2}',
    "{}",
    '{"deep": [[[[{"x": [1, [2, [3]]]}]]]]}',
]


@pytest.mark.parametrize("doc", DOCS)
@pytest.mark.parametrize("step", [1, 2, 3, 7, 1 << 20])
def test_a_walked_record_is_what_json_loads_reads(doc: str, step: int) -> None:
    scanner = Scanner(trickle(doc.encode(), step), "doc")
    got = walked(scanner)
    scanner.end()
    assert json.dumps(got, sort_keys=True) == json.dumps(json.loads(doc), sort_keys=True)


@pytest.mark.parametrize(
    "doc",
    [
        b"{nope",
        b'{"a" 1}',
        b'{"a": 1 "b": 2}',
        b'{"a": [1 2]}',
        b'{"a": tru}',
        b'{"a": "unterminated}',
        b'{\n"a": 1,\n  "b": x}',
        b'{"a": 1} {"b": 2}',
        b"",
    ],
)
@pytest.mark.parametrize("step", [1, 1 << 20])
def test_a_syntax_error_is_worded_as_json_words_it(doc: bytes, step: int) -> None:
    with pytest.raises(BadRecord) as expected:
        load_json(doc, "doc")
    with pytest.raises(BadRecord) as got:
        scanner = Scanner(trickle(doc, step), "doc")
        walked(scanner)
        scanner.end()
    assert str(got.value) == str(expected.value)


def test_not_utf8_a_non_object_and_too_deep_are_bad_records() -> None:
    for doc, message in [
        (b'{"a": "\xff"}', "doc: not JSON"),
        (b"[1]", "doc: expected a JSON object, found a list"),
        (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "doc: nested too deeply"),
        (b'{"a": ' + b"1" * 5000 + b"}", "doc: not JSON"),
    ]:
        with pytest.raises(BadRecord, match=message):
            scanner = Scanner(io.BytesIO(doc).read, "doc")
            for _ in scanner.members("doc"):
                scanner.value()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record(entries: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    return {
        "format": "mlpipe.result/1",
        "fingerprint": "f" * 64,
        "parts": {"command": "python train.py", "params": {"lr": 0.1}},
        "outputs": {"model": {"type": "dir", "entries": entries}, "metrics": _file_output()},
        "metrics": {"metrics": {"acc": 0.9}},
        "provenance": {"step": "train", "dirty": False},
        **changes,
    }


def _file_output() -> dict[str, Any]:
    return {
        "type": "file",
        "entries": [{"path": "", "kind": "file", "x": False, "size": 2, "sha256": sha(b"{}")}],
    }


ENTRIES = [
    {"path": f"d{i // 50}/é {i}", "kind": "file", "x": i % 3 == 0, "size": i, "sha256": sha(str(i).encode())}
    for i in range(3000)
] + [{"path": "link", "kind": "link", "x": False, "size": 2, "sha256": sha(b"d0")}]


@pytest.mark.parametrize("step", [5, 1 << 20])
def test_a_result_read_as_a_stream_is_the_result_from_json(step: int) -> None:
    data = record(ENTRIES)
    scanner = Scanner(trickle(json.dumps(data, sort_keys=True).encode(), step), "result")
    streamed = StepResult.read(scanner)
    scanner.end()
    assert streamed == StepResult.from_json(data)
    assert streamed.outputs["model"].digest == StepResult.from_json(data).outputs["model"].digest
    assert list(streamed.outputs["model"].entries)[5] == Entry.from_json(ENTRIES[5])


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (record(ENTRIES[:2] + ENTRIES[1:2]), "result.outputs.model: 'd0/é 1' is listed twice"),
        (
            record([*ENTRIES[:2], {**ENTRIES[0], "path": "d0/é 0/under"}]),
            "result.outputs.model: 'd0/é 0/under' lies under 'd0/é 0', which is a file",
        ),
        (
            record([{**ENTRIES[0], "path": "../up"}]),
            "result.outputs.model: '../up' is not a plain relative path",
        ),
        (record([{**ENTRIES[0], "sha256": "X" * 64}]), r"model\.entries\[0\]\.sha256: expected 64"),
        (record(ENTRIES, format="mlpipe.result/2"), "result.format: expected 'mlpipe.result/1'"),
        (record(ENTRIES, fingerprint="f"), "result.fingerprint: expected 64 lowercase hex characters"),
        ({**record(ENTRIES), "outputs": {"m": {"type": "dir"}}}, "result.outputs.m: no 'entries'"),
        ({**record(ENTRIES), "outputs": {"m": {"entries": []}}}, "result.outputs.m: no 'type'"),
        ({**record(ENTRIES), "outputs": {"m": {"type": "file", "entries": []}}}, "a file output must have"),
        ({**record(ENTRIES), "outputs": {"m": {"type": "dir", "entries": {}}}}, "m.entries: expected a list"),
    ],
)
def test_a_stored_result_is_checked_whole_as_a_stream(data: dict[str, Any], error: str) -> None:
    with pytest.raises(BadRecord, match=error):
        StepResult.from_json(data)
    with pytest.raises(BadRecord, match=error):
        StepResult.read(Scanner(io.BytesIO(json.dumps(data, sort_keys=True).encode()).read, "result"))


def test_packed_entries_read_back_as_they_were_given() -> None:
    entries = [Entry.from_json(e) for e in ENTRIES]
    manifest = Manifest(type="dir", entries=entries)
    assert list(manifest.entries) == entries
    assert manifest.entries[-1] == entries[-1] and manifest.entries[10:12] == entries[10:12]
    assert manifest.entries == tuple(entries) and manifest == Manifest(type="dir", entries=tuple(entries))
    assert manifest.size == sum(e.size for e in entries)
    assert manifest.digest == Manifest.from_json(manifest.to_json()).digest
    with pytest.raises(ValueError, match="not a sha256"):
        Manifest(type="file", entries=(entries[0]._replace(sha256="A" * 64),))
