"""Spec errors through the real `mlpipe` command: every problem at once, exit code 2, no traceback, and
nothing runs or is stored (no `.mlpipe/` directory appears, the cache is untouched)."""

from __future__ import annotations

import pytest

BROKEN = """\
name: demo
params: {C: 1.0}
steps:
  prepare:
    run: touch ran-prepare; echo ${{ outputs.data }}
    ouputs: {data: }
  train:
    run: touch ran-train ${{ params.c }}
    inputs:
      data: ${{ steps.prepar.outputs.data }}
"""

EXPECTED = (
    "mlpipe.yaml:5:34: steps.prepare.run: step 'prepare' has no output 'data'; "
    "declare it under steps.prepare.outputs\n"
    "mlpipe.yaml:6:5: steps.prepare.ouputs: unknown key 'ouputs'; did you mean 'outputs'?\n"
    "mlpipe.yaml:8:26: steps.train.run: no param 'c'; did you mean 'C'?\n"
    "mlpipe.yaml:10:13: steps.train.inputs.data: no step 'prepar'; did you mean 'prepare'?\n"
)


@pytest.mark.parametrize("command", [["ci-run"], ["plan"], ["plan", "--json"], ["validate"], ["export"]])
def test_a_broken_file_reports_every_problem_and_touches_nothing(project_factory, tmp_path, command):
    project = project_factory({"mlpipe.yaml": BROKEN})
    cache = tmp_path / "cache"

    outcome = project.run(*command, "--cache", str(cache)) if command[0] in {"ci-run", "plan"} else None
    outcome = outcome or project.run(*command)

    outcome.assert_code(2)
    assert outcome.stdout == ""
    assert outcome.stderr == EXPECTED
    assert "Traceback" not in outcome.output
    assert not (project.root / ".mlpipe").exists()
    assert not cache.exists()
    assert not list(project.root.glob("ran-*"))
    assert project.git("status", "--porcelain") == ""


def test_a_bad_param_override_is_a_spec_error(project_factory):
    project = project_factory({"mlpipe.yaml": "name: x\nparams: {C: 1.0}\nsteps:\n  a: {run: 'true'}\n"})

    outcome = project.run("ci-run", "-p", "C=abc")

    outcome.assert_code(2)
    assert outcome.stderr == "mlpipe.yaml:2:10: params.C: -p C=abc: expected a number, found 'abc'\n"
    assert not (project.root / ".mlpipe").exists()


def test_a_file_in_a_subdirectory_is_named_as_given(project_factory):
    project = project_factory({"ml/mlpipe.yaml": "name: x\nsteps:\n  a: {run: 'true', reuse: maybe}\n"})

    outcome = project.run("ci-run", "-f", "ml/mlpipe.yaml")

    outcome.assert_code(2)
    assert (
        outcome.stderr
        == "ml/mlpipe.yaml:3:27: steps.a.reuse: expected true or false, found the string 'maybe'\n"
    )
    assert not (project.root / "ml/.mlpipe").exists()


HOSTILE_FILES = {
    "deep": ("name: x\nsteps: " + "[" * 100_000 + "]" * 100_000 + "\n", "mlpipe.yaml:2:71: steps: lists and mappings nested more than 64 deep; a pipeline needs a few levels: flatten the file\n"),
    "bomb": (
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))
        + "name: x\nsteps: *i\n",
        "mlpipe.yaml:5:36: e: alias *d makes the document stand for more than 100000 values; write fewer aliases of large anchors\n",
    ),
    "tag": (
        "name: x\nsteps:\n  a: {run: !!python/object/apply:os.system ['touch pwned']}\n",
        "mlpipe.yaml:3:12: steps.a.run: YAML tag '!!python/object/apply:os.system' is not supported; use a plain string, number, boolean, list or mapping\n",
    ),
    "nul": (
        "name: x\x00\nsteps:\n  a: {run: 'true'}\n",
        "mlpipe.yaml:1:8: invalid YAML: the character '\\x00' (#x0000) is not allowed; remove it, or write it as an escape in a double-quoted string\n",
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(HOSTILE_FILES))
def test_a_hostile_pipeline_file_is_exit_2_with_its_place_and_no_traceback(project_factory, kind):
    text, expected = HOSTILE_FILES[kind]
    project = project_factory({"mlpipe.yaml": text})

    outcome = project.run("ci-run", timeout=60)

    outcome.assert_code(2)
    assert outcome.stderr == expected
    assert not (project.root / ".mlpipe").exists()
    assert not (project.root / "pwned").exists()
