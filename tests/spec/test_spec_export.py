"""`mlpipe export`: canonical JSON of the resolved pipeline, which loads back to the same pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_spec_load import FULL, FULL_FILES, write

from mlpipe.cli.main import cli
from mlpipe.errors import SpecError
from mlpipe.spec.export import export_json, export_pipeline
from mlpipe.spec.load import load_pipeline


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def problems(root: Path, text: str, name: str) -> list[str]:
    path = root / name
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_pipeline(path)
    return [str(problem) for problem in info.value.problems]


def test_export_spells_out_every_default_and_resolves_params(ws: Path) -> None:
    pipeline = load_pipeline(write(ws, FULL, FULL_FILES), overrides={"C": "0.5"})

    data = export_pipeline(pipeline)

    assert data["format"] == "mlpipe.pipeline/1"
    assert data["params"] == {"C": 0.5, "epochs": 3, "fast": False, "tag": "v1"}
    assert data["steps"]["prepare"] == {
        "code": "src/prep",
        "run": "python prep.py --raw ${{ inputs.raw }} --out ${{ outputs.data }}",
        "inputs": {"raw": "data/raw.csv"},
        "outputs": {
            "data": {"kind": "data", "type": "dir"},
            "report": {"kind": "data", "type": "file", "path": "reports/prep.txt"},
        },
        "env": {},
        "reuse": True,
        "needs": [],
        "resources": {"gpus": 0},
        "runs-on": [],
        "fan-out": False,
        "env-passthrough": [],
        "environment": {"files": ["uv.lock"], "python": False, "packages": False},
    }
    assert data["steps"]["train"]["inputs"] == {"data": "${{ steps.prepare.outputs.data }}"}
    assert data["steps"]["train"]["env"] == {
        "EPOCHS": "${{ params.epochs }}",
        "SEED": "7",
        "RATE": "0.50",
        "DEBUG": "true",
        "EMPTY": "",
    }
    assert (data["steps"]["train"]["image"], data["steps"]["train"]["timeout-minutes"]) == (
        "python:3.12",
        30.0,
    )


def test_the_export_loads_back_to_the_same_pipeline(ws: Path) -> None:
    pipeline = load_pipeline(write(ws, FULL, FULL_FILES), overrides={"C": "1e-9", "tag": "a\tb\u00e9"})
    text = export_json(pipeline)
    (ws / "exported.json").write_text(text)

    again = load_pipeline(ws / "exported.json")

    assert export_json(again) == text
    assert {n: p.value for n, p in again.params.items()} == {n: p.value for n, p in pipeline.params.items()}
    for name, step in pipeline.steps.items():
        other = again.steps[name]
        assert (other.run, other.env, other.inputs.keys(), other.outputs.keys()) == (
            step.run,
            step.env,
            step.inputs.keys(),
            step.outputs.keys(),
        )


def test_export_is_canonical_json(ws: Path) -> None:
    text = export_json(load_pipeline(write(ws, FULL, FULL_FILES)))

    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_cli_export(ws: Path) -> None:
    write(ws, "name: x\nparams: {n: 1}\nsteps:\n  a: {run: 'echo ${{ params.n }}'}\n")

    result = CliRunner().invoke(cli, ["export", "-p", "n=2"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "format": "mlpipe.pipeline/1",
        "name": "x",
        "params": {"n": 2},
        "steps": {
            "a": {
                "code": ".",
                "run": "echo ${{ params.n }}",
                "inputs": {},
                "outputs": {},
                "env": {},
                "reuse": True,
                "needs": [],
                "resources": {"gpus": 0},
                "runs-on": [],
                "fan-out": False,
                "env-passthrough": [],
                "environment": {"files": [], "python": False, "packages": False},
            }
        },
    }


def test_json_files_get_json_errors_at_their_line_and_column(ws: Path) -> None:
    text = '{\n\t"name": "x",\n\t"steps": {"a": {"run": "true",}}\n}\n'
    assert problems(ws, text, "p.json") == [
        (
            "p.json:3:32: invalid JSON: Expecting property name enclosed in double quotes; "
            'near \'"steps": {"a": {"run": "true",}}\''
        )
    ]


def test_json_files_get_spec_errors_at_their_line_and_column(ws: Path) -> None:
    text = '{\n\t"name": "x",\n\t"steps": {\n\t\t"a": {"run": "true", "ouputs": {}, "reuse": 1}\n\t}\n}\n'
    assert problems(ws, text, "p.json") == [
        "p.json:4:24: steps.a.ouputs: unknown key 'ouputs'; did you mean 'outputs'?",
        "p.json:4:47: steps.a.reuse: expected true or false, found the integer 1",
    ]


def test_an_empty_json_file_is_empty(ws: Path) -> None:
    assert problems(ws, "", "p.json") == [
        "p.json:1:1: the file is empty; a pipeline needs 'name' and 'steps'"
    ]
