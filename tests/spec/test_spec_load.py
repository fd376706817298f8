"""Loading `mlpipe.yaml`: the model it builds, and every problem reported whole, at its line:col."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlpipe.cli.main import cli, main
from mlpipe.errors import SpecError, UsageError
from mlpipe.spec.load import load_pipeline
from mlpipe.spec.model import Location, Output, RepoInput, StepInput
from mlpipe.spec.params import convert, parse_overrides


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace: a directory marked as a git work tree, and the current directory."""
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(root: Path, text: str, files: Mapping[str, str] = {}, name: str = "mlpipe.yaml") -> Path:
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problems(root: Path, text: str, files: Mapping[str, str] = {}, **overrides: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_pipeline(write(root, text, files), overrides=overrides)
    return [str(problem) for problem in info.value.problems]


FULL = """
name: demo
params:
  C: 1.0
  epochs: 3
  fast: false
  tag: v1
steps:
  prepare:
    code: src/./prep/
    run: python prep.py --raw ${{ inputs.raw }} --out ${{ outputs.data }}
    inputs:
      raw: data//raw.csv
    outputs:
      data:
      report: {type: file, path: reports/prep.txt}
    environment: [uv.lock]
  train:
    run: python train.py ${{ inputs.data }} -C ${{ params.C }} --model ${{ outputs.model }}
    inputs:
      data: ${{ steps.prepare.outputs.data }}
    outputs:
      model: {path: models/}
      scores: {kind: metrics}
    env:
      EPOCHS: ${{ params.epochs }}
      SEED: 7
      RATE: 0.50
      DEBUG: yes
      EMPTY:
    reuse: false
    needs: prepare
    image: python:3.12
    resources: {gpus: 2}
    runs-on: gpu
    timeout-minutes: 30
  report:
    run: echo ${{ steps.train.outputs.scores }}
    needs: [prepare, train]
    runs-on: [self-hosted, linux]
"""
FULL_FILES = {"src/prep/prep.py": "", "data/raw.csv": "x\n", "uv.lock": ""}


def test_full_pipeline_builds_the_model(ws: Path) -> None:
    path = write(ws, FULL, FULL_FILES)

    pipeline = load_pipeline(path, overrides={"C": "1e-3", "epochs": "5", "fast": "YES", "tag": "v2"})

    assert pipeline.name == "demo"
    assert pipeline.file == path.resolve()
    assert pipeline.root == ws.resolve()
    assert {n: (p.default, p.value) for n, p in pipeline.params.items()} == {
        "C": (1.0, 0.001),
        "epochs": (3, 5),
        "fast": (False, True),
        "tag": ("v1", "v2"),
    }
    assert pipeline.params["C"].loc == Location(file="mlpipe.yaml", line=3, col=3)
    assert list(pipeline.steps) == ["prepare", "train", "report"]
    prepare, train, report = pipeline.steps.values()
    assert prepare.code == "src/prep"
    assert prepare.inputs == {
        "raw": RepoInput(name="raw", path="data/raw.csv", loc=Location(file="mlpipe.yaml", line=12, col=7))
    }
    assert prepare.outputs["data"] == Output(
        name="data", type="dir", loc=Location(file="mlpipe.yaml", line=14, col=7)
    )
    assert prepare.outputs["report"].type == "file"
    assert prepare.outputs["report"].path == "reports/prep.txt"
    assert prepare.environment == ("uv.lock",)
    assert prepare.reuse is True
    assert (prepare.needs, prepare.image, prepare.gpus, prepare.runs_on, prepare.timeout_minutes) == (
        (), None, 0, (), None,
    )  # fmt: skip
    assert prepare.loc == Location(file="mlpipe.yaml", line=8, col=3)

    assert train.code == "."
    assert train.run == "python train.py ${{ inputs.data }} -C ${{ params.C }} --model ${{ outputs.model }}"
    assert train.inputs["data"] == StepInput(
        name="data", step="prepare", output="data", loc=Location(file="mlpipe.yaml", line=20, col=7)
    )
    assert train.outputs["model"].path == "models"
    assert (train.outputs["scores"].kind, train.outputs["scores"].type) == ("metrics", "file")
    assert train.env == {
        "EPOCHS": "${{ params.epochs }}",
        "SEED": "7",
        "RATE": "0.50",
        "DEBUG": "true",
        "EMPTY": "",
    }
    assert train.reuse is False
    assert train.needs == ("prepare",)
    assert (train.image, train.gpus, train.runs_on, train.timeout_minutes) == (
        "python:3.12",
        2,
        ("gpu",),
        30.0,
    )
    assert train.upstream() == ("prepare",)

    assert report.needs == ("prepare", "train")
    assert report.runs_on == ("self-hosted", "linux")
    assert report.upstream() == ("train", "prepare")


def test_root_is_the_pipeline_files_directory(ws: Path) -> None:
    path = write(
        ws,
        "name: x\nsteps:\n  a:\n    code: src\n    run: 'true'\n",
        {"sub/src/x.py": ""},
        name="sub/mlpipe.yaml",
    )

    pipeline = load_pipeline(path)

    assert pipeline.root == (ws / "sub").resolve()
    assert pipeline.steps["a"].code == "src"
    assert pipeline.steps["a"].loc.file == "sub/mlpipe.yaml"


def test_explicit_root_and_file_outside_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(tmp_path / "ws", "name: x\nsteps:\n  a:\n    run: 'true'\n    inputs: {d: d.csv}\n")

    with pytest.raises(SpecError) as info:
        load_pipeline(path, root=tmp_path)

    assert str(info.value) == (
        f"{path}:5:17: steps.a.inputs.d: input path 'd.csv' does not exist; "
        f"paths are relative to the workspace root {tmp_path.resolve()}"
    )


def test_unknown_keys_suggest_the_close_one_or_list_them(ws: Path) -> None:
    text = """
    name: x
    stepz: {}
    steps:
      a:
        run: 'true'
        ouputs: {}
        colour: red
        outputs:
          o: {knd: metrics}
        resources: {gpu: 1}
    """
    assert problems(ws, text) == [
        "mlpipe.yaml:2:1: stepz: unknown key 'stepz'; did you mean 'steps'?",
        "mlpipe.yaml:6:5: steps.a.ouputs: unknown key 'ouputs'; did you mean 'outputs'?",
        (
            "mlpipe.yaml:7:5: steps.a.colour: unknown key 'colour'; expected one of: code, run, inputs, outputs, "
            "env, env-passthrough, matrix, reuse, needs, image, resources, runs-on, fan-out, timeout-minutes, "
            "environment, shm-size, ulimits, user, mounts, network, build"
        ),
        "mlpipe.yaml:9:11: steps.a.outputs.o.knd: unknown key 'knd'; did you mean 'kind'?",
        "mlpipe.yaml:10:17: steps.a.resources.gpu: unknown key 'gpu'; did you mean 'gpus'?",
    ]


def test_missing_required_keys(ws: Path) -> None:
    assert problems(ws, "params: {}\nsteps:\n  a:\n    code: .\n") == [
        "mlpipe.yaml:1:1: missing required key 'name'",
        "mlpipe.yaml:3:3: steps.a: missing required key 'run'",
    ]


def test_references_that_do_not_resolve(ws: Path) -> None:
    text = """
    name: x
    params: {lr: 0.1, epochs: 2}
    steps:
      prepare:
        run: make ${{ outputs.data }}
        outputs: {data: }
      train:
        run: train ${{ params.lrr }} ${{ params.X }} ${{ inputs.dta }} ${{ outputs.model }} ${{ outputs.m }}
        inputs:
          data: ${{ steps.prepar.outputs.data }}
          other: ${{ steps.prepare.outputs.dat }}
          own: ${{ steps.train.outputs.model }}
        outputs: {model: }
        env:
          A: ${{ steps.prepare.outputs.zzz }} ${{ steps.train.outputs.model }} ${{ inputs.q }}
    """
    assert problems(ws, text) == [
        "mlpipe.yaml:8:16: steps.train.run: no param 'lrr'; did you mean 'lr'?",
        "mlpipe.yaml:8:34: steps.train.run: no param 'X'; expected one of: lr, epochs",
        "mlpipe.yaml:8:50: steps.train.run: step 'train' has no input 'dta'; did you mean 'data'?",
        "mlpipe.yaml:8:89: steps.train.run: step 'train' has no output 'm'; expected one of: model",
        "mlpipe.yaml:10:13: steps.train.inputs.data: no step 'prepar'; did you mean 'prepare'?",
        "mlpipe.yaml:11:14: steps.train.inputs.other: step 'prepare' has no output 'dat'; did you mean 'data'?",
        "mlpipe.yaml:12:12: steps.train.inputs.own: step 'train' refers to its own output 'model'",
        "mlpipe.yaml:15:10: steps.train.env.A: step 'prepare' has no output 'zzz'; expected one of: data",
        (
            "mlpipe.yaml:15:43: steps.train.env.A: step 'train' refers to its own output 'model'; "
            "use '${{ outputs.model }}' for its own output"
        ),
        "mlpipe.yaml:15:76: steps.train.env.A: step 'train' has no input 'q'; expected one of: data, other, own",
    ]


def test_references_to_undeclared_inputs_and_outputs_say_where_to_declare(ws: Path) -> None:
    assert problems(ws, "name: x\nsteps:\n  a:\n    run: cat ${{ inputs.x }} > ${{ outputs.y }}\n") == [
        "mlpipe.yaml:4:14: steps.a.run: step 'a' has no input 'x'; declare it under steps.a.inputs",
        "mlpipe.yaml:4:32: steps.a.run: step 'a' has no output 'y'; declare it under steps.a.outputs",
    ]


def test_needs_must_name_other_steps(ws: Path) -> None:
    text = """
    name: x
    steps:
      prepare: {run: 'true'}
      train:
        run: 'true'
        needs: [prepre, train, 3]
    """
    assert problems(ws, text) == [
        "mlpipe.yaml:6:13: steps.train.needs: no step 'prepre'; did you mean 'prepare'?",
        "mlpipe.yaml:6:21: steps.train.needs: step 'train' cannot need itself",
        "mlpipe.yaml:6:28: steps.train.needs: expected a string or a list of strings, found the integer 3",
    ]


def test_wrong_types_say_what_was_expected_and_found(ws: Path) -> None:
    text = """
    name: [x]
    params:
      C: 1.0
      bad: null
      worse: [1]
    steps:
      a:
        run: [a]
        reuse: "yes"
        resources: {gpus: -1}
        timeout-minutes: 0
        runs-on: {a: b}
        image: 3
        env: [A]
        inputs: {d: 1}
        outputs:
          o: {kind: metric, type: folder}
          m: {kind: metrics, type: dir}
          p: []
        environment: true
        needs: {}
      b: null
      c:
        run: 'true'
        resources: {gpus: 1.5}
        timeout-minutes: true
        env: {A: [1]}
        inputs: {d: ''}
    """
    assert problems(ws, text, C="abc") == [
        "mlpipe.yaml:1:7: name: expected a string, found a list",
        "mlpipe.yaml:3:3: params.C: -p C=abc: expected a number, found 'abc'",
        "mlpipe.yaml:4:8: params.bad: expected a boolean, integer, number or string default, found null",
        "mlpipe.yaml:5:10: params.worse: expected a boolean, integer, number or string default, found a list",
        "mlpipe.yaml:8:10: steps.a.run: expected a string, found a list",
        "mlpipe.yaml:9:12: steps.a.reuse: expected true or false, found the string 'yes'",
        "mlpipe.yaml:10:23: steps.a.resources.gpus: expected a non-negative integer, found the integer -1",
        "mlpipe.yaml:11:22: steps.a.timeout-minutes: expected a positive number of minutes, found the integer 0",
        "mlpipe.yaml:12:14: steps.a.runs-on: expected a string or a list of strings, found a mapping",
        "mlpipe.yaml:13:12: steps.a.image: expected a string, found the integer 3",
        "mlpipe.yaml:14:10: steps.a.env: expected a mapping, found a list",
        "mlpipe.yaml:15:17: steps.a.inputs.d: expected a string, found the integer 1",
        (
            "mlpipe.yaml:17:17: steps.a.outputs.o.kind: expected 'data' or 'metrics', found the string 'metric'; "
            "did you mean 'metrics'?"
        ),
        (
            "mlpipe.yaml:17:31: steps.a.outputs.o.type: expected 'dir' or 'file', found the string 'folder'; "
            "did you mean 'file'?"
        ),
        "mlpipe.yaml:18:32: steps.a.outputs.m.type: a metrics output is a JSON file; remove 'type' or set it to file",
        "mlpipe.yaml:19:10: steps.a.outputs.p: expected a mapping, found a list",
        "mlpipe.yaml:20:18: steps.a.environment: expected a string or a list of strings, found the boolean true",
        "mlpipe.yaml:21:12: steps.a.needs: expected a string or a list of strings, found a mapping",
        "mlpipe.yaml:22:6: steps.b: expected a mapping, found null",
        "mlpipe.yaml:25:23: steps.c.resources.gpus: expected a non-negative integer, found the number 1.5",
        "mlpipe.yaml:26:22: steps.c.timeout-minutes: expected a positive number of minutes, found the boolean true",
        "mlpipe.yaml:27:14: steps.c.env.A: expected a string, number or boolean, found a list",
        "mlpipe.yaml:28:17: steps.c.inputs.d: expected a path relative to the workspace root, found the string ''",
    ]


def test_invalid_names(ws: Path) -> None:
    text = """
    name: x
    params: {"l r": 1}
    steps:
      "a b":
        run: 'true'
        env: {1X: a}
        outputs: {"o.p": }
    """
    fix = "use letters, digits, '_' and '-', starting with a letter or '_'"
    assert problems(ws, text) == [
        f"mlpipe.yaml:2:10: params.l r: invalid param name 'l r'; {fix}",
        f"mlpipe.yaml:4:3: steps.a b: invalid step name 'a b'; {fix}",
        (
            "mlpipe.yaml:6:11: steps.a b.env.1X: invalid environment variable name '1X'; "
            "use letters, digits and '_', starting with a letter or '_'"
        ),
        f"mlpipe.yaml:7:15: steps.a b.outputs.o.p: invalid output name 'o.p'; {fix}",
    ]


def test_cycles_print_the_path_with_each_edge_line(ws: Path) -> None:
    text = """
    name: x
    steps:
      a:
        run: use ${{ steps.b.outputs.o }}
        outputs: {o: }
      b:
        run: 'true'
        needs: a
        outputs: {o: }
      c:
        run: 'true'
        inputs: {i: "${{ steps.e.outputs.o }}"}
        outputs: {o: }
      d:
        run: 'true'
        needs: [c]
        outputs: {o: }
      e:
        run: 'true'
        env: {X: "${{ steps.d.outputs.o }}"}
        outputs: {o: }
    """
    fix = "each step waits for the next; remove one of these dependencies"
    assert problems(ws, text) == [
        f"mlpipe.yaml:4:14: steps.a.run: dependency cycle: a -> b (line 4) -> a (line 8); {fix}",
        f"mlpipe.yaml:12:17: steps.c.inputs.i: dependency cycle: c -> e (line 12) -> d (line 20) -> c (line 16); {fix}",
    ]


def test_duplicate_steps_and_keys(ws: Path) -> None:
    text = """
    name: x
    name: y
    steps:
      a:
        run: 'true'
        run: 'false'
        outputs: {o: , o: }
      a: {run: 'true'}
    """
    assert problems(ws, text) == [
        "mlpipe.yaml:2:1: name: duplicate key 'name'; first defined at line 1",
        "mlpipe.yaml:6:5: steps.a.run: duplicate key 'run'; first defined at line 5",
        "mlpipe.yaml:7:20: steps.a.outputs.o: duplicate key 'o'; first defined at line 7",
        "mlpipe.yaml:8:3: steps.a: duplicate step 'a'; first defined at line 4",
    ]


def test_merge_keys_apply_and_own_keys_win(ws: Path) -> None:
    text = """
    name: x
    steps:
      base: &base
        run: base
        reuse: false
      child:
        <<: *base
        run: child
    """
    pipeline = load_pipeline(write(ws, text))

    assert (pipeline.steps["child"].run, pipeline.steps["child"].reuse) == ("child", False)


def test_paths_must_stay_in_the_workspace_and_exist(ws: Path) -> None:
    text = """
    name: x
    steps:
      a:
        code: ../elsewhere
        run: 'true'
        inputs:
          abs: /etc/passwd
          up: data/../../x
          gone: data/raw.cvs
          far: nowhere/file
        environment: [uv.lok, data]
        outputs:
          o: {path: ../out}
      b:
        code: src
        run: 'true'
      c:
        code: data/raw.csv
        run: 'true'
    """
    root = ws.resolve()
    assert problems(ws, text, {"data/raw.csv": "", "uv.lock": ""}) == [
        (
            "mlpipe.yaml:4:11: steps.a.code: path '../elsewhere' is outside the workspace root; "
            "mlpipe only reads files inside the workspace (the pipeline file's directory)"
        ),
        "mlpipe.yaml:7:12: steps.a.inputs.abs: path '/etc/passwd' is absolute; give it relative to the workspace root",
        (
            "mlpipe.yaml:8:11: steps.a.inputs.up: path 'data/../../x' is outside the workspace root; "
            "mlpipe only reads files inside the workspace (the pipeline file's directory)"
        ),
        (
            "mlpipe.yaml:9:13: steps.a.inputs.gone: input path 'data/raw.cvs' does not exist; "
            "did you mean 'data/raw.csv'?"
        ),
        (
            "mlpipe.yaml:10:12: steps.a.inputs.far: input path 'nowhere/file' does not exist; "
            f"paths are relative to the workspace root {root}"
        ),
        "mlpipe.yaml:11:19: steps.a.environment: environment file 'uv.lok' does not exist; did you mean 'uv.lock'?",
        (
            "mlpipe.yaml:11:27: steps.a.environment: environment file 'data' is not a file; "
            "list the files themselves"
        ),
        (
            "mlpipe.yaml:13:17: steps.a.outputs.o.path: path '../out' is outside the workspace root; "
            "mlpipe only reads files inside the workspace (the pipeline file's directory)"
        ),
        (
            "mlpipe.yaml:15:11: steps.b.code: code directory 'src' does not exist; "
            f"paths are relative to the workspace root {root}"
        ),
        (
            "mlpipe.yaml:18:11: steps.c.code: code 'data/raw.csv' is not a directory; "
            "give the directory holding the code"
        ),
    ]


def test_merge_conflict_markers_are_reported_before_parsing(ws: Path) -> None:
    text = """
    name: x
    steps:
    <<<<<<< HEAD
      a: {run: 'true'}
    =======
      a: {run: 'false'}
    >>>>>>> feature
    """
    fix = "resolve the merge conflict and delete the marker lines"
    assert problems(ws, text) == [
        f"mlpipe.yaml:3:1: git merge conflict marker '<<<<<<<'; {fix}",
        f"mlpipe.yaml:5:1: git merge conflict marker '======='; {fix}",
        f"mlpipe.yaml:7:1: git merge conflict marker '>>>>>>>'; {fix}",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: x\nsteps:\n  a: {run: [b}\n",
            (
                "mlpipe.yaml:3:14: invalid YAML: while parsing a flow sequence at line 3, "
                "expected ',' or ']', but got '}'; near 'a: {run: [b}'"
            ),
        ),
        (
            "name: x\nsteps: a: b\n",
            "mlpipe.yaml:2:9: invalid YAML: mapping values are not allowed here; near 'steps: a: b'",
        ),
        (
            "name: x\n\tsteps: {}\n",
            (
                "mlpipe.yaml:2:1: invalid YAML: "
                "found character '\\t' that cannot start any token; near 'steps: {}'"
            ),
        ),
        (
            "name: 'x\n",
            (
                "mlpipe.yaml:2:1: invalid YAML: while scanning a quoted scalar at line 1, "
                'found unexpected end of stream; near "name: \'x"'
            ),
        ),
        ("", "mlpipe.yaml:1:1: the file is empty; a pipeline needs 'name' and 'steps'"),
        ("# only a comment\n", "mlpipe.yaml:1:1: the file is empty; a pipeline needs 'name' and 'steps'"),
        (
            "- name: x\n",
            "mlpipe.yaml:1:1: expected a mapping with 'name' and 'steps' at the top level, found a list",
        ),
        ("steps: {}\nname: x\n", "mlpipe.yaml:1:8: steps: expected at least one step"),
        ("name: x\nsteps:\n", "mlpipe.yaml:2:7: steps: expected a mapping, found null"),
    ],
)
def test_malformed_files(ws: Path, text: str, expected: str) -> None:
    path = ws / "mlpipe.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_pipeline(path)
    assert str(info.value) == expected


