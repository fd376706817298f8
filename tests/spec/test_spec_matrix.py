"""`matrix:` on a step: instances, their names and values, references to one or all, and the problems."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_spec_load import problems, write

from mlpipe.core import fingerprint as fp
from mlpipe.spec.load import load_pipeline
from mlpipe.spec.model import StepInput

SWEEP = """
name: sweep
params: {C: 10.0, lr: 0.5}
steps:
  train:
    run: train --lr ${{ matrix.lr }} --C ${{ params.C }} --seed ${{ matrix.seed }} > ${{ outputs.model }}
    matrix:
      lr: [0.1, 0.01]
      C: [1, 10]
      seed: [a1]
    outputs:
      model: {type: file}
      metrics: {kind: metrics}
  pick:
    run: pick ${{ steps.train[lr=0.1,C=1.0,seed=a1].outputs.model }} ${{ inputs.all }}
    inputs:
      all: ${{ steps.train[*].outputs.metrics }}
      best: ${{ steps.train[lr=0.01,C=10.0,seed=a1].outputs.model }}
    outputs: {o: }
  after:
    run: 'true'
    needs: [train, pick]
"""


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_matrix_step_becomes_one_instance_per_combination(ws: Path) -> None:
    pipeline = load_pipeline(write(ws, SWEEP))

    instances = [
        "train[lr=0.1,C=1.0,seed=a1]",
        "train[lr=0.1,C=10.0,seed=a1]",
        "train[lr=0.01,C=1.0,seed=a1]",
        "train[lr=0.01,C=10.0,seed=a1]",
    ]
    assert list(pipeline.steps) == [*instances, "pick", "after"]
    first = pipeline.steps[instances[0]]
    assert (first.instance_of, dict(first.matrix)) == ("train", {"lr": 0.1, "C": 1.0, "seed": "a1"})
    assert first.loc.line == 4
    pick = pipeline.steps["pick"]
    assert pick.inputs["all"] == StepInput(
        name="all", step="train[*]", output="metrics", instances=tuple(instances), loc=pick.inputs["all"].loc
    )
    assert pick.inputs["best"].instances == ()
    assert pick.upstream() == tuple(instances)
    assert pipeline.steps["after"].needs == (*instances, "pick")


def test_each_instance_has_its_own_fingerprint(ws: Path) -> None:
    pipeline = load_pipeline(write(ws, SWEEP))

    keys = set()
    for step in pipeline.steps.values():
        if step.instance_of:
            params = {n: p.value for n, p in pipeline.params.items()} | dict(step.matrix)
            found = fp.compute(
                step,
                params=params,
                input_digests={},
                upstream_digests={},
                code_tree="t",
                environment_digests={},
                platform="p",
            )
            assert found.parts["matrix"] == dict(step.matrix)
            assert found.parts["params"] == {"C": step.matrix["C"]}  # the matrix overrides param C
            keys.add(found.key)
    assert len(keys) == 4


def test_a_step_without_matrix_has_no_matrix_part() -> None:
    from mlpipe.spec.model import Location, Step

    step = Step(name="a", code=".", run="true", loc=Location(file="f", line=1, col=1))
    parts = fp.compute(
        step,
        params={},
        input_digests={},
        upstream_digests={},
        code_tree="t",
        environment_digests={},
        platform="p",
    ).parts
    assert "matrix" not in parts


def test_matrix_problems(ws: Path) -> None:
    text = """
    name: x
    params: {C: 1.0, n: 2, flag: true, tag: v}
    steps:
      a:
        run: echo ${{ matrix.lr }} ${{ matrix.l }}
        matrix:
          lr: [0.1, 0.1, "a b"]
          C: [1, x]
          n: [1.5]
          flag: [1]
          tag: [2]
          e: []
          "bad key": [1]
          m: {x: 1}
          o: [[1]]
      b:
        run: echo ${{ matrix.x }}
        matrix: {}
    """
    assert problems(ws, text) == [
        "mlpipe.yaml:5:32: steps.a.run: step 'a' has no matrix key 'l'; did you mean 'lr'?",
        "mlpipe.yaml:7:17: steps.a.matrix.lr: duplicate value 0.1; first listed at line 7",
        (
            "mlpipe.yaml:7:22: steps.a.matrix.lr: invalid matrix value 'a b'; "
            "use letters, digits and '_', '.', '+', '-' (the value is part of the instance's name)"
        ),
        "mlpipe.yaml:8:14: steps.a.matrix.C: expected a number, like param 'C', found the string 'x'",
        "mlpipe.yaml:9:11: steps.a.matrix.n: expected an integer, like param 'n', found the number 1.5",
        "mlpipe.yaml:10:14: steps.a.matrix.flag: expected true or false, like param 'flag', found the integer 1",
        "mlpipe.yaml:11:13: steps.a.matrix.tag: expected a string, like param 'tag', found the integer 2",
        "mlpipe.yaml:12:10: steps.a.matrix.e: expected a non-empty list of values, found a list",
        (
            "mlpipe.yaml:13:7: steps.a.matrix.bad key: invalid matrix key name 'bad key'; "
            "use letters, digits, '_' and '-', starting with a letter or '_'"
        ),
        "mlpipe.yaml:14:10: steps.a.matrix.m: expected a non-empty list of values, found a mapping",
        "mlpipe.yaml:15:11: steps.a.matrix.o: expected a boolean, integer, number or string, found a list",
        "mlpipe.yaml:17:15: steps.b.run: step 'b' has no matrix key 'x'; declare it under steps.b.matrix",
        "mlpipe.yaml:18:13: steps.b.matrix: expected at least one key; remove 'matrix' or list values to sweep",
    ]


def test_references_to_matrix_steps(ws: Path) -> None:
    text = """
    name: x
    steps:
      train:
        run: echo > ${{ outputs.m }}
        matrix: {lr: [0.1, 0.2]}
        outputs: {m: }
      plain:
        run: echo > ${{ outputs.m }}
        outputs: {m: }
      use:
        run: echo ${{ steps.train.outputs.m }} ${{ steps.train[*].outputs.m }} ${{ steps.train[lr=0.3].outputs.m }}
        inputs:
          a: ${{ steps.train[lr=0.2].outputs.x }}
          b: ${{ steps.plain[lr=0.1].outputs.m }}
          c: ${{ steps.train[*].outputs.m }}
        needs: ["train[lr=0.1]", "train[lr=9]"]
    """
    assert problems(ws, text) == [
        (
            "mlpipe.yaml:11:15: steps.use.run: step 'train' has a matrix; name one instance, e.g. "
            "'steps.train[lr=0.1].outputs.m', or all: 'steps.train[*].outputs.m'"
        ),
        (
            "mlpipe.yaml:11:44: steps.use.run: '[*]' takes every instance of 'train': it can only be an input; "
            "declare an input 'NAME: ${{ steps.train[*].outputs.m }}' and use that"
        ),
        (
            "mlpipe.yaml:11:76: steps.use.run: step 'train' has no instance 'train[lr=0.3]'; "
            "did you mean 'train[lr=0.2]'?"
        ),
        "mlpipe.yaml:13:10: steps.use.inputs.a: step 'train' has no output 'x'; expected one of: m",
        "mlpipe.yaml:14:10: steps.use.inputs.b: step 'plain' has no matrix; use 'steps.plain.outputs.m'",
        "mlpipe.yaml:16:30: steps.use.needs: no step 'train[lr=9]'; did you mean 'train'?",
    ]


def test_too_many_combinations(ws: Path) -> None:
    values = ", ".join(str(i) for i in range(20))
    text = f"name: x\nsteps:\n  a:\n    run: 'true'\n    matrix: {{a: [{values}], b: [{values}]}}\n"
    assert problems(ws, text) == [
        "mlpipe.yaml:5:18: steps.a.matrix: 400 combinations; at most 256 instances per step"
    ]
