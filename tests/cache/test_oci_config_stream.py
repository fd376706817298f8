"""A result's OCI config is made and read without a dict per file (issue 18): the same bytes as canonical_json of
the whole record, and the same checked result as StepResult.from_json of it."""

from __future__ import annotations

import hashlib

import pytest

from mlpipe.cache.oci import CONFIG_FORMAT, Refused, _config, _read_config
from mlpipe.core.results import StepResult
from mlpipe.digest import Entry, Manifest, canonical_json


def result() -> StepResult:
    entries = [
        Entry(path=f'd{i // 7}/é {i}"q', kind="file", executable=i % 2 == 0, size=i, sha256=f"{i:064x}")
        for i in range(2000)
    ]
    return StepResult(
        fingerprint=hashlib.sha256(b"fp").hexdigest(),
        parts={"command": "python train.py", "params": {"lr": 0.1, "名": [1, 2]}},
        outputs={
            "model": Manifest(type="dir", entries=entries),
            "metrics": Manifest(
                type="file", entries=(Entry(path="", kind="file", executable=False, size=2, sha256="c" * 64),)
            ),
        },
        metrics={"metrics": {"acc": 0.5}},
        provenance={"step": "train", "dirty": False},
    )


def test_a_config_is_the_canonical_json_of_the_record() -> None:
    r, trust, titles = (
        result(),
        {"event": "push", "protected": True},
        {"model": "out/model", "metrics": "m.json"},
    )
    whole = canonical_json({"format": CONFIG_FORMAT, "result": r.to_json(), "trust": trust, "titles": titles})
    assert _config(r, trust, titles) == whole


def test_a_config_read_as_a_stream_gives_the_checked_result() -> None:
    r = result()
    fields, read = _read_config(_config(r, {"event": "push"}, {"model": "model", "metrics": "metrics"}))
    assert read == StepResult.from_json(r.to_json())
    assert fields == {
        "format": CONFIG_FORMAT,
        "titles": {"model": "model", "metrics": "metrics"},
        "trust": {"event": "push"},
    }


def test_a_config_of_another_format_is_refused_before_its_result_is_read() -> None:
    data = canonical_json({"format": "mlpipe.oci-result/9", "result": {"outputs": "not a manifest"}})
    with pytest.raises(Refused, match=r"unknown result format 'mlpipe\.oci-result/9'"):
        _read_config(data)