def test_not_utf8(ws: Path) -> None:
    path = ws / "mlpipe.yaml"
    path.write_bytes(b"name: x\nsteps: \xff\n")
    with pytest.raises(SpecError) as info:
        load_pipeline(path)
    assert str(info.value) == "mlpipe.yaml:2:1: the file is not UTF-8 text; save it as UTF-8"


def test_missing_file_is_a_usage_error(ws: Path) -> None:
    with pytest.raises(UsageError, match=r"^nope.yaml: no such file$"):
        load_pipeline(Path("nope.yaml"))


def test_malformed_expressions_point_at_their_column(ws: Path) -> None:
    text = """
    name: x
    params: {C: 1}
    steps:
      a:
        run: train --C ${{ param.C }}
        env:
          A: "x ${{ 1+1 }}"
          B: 'y ${{ params.C'
          C: |
            ${{ outputs.x.y }}
        inputs:
          d: "${{ steps.b.outputs }}"
          e: "data/${{ params.C }}"
    """
    forms = (
        "expected ${{ params.NAME }}, ${{ inputs.NAME }}, ${{ outputs.NAME }}, ${{ matrix.NAME }} "
        "or ${{ steps.STEP.outputs.NAME }}"
    )
    assert problems(ws, text) == [
        "mlpipe.yaml:5:20: steps.a.run: malformed expression '${{ param.C }}'; did you mean '${{ params.C }}'?",
        f"mlpipe.yaml:7:13: steps.a.env.A: malformed expression '${{{{ 1+1 }}}}'; {forms}",
        "mlpipe.yaml:8:13: steps.a.env.B: unclosed expression '${{ params.C'; close it with '}}'",
        f"mlpipe.yaml:9:10: steps.a.env.C: malformed expression '${{{{ outputs.x.y }}}}'; {forms}",
        f"mlpipe.yaml:12:11: steps.a.inputs.d: malformed expression '${{{{ steps.b.outputs }}}}'; {forms}",
        (
            "mlpipe.yaml:13:10: steps.a.inputs.e: an input is a workspace path or exactly "
            "'${{ steps.STEP.outputs.NAME }}', found 'data/${{ params.C }}'"
        ),
    ]


