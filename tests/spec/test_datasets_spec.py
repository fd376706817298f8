"""Inputs whose data is not in the repository, as the loader and the schema read them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from test_schema import loader_problems, schema_errors

from mlpipe.spec.export import export_json
from mlpipe.spec.load import load_pipeline
from mlpipe.spec.model import DataInput, ExternalInput, Location, OciInput, UrlInput

SHA = "ab" * 32
STEP = "name: x\nsteps:\n  a:\n    run: 'true'\n    inputs:\n"


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def pipeline(ws: Path, inputs: str, files: dict[str, str] | None = None):
    text = STEP + textwrap.indent(textwrap.dedent(inputs).lstrip("\n"), "      ")
    assert loader_problems(ws, text, files) == []
    assert schema_errors(text) == []
    return load_pipeline(ws / "mlpipe.yaml")


def problems(ws: Path, inputs: str, files: dict[str, str] | None = None, *, schema: bool = True) -> list[str]:
    text = STEP + textwrap.indent(textwrap.dedent(inputs).lstrip("\n"), "      ")
    found = [str(p) for p in loader_problems(ws, text, files)]
    assert found, "the loader accepts it"
    if schema:
        assert schema_errors(text), "the schema accepts what the loader rejects"
    return found


def test_url_input(ws: Path) -> None:
    p = pipeline(ws, f"raw: {{url: 'https://example.org/d/raw.csv', sha256: 'sha256:{SHA.upper()}'}}\n")

    assert p.steps["a"].inputs["raw"] == UrlInput(
        name="raw",
        url="https://example.org/d/raw.csv",
        sha256=SHA,
        loc=Location(file="mlpipe.yaml", line=6, col=7),
    )


def test_plain_http_is_for_loopback_only(ws: Path) -> None:
    pipeline(ws, f"raw: {{url: 'http://127.0.0.1:8000/raw.csv', sha256: {SHA}}}\n")

    assert problems(ws, f"raw: {{url: 'http://example.org/raw.csv', sha256: {SHA}}}\n") == [
        (
            "mlpipe.yaml:6:18: steps.a.inputs.raw.url: plain http is only for loopback hosts, found 'example.org'; "
            "use https://"
        )
    ]
    assert problems(ws, f"raw: {{url: 'ftp://example.org/raw.csv', sha256: {SHA}}}\n") == [
        (
            "mlpipe.yaml:6:18: steps.a.inputs.raw.url: expected an https:// URL, found the string 'ftp://example.org/raw.csv'; "
            "give the full URL, e.g. https://host/path/file.csv"
        )
    ]


def test_a_url_needs_a_valid_sha256(ws: Path) -> None:
    assert problems(ws, "raw: {url: 'https://example.org/raw.csv'}\n") == [
        "mlpipe.yaml:6:12: steps.a.inputs.raw: missing required key 'sha256'"
    ]
    assert problems(ws, "raw: {url: 'https://example.org/raw.csv', sha256: abc}\n") == [
        (
            "mlpipe.yaml:6:57: steps.a.inputs.raw.sha256: expected 64 hex digits (the file's sha256), found the string 'abc'; "
            "run `sha256sum FILE` to get it"
        )
    ]
    assert problems(ws, f"raw: {{url: 'https://example.org/x', sha265: {SHA}}}\n") == [
        "mlpipe.yaml:6:12: steps.a.inputs.raw: missing required key 'sha256'",
        "mlpipe.yaml:6:43: steps.a.inputs.raw.sha265: unknown key 'sha265'; did you mean 'sha256'?",
    ]


def test_external_input(ws: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    p = pipeline(ws, f"raw: {{path: '{outside}/', external: true}}\n")

    assert p.steps["a"].inputs["raw"] == ExternalInput(
        name="raw", path=str(outside), loc=Location(file="mlpipe.yaml", line=6, col=7)
    )


def test_external_input_problems(ws: Path) -> None:
    assert problems(ws, "raw: {path: /nowhere/raw, external: true}\n", schema=False) == [
        (
            "mlpipe.yaml:6:19: steps.a.inputs.raw.path: external path '/nowhere/raw' does not exist; "
            "check the path on this machine"
        )
    ]
    assert problems(ws, "raw: {path: data, external: true}\n") == [
        (
            "mlpipe.yaml:6:19: steps.a.inputs.raw.path: external path 'data' is not absolute; "
            "give an absolute path on the runner, or a workspace path as a plain string"
        )
    ]
    assert problems(ws, "raw: {path: /tmp, external: false}\n") == [
        (
            "mlpipe.yaml:6:35: steps.a.inputs.raw.external: external: false is not an input form; "
            "write a workspace path as a plain string, or set external: true for a path on the runner"
        )
    ]
    assert problems(ws, "raw: {path: /tmp}\n") == [
        "mlpipe.yaml:6:12: steps.a.inputs.raw: missing required key 'external'"
    ]


def data_file(digest: str = "sha256:" + SHA) -> str:
    return json.dumps(
        {"format": "mlpipe.data/1", "path": "raw", "digest": digest, "type": "dir", "size": 1, "files": 1}
    )


def test_data_file_input(ws: Path) -> None:
    p = pipeline(ws, "raw: data/raw.mlpipe-data.json\n", {"data/raw.mlpipe-data.json": data_file()})

    assert p.steps["a"].inputs["raw"] == DataInput(
        name="raw",
        file="data/raw.mlpipe-data.json",
        path="data/raw",
        digest="sha256:" + SHA,
        loc=Location(file="mlpipe.yaml", line=6, col=7),
    )


def test_data_file_problems(ws: Path) -> None:
    assert problems(ws, "raw: data/raw.mlpipe-data.json\n", schema=False) == [
        (
            "mlpipe.yaml:6:12: steps.a.inputs.raw: data file 'data/raw.mlpipe-data.json' does not exist; "
            "run `mlpipe data add data/raw` to record it"
        )
    ]
    files = {"data/raw.mlpipe-data.json": '{"format": "mlpipe.data/9"}'}
    assert problems(ws, "raw: data/raw.mlpipe-data.json\n", files, schema=False) == [
        (
            "mlpipe.yaml:6:12: steps.a.inputs.raw: data file 'data/raw.mlpipe-data.json' is not valid: "
            "expected format 'mlpipe.data/1', found 'mlpipe.data/9'; run `mlpipe data add data/raw` again"
        )
    ]


def test_export_round_trips_every_input_form(ws: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    inputs = f"""
    u: {{url: 'https://example.org/raw.csv', sha256: {SHA}}}
    e: {{path: '{outside}', external: true}}
    d: data/raw.mlpipe-data.json
    o: oci://127.0.0.1:5000/t/model@sha256:{SHA}
    """
    p = pipeline(ws, inputs, {"data/raw.mlpipe-data.json": data_file()})
    (ws / "exported.json").write_text(export_json(p))

    again = load_pipeline(ws / "exported.json")

    assert export_json(again) == export_json(p)
    assert {n: type(i) for n, i in again.steps["a"].inputs.items()} == {
        "u": UrlInput,
        "e": ExternalInput,
        "d": DataInput,
        "o": OciInput,
    }


def test_a_wrong_input_is_reported_once_not_again_where_it_is_used(ws: Path) -> None:
    text = "name: x\nsteps:\n  a:\n    run: cat ${{ inputs.raw }}\n    inputs:\n      raw: {url: 'https://x.org/a'}\n"

    assert [str(p) for p in loader_problems(ws, text)] == [
        "mlpipe.yaml:6:12: steps.a.inputs.raw: missing required key 'sha256'"
    ]
