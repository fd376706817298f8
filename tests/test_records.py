"""records.py and the from_json methods built on it: every field of a stored record checked, pure."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pytest

from mlpipe import records
from mlpipe.core.results import StepResult
from mlpipe.digest import Entry, Manifest
from mlpipe.records import BadRecord
from mlpipe.treepaths import UnsafeTree

SHA = hashlib.sha256(b"x").hexdigest()
FP = hashlib.sha256(b"fingerprint").hexdigest()
RUN_ID = "20260101T000000000Z-0123456789abcdef"


def entry(**changes: Any) -> dict[str, Any]:
    return {"path": "a", "kind": "file", "x": False, "size": 1, "sha256": SHA, **changes}


def result(**changes: Any) -> dict[str, Any]:
    return {
        "format": "mlpipe.result/1",
        "fingerprint": FP,
        "parts": {"params": {"lr": 0.1}},
        "outputs": {"out": {"type": "dir", "entries": [entry()]}},
        "metrics": {"scores": {"acc": 0.5}},
        "provenance": {"run_id": RUN_ID, "commit": "c" * 40, "dirty": False, "duration_s": 1.5},
        **changes,
    }


def test_a_well_formed_result_round_trips() -> None:
    loaded = StepResult.from_json(result())
    assert loaded.outputs["out"].entries == (
        Entry(path="a", kind="file", executable=False, size=1, sha256=SHA),
    )
    assert StepResult.from_json(json.loads(json.dumps(loaded.to_json()))) == loaded


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"sha256": "../../x"},
            "out.entries[0].sha256: expected 64 lowercase hex characters, found '../../x'",
        ),
        ({"sha256": SHA.upper()}, "sha256: expected 64 lowercase hex"),
        ({"sha256": SHA[:63]}, "sha256: expected 64 lowercase hex"),
        ({"sha256": None}, "sha256: expected 64 lowercase hex characters, found None"),
        ({"kind": "fifo"}, "kind: expected one of file, link, found 'fifo'"),
        ({"x": 1}, "x: expected true or false, found 1"),
        ({"x": "false"}, "x: expected true or false"),
        ({"size": -1}, "size: expected a whole number from 0 to 9223372036854775807, found -1"),
        ({"size": 2**63}, "size: expected a whole number"),
        ({"size": 1.0}, "size: expected a whole number"),
        ({"size": True}, "size: expected a whole number"),
        ({"kind": "link", "size": 4096}, "size: expected a whole number from 0 to 4095"),
        ({"path": 7}, "path: expected a string, found a number"),
        ({"path": "../x"}, "'../x' is not a plain relative path"),
        ({"path": "/etc/x"}, "is not a plain relative path"),
        ({"path": "a\nb"}, "holds a control character"),
        ({"path": "a\x1b[2J"}, "holds a control character"),
        ({"path": "bad\udcff"}, "is not valid UTF-8"),
        ({"path": ""}, "an empty path"),
    ],
)
def test_a_bad_entry_field_is_named(changes: dict[str, Any], message: str) -> None:
    data = {"type": "dir", "entries": [entry(**changes)]}
    with pytest.raises(BadRecord) as info:
        Manifest.from_json(data, "out")
    assert message in str(info.value)


def test_an_entry_without_a_field_says_which() -> None:
    data = entry()
    del data["x"]
    with pytest.raises(BadRecord, match=r"^e: no 'x'$"):
        Entry.from_json(data, "e")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "socket", "entries": []}, "m.type: expected one of file, dir, found 'socket'"),
        ({"type": "dir", "entries": {}}, "m.entries: expected a list, found an object"),
        ({"type": "file", "entries": [entry(path=""), entry(path="")]}, "exactly one entry"),
        ({"type": "file", "entries": [entry()]}, "exactly one entry"),
        ({"type": "file", "entries": [entry(path="", kind="link")]}, "a regular file with path ''"),
        ({"type": "dir", "entries": [entry(), entry()]}, "m: 'a' is listed twice"),
        ({"type": "dir", "entries": [entry(), entry(path="a/b")]}, "'a/b' lies under 'a', which is a file"),
        (
            {"type": "dir", "entries": [entry(kind="link"), entry(path="a/b")]},
            "lies under 'a', which is a link",
        ),
        ([], "m: expected an object, found a list"),
    ],
)
def test_manifest_shapes(data: Any, message: str) -> None:
    with pytest.raises(BadRecord) as info:
        Manifest.from_json(data, "m")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "mlpipe.result/0"}, "result.format: expected 'mlpipe.result/1'"),
        ({"fingerprint": "../../x"}, "result.fingerprint: expected 64 lowercase hex"),
        ({"parts": []}, "result.parts: expected an object, found a list"),
        ({"parts": {"p": json.loads("[" * 40 + "]" * 40)}}, "deeper than 32"),
        ({"parts": {"p": float("nan")}}, "not a finite number"),
        ({"outputs": {"../x": {"type": "dir", "entries": []}}}, "result.outputs: expected an output name"),
        ({"outputs": []}, "result.outputs: expected an object"),
        (
            {"metrics": {"scores": {"acc": float("nan")}}},
            "result.metrics.scores.acc: expected a finite number",
        ),
        ({"metrics": {"scores": {"acc": float("inf")}}}, "expected a finite number"),
        ({"metrics": {"scores": {"acc": True}}}, "expected a finite number, found True"),
        ({"metrics": {"scores": {"acc": {"deep": 1}}}}, "expected a finite number, found an object"),
        ({"metrics": {"scores": {"m" * 201: 1}}}, "(a metric name): expected a printable string of 1 to 200"),
        ({"metrics": {"scores": {"a\nb": 1}}}, "(a metric name): expected a printable string"),
        ({"metrics": {"x" * 201: {}}}, "(an output name): expected a printable string"),
        ({"metrics": []}, "result.metrics: expected an object"),
    ],
)
def test_a_bad_result_field_is_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRecord) as info:
        StepResult.from_json(result(**changes))
    assert message in str(info.value)


def test_parts_are_bounded_in_size() -> None:
    with pytest.raises(BadRecord, match="more than 100000 values"):
        records.parts({"p": list(range(records.MAX_PARTS_VALUES))}, "parts")


@pytest.mark.parametrize(
    "provenance",
    [
        {"run_id": RUN_ID + "\n::error::x"},
        {"run_id": "../../x"},
        {"commit": "HEAD"},
        {"commit": "c" * 39},
        {"step": "a\x1b[2J"},
        {"step": "s" * 1001},
        {"dirty": "yes"},
        {"duration_s": float("nan")},
        {"duration_s": -1},
        {"created_at": 5},
        {"unknown": "kept?"},
    ],
)
def test_odd_provenance_fields_are_dropped_not_fatal(provenance: dict[str, Any]) -> None:
    loaded = StepResult.from_json(result(provenance={"pipeline": "demo", **provenance}))
    assert loaded.provenance == {"pipeline": "demo"}


def test_well_formed_provenance_is_kept() -> None:
    provenance = {
        "run_id": RUN_ID,
        "pipeline": "demo",
        "step": "train[lr=0.1,C=1]",
        "commit": None,
        "ref": "refs/heads/main",
        "dirty": True,
        "created_at": "2026-01-01T00:00:00.000Z",
        "duration_s": 0,
    }
    assert StepResult.from_json(result(provenance=provenance)).provenance == provenance
    assert StepResult.from_json(result(provenance="x")).provenance == {}


def test_trust_keeps_only_its_fields_of_the_right_type() -> None:
    assert records.trust({"protected": "true", "event": "push", "ref": 5, "scope": "a\nb", "x": 1}) == {
        "event": "push"
    }
    assert records.trust({"protected": True}) == {"protected": True}
    assert records.trust([]) == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "config: nested too deeply"),
        (b'{"a": "\xff"}', "config: not JSON"),
        (b"{nope", "config: not JSON"),
        (b"[]", "config: expected a JSON object, found a list"),
        (b"1" * 5000, "config: not JSON"),  # more digits than int() converts
    ],
)
def test_untrusted_json(data: bytes, message: str) -> None:
    with pytest.raises(BadRecord) as info:
        records.load_json(data, "config")
    assert message in str(info.value)


def manifest(**changes: Any) -> bytes:
    data = {
        "artifactType": "a/b",
        "config": {"mediaType": "a/c", "digest": "sha256:" + SHA, "size": 10},
        "layers": [{"mediaType": "a/t", "digest": "sha256:" + SHA, "size": 3}],
        **changes,
    }
    return json.dumps(data).encode()


def test_oci_manifest_descriptors() -> None:
    parsed = records.oci_manifest(manifest())
    assert parsed == records.OciManifest(
        "a/b",
        records.Descriptor("a/c", "sha256:" + SHA, 10),
        (records.Descriptor("a/t", "sha256:" + SHA, 3),),
    )


@pytest.mark.parametrize(
    ("descriptor", "message"),
    [
        ({"digest": "sha256:../../x"}, "manifest.config.digest: expected sha256: and 64 lowercase hex"),
        ({"digest": "sha512:" + SHA}, "manifest.config.digest"),
        ({"size": -1}, "manifest.config.size: expected a whole number"),
        ({"size": "10"}, "manifest.config.size: expected a whole number"),
        ({"size": 2**63}, "manifest.config.size"),
        ({"mediaType": "a/b\nc"}, "manifest.config.mediaType: expected a media type"),
        ({"mediaType": 5}, "manifest.config.mediaType"),
    ],
)
def test_bad_descriptors(descriptor: dict[str, Any], message: str) -> None:
    config = {"mediaType": "a/c", "digest": "sha256:" + SHA, "size": 10, **descriptor}
    with pytest.raises(BadRecord) as info:
        records.oci_manifest(manifest(config=config))
    assert message in str(info.value)


def test_layer_index() -> None:
    layer = "sha256:" + SHA
    assert records.layer_index([{"digest": layer, "objects": [SHA, SHA + ".x"]}], "i") == [
        (layer, [SHA, SHA + ".x"])
    ]
    with pytest.raises(BadRecord, match=r"i\[0\].objects\[0\]: expected an object name, found '../../x'"):
        records.layer_index([{"digest": layer, "objects": ["../../x"]}], "i")
    with pytest.raises(BadRecord, match=r"i\[1\]: layer sha256:2d711642b726 is listed twice"):
        records.layer_index([{"digest": layer, "objects": []}] * 2, "i")
    with pytest.raises(BadRecord, match=r"i\[0\].digest"):
        records.layer_index([{"digest": SHA, "objects": []}], "i")


@dataclass
class E:
    path: str
    kind: str = "file"


@pytest.mark.parametrize(
    "targets",
    [
        {"esc": "sub/up/..", "sub/up": ".."},  # each link stays inside on its own; the chain does not
        {"l1": "l2", "l2": "l1"},
        {"l": "/etc/passwd"},
        {"l": "../x"},
    ],
)
def test_links_are_followed_as_the_kernel_would(targets: dict[str, str]) -> None:
    entries = [E("sub/f"), *(E(p, "link") for p in targets)]
    with pytest.raises(UnsafeTree):
        records.check_links(entries, lambda e: targets[e.path])


def test_links_inside_the_tree_pass() -> None:
    targets = {"l": "sub/f", "sub/back": "../l", "d": "sub"}
    records.check_links([E("sub/f"), *(E(p, "link") for p in targets)], lambda e: targets[e.path])


def test_a_link_objects_content_must_be_a_target() -> None:
    assert records.link_target(b"sub/f", "l") == "sub/f"
    with pytest.raises(UnsafeTree, match="not valid UTF-8"):
        records.link_target(b"\xff", "l")
    with pytest.raises(UnsafeTree, match="longer than 4095"):
        records.link_target(b"a" * 4096, "l")