def test_overrides_are_converted_to_the_default_type() -> None:
    assert [convert(v, True) for v in ("true", "False", "1", "0", "YES", "no")] == [
        True,
        False,
        True,
        False,
        True,
        False,
    ]
    assert convert("7", 1) == 7
    assert convert("1", 1.0) == 1.0
    assert convert("1e-3", 1.0) == 0.001
    assert convert("anything at all", "s") == "anything at all"
    for text, default in (("1.5", 1), ("maybe", True), ("abc", 1.0), ("", 1)):
        with pytest.raises(ValueError):
            convert(text, default)


def test_bad_overrides_are_problems_at_the_param(ws: Path) -> None:
    text = """
    name: x
    params:
      epochs: 3
      fast: false
    steps:
      a: {run: 'true'}
    """
    assert problems(ws, text, epochs="1.5", fast="maybe", epoch="2", zzz="1") == [
        "mlpipe.yaml:2:1: params: -p epoch=2: no param 'epoch'; did you mean 'epochs'?",
        "mlpipe.yaml:2:1: params: -p zzz=1: no param 'zzz'; expected one of: epochs, fast",
        "mlpipe.yaml:3:3: params.epochs: -p epochs=1.5: expected an integer, found '1.5'",
        "mlpipe.yaml:4:3: params.fast: -p fast=maybe: expected true or false (or yes/no, 1/0), found 'maybe'",
    ]


