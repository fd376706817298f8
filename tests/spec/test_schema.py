"""The shipped JSON Schema and the loader agree: what one accepts the other accepts, and every problem the
schema can express is rejected by both, at the same key path."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from test_spec_load import FULL, FULL_FILES

from mlpipe.cli.main import cli
from mlpipe.cli.schema import schema_text
from mlpipe.errors import SpecError
from mlpipe.spec.load import load_pipeline
from mlpipe.spec.yamlnodes import Loader

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads(schema_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def schema_errors(text: str) -> list[jsonschema.ValidationError]:
    return list(VALIDATOR.iter_errors(yaml.load(text, Loader=Loader)))


def loader_problems(root: Path, text: str, files: dict[str, str] | None = None) -> list[Any]:
    for rel, content in (files or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    path = root / "mlpipe.yaml"
    path.write_text(text)
    try:
        load_pipeline(path)
    except SpecError as error:
        return list(error.problems)
    return []


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_mlpipe_schema_prints_the_shipped_file() -> None:
    result = CliRunner().invoke(cli, ["schema"])

    assert result.exit_code == 0
    assert result.output == (REPO / "runner/mlpipe/mlpipe.schema.json").read_text()


@pytest.mark.parametrize("path", sorted(REPO.glob("examples/*/mlpipe.yaml")), ids=lambda p: p.parent.name)
def test_every_example_is_valid(path: Path) -> None:
    assert sorted(REPO.glob("examples/*/mlpipe.yaml")), "no examples found"
    assert schema_errors(path.read_text()) == []
    load_pipeline(path)


VALID = {
    "full": (FULL, FULL_FILES),
    "minimal": ("name: x\nsteps:\n  a: {run: 'true'}\n", {}),
    "merge keys": (
        "name: x\nsteps:\n  base: &b\n    run: base\n    reuse: false\n  child:\n    <<: *b\n    run: child\n",
        {},
    ),
    "scalars everywhere": (
        """
        format: mlpipe.pipeline/1
        name: "x"
        params: {a: 1, b: 1e-3, c: true, d: s, _e-f: -2.5}
        steps:
          s_1-x:
            run: echo
            env: {A: 1, B: 1.5, C: true, D: , _E1: "${{ params.a }}"}
            needs: []
            runs-on: label
            fan-out: true
            environment: req.txt
            timeout-minutes: 0.5
            resources: {gpus: 0}
            outputs: {o: {type: file}, m: {kind: metrics, type: file}, d: {kind: data}, e: {}}
            inputs: {i: ./req.txt, j: "${{ steps.t.outputs.o }}"}
          t: {run: x, outputs: {o: }, code: ./, env-passthrough: HF_TOKEN}
          u:
            run: x
            env-passthrough: [A, B_1]
            environment: {files: [req.txt], python: true, packages: false}
          v: {run: x, environment: {python: true}}
          w:
            run: echo ${{ matrix.lr }}
            matrix: {lr: [0.1, 1e-3], opt: [adam, sgd-2], flag: [true], n: [1, 2]}
            outputs:
              m: {kind: metrics, higher-is-better: true}
              per: {kind: metrics, higher-is-better: [accuracy, f1], lower-is-better: [loss]}
              most: {kind: metrics, higher-is-better: true, lower-is-better: [loss]}
              low: {kind: metrics, lower-is-better: true}
          z:
            run: echo ${{ steps.w[lr=0.1,opt=adam,flag=true,n=1].outputs.m }}
            inputs: {all: "${{ steps.w[*].outputs.m }}"}
            needs: [w, "w[lr=0.001,opt=sgd-2,flag=true,n=2]"]
        """,
        {"req.txt": ""},
    ),
    "container options": (
        """
        name: x
        steps:
          a:
            run: x
            image: busybox
            shm-size: 2g
            ulimits: {nofile: 1024, memlock: -1, stack: "8", core: "0:-1", nice: "-1:-1"}
            user: 1234
            mounts: ["data:/data:ro", /tmp:/scratch, "./data:/d2:rw"]
            network: none
          b: {run: x, image: busybox, shm-size: 1048576, user: "app:app", mounts: "/tmp:/t", network: host}
          c: {run: x, image: busybox, user: nobody, network: bridge, ulimits: {}, mounts: []}
          d: {run: x, build: img, network: none}
          e: {run: x, build: {context: ./img/, dockerfile: other.Dockerfile}, shm-size: 1m}
        """,
        {"data/f": "", "img/Dockerfile": "", "img/other.Dockerfile": ""},
    ),
}


@pytest.mark.parametrize("case", VALID)
def test_valid_files_pass_both(ws: Path, case: str) -> None:
    text, files = VALID[case]
    text = textwrap.dedent(text).lstrip("\n")

    assert loader_problems(ws, text, files) == []
    assert schema_errors(text) == []


STEP = "name: x\nsteps:\n  a:\n    run: 'true'\n"
"""A valid file; cases append keys to step a."""
IMAGE = STEP + "    image: busybox\n"
"""The same, a container step."""

INVALID = {
    # unknown keys
    "unknown top key": ("stepz: {}\n" + STEP, "stepz"),
    "unknown step key": (STEP + "    ouputs: {}\n", "steps.a.ouputs"),
    "unknown output key": (STEP + "    outputs: {o: {knd: metrics}}\n", "steps.a.outputs.o.knd"),
    "unknown resource": (STEP + "    resources: {gpu: 1}\n", "steps.a.resources.gpu"),
    # required keys
    "no name": ("steps:\n  a: {run: 'true'}\n", ""),
    "no steps key": ("name: x\n", ""),
    "no steps": ("name: x\nsteps: {}\n", "steps"),
    "no run": ("name: x\nsteps:\n  a: {code: .}\n", "steps.a"),
    # wrong types
    "name list": ("name: [x]\nsteps:\n  a: {run: 'true'}\n", "name"),
    "name number": ("name: 3\nsteps:\n  a: {run: 'true'}\n", "name"),
    "name date": ("name: 2024-01-01\nsteps:\n  a: {run: 'true'}\n", "name"),
    "param null": ("params: {C: }\n" + STEP, "params.C"),
    "param list": ("params: {C: [1]}\n" + STEP, "params.C"),
    "params list": ("params: [C]\n" + STEP, "params"),
    "steps list": ("name: x\nsteps: [a]\n", "steps"),
    "step null": ("name: x\nsteps:\n  a:\n", "steps.a"),
    "run list": ("name: x\nsteps:\n  a: {run: [a]}\n", "steps.a.run"),
    "reuse string": (STEP + "    reuse: 'yes'\n", "steps.a.reuse"),
    "fan-out string": (STEP + "    fan-out: 'yes'\n", "steps.a.fan-out"),
    "gpus negative": (STEP + "    resources: {gpus: -1}\n", "steps.a.resources.gpus"),
    "gpus float": (STEP + "    resources: {gpus: 1.5}\n", "steps.a.resources.gpus"),
    "timeout zero": (STEP + "    timeout-minutes: 0\n", "steps.a.timeout-minutes"),
    "timeout bool": (STEP + "    timeout-minutes: true\n", "steps.a.timeout-minutes"),
    "runs-on mapping": (STEP + "    runs-on: {a: b}\n", "steps.a.runs-on"),
    "image number": (STEP + "    image: 3\n", "steps.a.image"),
    "env list": (STEP + "    env: [A]\n", "steps.a.env"),
    "env value list": (STEP + "    env: {A: [1]}\n", "steps.a.env.A"),
    "input number": (STEP + "    inputs: {d: 1}\n", "steps.a.inputs.d"),
    "input blank": (STEP + "    inputs: {d: ' '}\n", "steps.a.inputs.d"),
    "output kind": (STEP + "    outputs: {o: {kind: metric}}\n", "steps.a.outputs.o.kind"),
    "output type": (STEP + "    outputs: {o: {type: folder}}\n", "steps.a.outputs.o.type"),
    "metrics dir": (STEP + "    outputs: {o: {kind: metrics, type: dir}}\n", "steps.a.outputs.o.type"),
    "output list": (STEP + "    outputs: {o: []}\n", "steps.a.outputs.o"),
    "direction string": (
        STEP + "    outputs: {m: {kind: metrics, higher-is-better: 'yes'}}\n",
        "steps.a.outputs.m.higher-is-better",
    ),
    "direction on data": (
        STEP + "    outputs: {o: {higher-is-better: true}}\n",
        "steps.a.outputs.o.higher-is-better",
    ),
    "direction names not strings": (
        STEP + "    outputs: {m: {kind: metrics, lower-is-better: [1]}}\n",
        "steps.a.outputs.m.lower-is-better",
    ),
    "lower direction on data": (
        STEP + "    outputs: {o: {type: file, lower-is-better: [loss]}}\n",
        "steps.a.outputs.o.lower-is-better",
    ),
    "both directions for every metric": (
        STEP + "    outputs: {m: {kind: metrics, higher-is-better: true, lower-is-better: false}}\n",
        "steps.a.outputs.m.lower-is-better",
    ),
    "a metric listed twice in one list": (
        STEP + "    outputs: {m: {kind: metrics, lower-is-better: [loss, loss]}}\n",
        "steps.a.outputs.m.lower-is-better",
    ),
    "environment bool": (STEP + "    environment: true\n", "steps.a.environment"),
    "needs mapping": (STEP + "    needs: {}\n", "steps.a.needs"),
    "needs number": (STEP + "    needs: [3]\n", "steps.a.needs"),
    "format": ("format: mlpipe.pipeline/9\n" + STEP, "format"),
    "passthrough mapping": (STEP + "    env-passthrough: {A: 1}\n", "steps.a.env-passthrough"),
    "environment unknown key": (STEP + "    environment: {pip: true}\n", "steps.a.environment.pip"),
    "environment python string": (STEP + "    environment: {python: 'yes'}\n", "steps.a.environment.python"),
    "environment files mapping": (STEP + "    environment: {files: {}}\n", "steps.a.environment.files"),
    "matrix list": (STEP + "    matrix: [1]\n", "steps.a.matrix"),
    "matrix empty": (STEP + "    matrix: {}\n", "steps.a.matrix"),
    "matrix empty list": (STEP + "    matrix: {lr: []}\n", "steps.a.matrix.lr"),
    "matrix scalar": (STEP + "    matrix: {lr: 1}\n", "steps.a.matrix.lr"),
    "matrix nested": (STEP + "    matrix: {lr: [[1]]}\n", "steps.a.matrix.lr"),
    "matrix value": (STEP + "    matrix: {opt: ['a b']}\n", "steps.a.matrix.opt"),
    "matrix key": (STEP + "    matrix: {'a b': [1]}\n", "steps.a.matrix.a b"),
    "shm-size unit": (IMAGE + "    shm-size: 2gb\n", "steps.a.shm-size"),
    "shm-size zero": (IMAGE + "    shm-size: 0\n", "steps.a.shm-size"),
    "ulimits list": (IMAGE + "    ulimits: [nofile]\n", "steps.a.ulimits"),
    "ulimit name": (IMAGE + "    ulimits: {nofiles: 1}\n", "steps.a.ulimits.nofiles"),
    "ulimit negative": (IMAGE + "    ulimits: {nofile: -2}\n", "steps.a.ulimits.nofile"),
    "ulimit text": (IMAGE + "    ulimits: {nofile: 'many'}\n", "steps.a.ulimits.nofile"),
    "user list": (IMAGE + "    user: [a]\n", "steps.a.user"),
    "user spaces": (IMAGE + "    user: 'a b'\n", "steps.a.user"),
    "mount no target": (IMAGE + "    mounts: [x]\n", "steps.a.mounts"),
    "mount relative target": (IMAGE + "    mounts: ['x:data']\n", "steps.a.mounts"),
    "mount mode": (IMAGE + "    mounts: ['x:/data:rx']\n", "steps.a.mounts"),
    "mount in mlpipe": (IMAGE + "    mounts: ['x:/mlpipe/code']\n", "steps.a.mounts"),
    "mount parent": (IMAGE + "    mounts: ['../x:/x']\n", "steps.a.mounts"),
    "mounts mapping": (IMAGE + "    mounts: {x: /x}\n", "steps.a.mounts"),
    "network": (IMAGE + "    network: hots\n", "steps.a.network"),
    "shm-size without image": (STEP + "    shm-size: 2g\n", "steps.a.shm-size"),
    "network without image": (STEP + "    network: none\n", "steps.a.network"),
    "mounts without image": (STEP + "    mounts: ['x:/x']\n", "steps.a.mounts"),
    "build number": (STEP + "    build: 3\n", "steps.a.build"),
    "build absolute": (STEP + "    build: /img\n", "steps.a.build"),
    "build unknown key": (STEP + "    build: {context: img, file: x}\n", "steps.a.build.file"),
    "build without context": (STEP + "    build: {dockerfile: x}\n", "steps.a.build"),
    "build and image": (IMAGE + "    build: img\n", "steps.a.build"),
    # bad names
    "passthrough name": (STEP + "    env-passthrough: [1A]\n", "steps.a.env-passthrough"),
    "passthrough mlpipe": (STEP + "    env-passthrough: MLPIPE_STEP\n", "steps.a.env-passthrough"),
    "param name": ("params: {'l r': 1}\n" + STEP, "params.l r"),
    "step name": ("name: x\nsteps:\n  'a b': {run: 'true'}\n", "steps.a b"),
    "step name digit": ("name: x\nsteps:\n  1a: {run: 'true'}\n", "steps.1a"),
    "output name": (STEP + "    outputs: {o.p: }\n", "steps.a.outputs.o.p"),
    "input name": (STEP + "    inputs: {'x y': x}\n", "steps.a.inputs.x y"),
    "env name": (STEP + "    env: {1X: a}\n", "steps.a.env.1X"),
    "env name dash": (STEP + "    env: {A-B: a}\n", "steps.a.env.A-B"),
    # paths outside the workspace
    "absolute code": (STEP + "    code: /etc\n", "steps.a.code"),
    "parent code": (STEP + "    code: ../x\n", "steps.a.code"),
    "absolute input": (STEP + "    inputs: {d: /etc/passwd}\n", "steps.a.inputs.d"),
    "windows input": (STEP + "    inputs: {d: 'C:\\data'}\n", "steps.a.inputs.d"),
    "parent output path": (STEP + "    outputs: {o: {path: ../o}}\n", "steps.a.outputs.o.path"),
    "absolute environment": (STEP + "    environment: [/uv.lock]\n", "steps.a.environment"),
}


def schema_paths(errors: list[jsonschema.ValidationError]) -> list[str]:
    # The loader names a list, not its items' indices.
    return [".".join(str(p) for p in error.absolute_path if not isinstance(p, int)) for error in errors]


@pytest.mark.parametrize("case", INVALID)
def test_invalid_files_fail_both_at_the_same_key(ws: Path, case: str) -> None:
    text, key = INVALID[case]

    problems = loader_problems(ws, text, {"x": "", "img/Dockerfile": ""})
    errors = schema_errors(text)

    assert [p.key for p in problems] == [key], problems
    assert errors, "the schema accepts what the loader rejects"
    # The schema points at the key itself, or at the mapping that holds a bad or unknown key.
    for path in schema_paths(errors):
        assert key == path or key.startswith(f"{path}.") or (path == "" and "." not in key), (path, key)


LOADER_ONLY = {
    "a metric in both directions": STEP
    + "    outputs: {m: {kind: metrics, higher-is-better: [loss], lower-is-better: [loss]}}\n",
    "reference to a missing step": STEP + "    inputs: {d: '${{ steps.b.outputs.o }}'}\n",
    "reference to a missing param": "name: x\nsteps:\n  a: {run: 'echo ${{ params.p }}'}\n",
    "missing input path": STEP + "    inputs: {d: nowhere}\n",
    "missing code dir": STEP + "    code: src\n",
    "needs itself": STEP + "    needs: a\n",
    "path leaving through a subdirectory": STEP + "    inputs: {d: x/../../y}\n",
    "duplicate key": STEP + "    run: 'false'\n",
    "ulimit soft above hard": IMAGE + "    ulimits: {nofile: '10:5'}\n",
    "missing mount host path": IMAGE + "    mounts: ['nowhere:/x']\n",
    "missing build context": STEP + "    build: nowhere\n",
    "missing Dockerfile": STEP + "    build: {context: img, dockerfile: nothere}\n",
    "mount leaving through a subdirectory": IMAGE + "    mounts: ['x/../../y:/x']\n",
}


@pytest.mark.parametrize("case", LOADER_ONLY)
def test_what_only_the_loader_checks(ws: Path, case: str) -> None:
    """References, cycles, duplicate keys and the file system are beyond a schema: it accepts these."""
    text = LOADER_ONLY[case]

    assert loader_problems(ws, text, {"x": ""}) != []
    assert schema_errors(text) == []