def test_override_without_params_points_at_the_top(ws: Path) -> None:
    assert problems(ws, "name: x\nsteps:\n  a: {run: 'true'}\n", lr="1") == [
        "mlpipe.yaml:1:1: params: -p lr=1: no param 'lr'; declare it under params"
    ]


def test_parse_overrides() -> None:
    assert parse_overrides(["lr=0.1", "tag=a=b", "lr=0.2", "empty="]) == {
        "lr": "0.2",
        "tag": "a=b",
        "empty": "",
    }
    for bad in ("lr", "=1", "l r=1"):
        with pytest.raises(UsageError) as info:
            parse_overrides([bad])
        assert str(info.value) == f"-p {bad}: expected NAME=VALUE, e.g. -p lr=0.01"


def test_many_problems_are_reported_at_once(ws: Path) -> None:
    text = """
    name: x
    steps:
      a:
        run: ${{ params.nope }}
        reuse: 1
      b:
        run: 'true'
        needs: [z]
    """
    assert problems(ws, text) == [
        "mlpipe.yaml:4:10: steps.a.run: no param 'nope'",
        "mlpipe.yaml:5:12: steps.a.reuse: expected true or false, found the integer 1",
        "mlpipe.yaml:8:13: steps.b.needs: no step 'z'; expected one of: a",
    ]


def test_cli_validate_ok(ws: Path) -> None:
    write(ws, FULL, FULL_FILES)

    result = CliRunner().invoke(cli, ["validate", "-p", "C=0.5"])

    assert (result.exit_code, result.output) == (0, "mlpipe.yaml: ok (3 steps)\n")


def test_cli_validate_reports_every_problem_with_exit_code_2(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(ws, "name: x\nsteps:\n  a:\n    run: 'true'\n    reuse: 'no'\n    needs: b\n", name="p.yaml")

    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "-f", "p.yaml"])

    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "p.yaml:5:12: steps.a.reuse: expected true or false, found the string 'no'\n"
        "p.yaml:6:12: steps.a.needs: no step 'b'\n"
    )


def test_cli_validate_bad_param_syntax_and_missing_file(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "-p", "oops"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: -p oops: expected NAME=VALUE, e.g. -p lr=0.01\n"

    with pytest.raises(SystemExit) as exit_info:
        main(["validate"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"error: no mlpipe.yaml in {ws}; run mlpipe where the pipeline file is, or pass -f FILE\n"
    )

    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "-f", "other.yaml"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: pipeline file other.yaml does not exist\n"


def test_exponent_numbers_are_numbers_as_in_json(ws: Path) -> None:
    text = "name: x\nparams: {a: 1e-3, b: 2E+20, c: '1e3', d: -1.5e-7}\nsteps:\n  s: {run: 'true'}\n"

    pipeline = load_pipeline(write(ws, text))

    assert {n: p.value for n, p in pipeline.params.items()} == {
        "a": 0.001,
        "b": 2e20,
        "c": "1e3",
        "d": -1.5e-7,
    }


def test_format_names_the_exported_form(ws: Path) -> None:
    ok = load_pipeline(write(ws, "format: mlpipe.pipeline/1\nname: x\nsteps:\n  s: {run: 'true'}\n"))
    assert ok.name == "x"

    assert problems(ws, "format: mlpipe.pipeline/2\nname: x\nsteps:\n  s: {run: 'true'}\n") == [
        (
            "mlpipe.yaml:1:9: format: unsupported format 'mlpipe.pipeline/2'; "
            "this mlpipe reads 'mlpipe.pipeline/1'; export the pipeline again with this version, or upgrade mlpipe"
        )
    ]


def test_env_passthrough_and_environment_forms(ws: Path) -> None:
    text = """
    name: x
    steps:
      a:
        run: 'true'
        env-passthrough: [HF_TOKEN, AWS_SECRET_ACCESS_KEY]
        environment: {files: [uv.lock], python: true, packages: true}
      b:
        run: 'true'
        env-passthrough: HF_TOKEN
        environment: {python: true}
      c:
        run: 'true'
        environment: uv.lock
    """
    a, b, c = load_pipeline(write(ws, text, {"uv.lock": ""})).steps.values()

    assert (a.env_passthrough, a.environment, a.environment_python, a.environment_packages) == (
        ("HF_TOKEN", "AWS_SECRET_ACCESS_KEY"),
        ("uv.lock",),
        True,
        True,
    )
    assert (b.env_passthrough, b.environment, b.environment_python, b.environment_packages) == (
        ("HF_TOKEN",),
        (),
        True,
        False,
    )
    assert (c.env_passthrough, c.environment, c.environment_python) == ((), ("uv.lock",), False)


def test_env_passthrough_and_environment_problems(ws: Path) -> None:
    text = """
    name: x
    steps:
      a:
        run: 'true'
        env: {TOKEN: x}
        env-passthrough: [HF_TOKEN, TOKEN, 1A, MLPIPE_STEP, [X]]
        environment: {files: [uv.lok], python: yes please, pip: true}
      b:
        run: 'true'
        env-passthrough: {A: 1}
        environment: {files: {}}
    """
    assert problems(ws, text, {"uv.lock": ""}) == [
        (
            "mlpipe.yaml:6:33: steps.a.env-passthrough: TOKEN is also set under env; "
            "remove it from one: env values are fingerprinted, passed-through ones are not"
        ),
        (
            "mlpipe.yaml:6:40: steps.a.env-passthrough: invalid environment variable name '1A'; "
            "use letters, digits and '_', starting with a letter or '_'"
        ),
        "mlpipe.yaml:6:44: steps.a.env-passthrough: MLPIPE_STEP is set by mlpipe; remove it from env-passthrough",
        "mlpipe.yaml:6:57: steps.a.env-passthrough: expected a string or a list of strings, found a list",
        (
            "mlpipe.yaml:7:27: steps.a.environment.files: environment file 'uv.lok' does not exist; "
            "did you mean 'uv.lock'?"
        ),
        "mlpipe.yaml:7:44: steps.a.environment.python: expected true or false, found the string 'yes please'",
        "mlpipe.yaml:7:56: steps.a.environment.pip: unknown key 'pip'; expected one of: files, python, packages",
        "mlpipe.yaml:10:22: steps.b.env-passthrough: expected a string or a list of strings, found a mapping",
        "mlpipe.yaml:11:26: steps.b.environment.files: expected a string or a list of strings, found a mapping",
    ]


def test_names_and_matrix_instances_fit_in_a_file_name(ws: Path) -> None:
    long = "s" * 101
    text = f"""
    name: x
    steps:
      {long}:
        run: 'true'
      sweep:
        run: 'true'
        matrix:
          value: ["{"v" * 250}", "w"]
        outputs: {{{"o" * 100}: {{}}}}
    """
    found = problems(ws, text)
    assert found == [
        f"mlpipe.yaml:3:3: steps.{long[:61]}...: step name of 101 characters; use at most 100",
        (
            f"mlpipe.yaml:8:15: steps.sweep.matrix: instance name sweep[value={'v' * 48}... is 263 bytes long; "
            "use shorter matrix keys and values: instance names (logs are files named by them) are at most 200"
        ),
    ], found
