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


WRITE_OUTSIDE = """\
name: x
steps:
  a:
    run: echo model > ${{ outputs.m }}; touch ran-a
    outputs:
      m: {type: file, path: PATH}
"""
LINK_FIX = "remove the link 'out' or make it a directory, or choose another path"
GIT_FIX = "check the output out to a path in the work tree: mlpipe never writes into .git/ or .mlpipe/"


@pytest.mark.parametrize(
    ("target", "path", "expected"),
    [
        (
            "OUTSIDE",
            "out/model.bin",
            (
                "path 'out/model.bin' goes through the symbolic link 'out' -> 'OUTSIDE', which leads outside the "
                f"workspace; {LINK_FIX}"
            ),
        ),
        (
            "../..",
            "out/model.bin",
            (
                "path 'out/model.bin' goes through the symbolic link 'out' -> '../..', which leads outside the "
                f"workspace; {LINK_FIX}"
            ),
        ),
        (
            ".git/hooks",
            "out/pre-commit",
            (
                "path 'out/pre-commit' goes through the symbolic link 'out' -> '.git/hooks', which leads into "
                f".git/; {LINK_FIX}"
            ),
        ),
        (
            None,
            "./.git/hooks/pre-commit",
            f"path '.git/hooks/pre-commit' is inside .git/, git's own data; {GIT_FIX}",
        ),
        (None, "a/../.git/config", f"path '.git/config' is inside .git/, git's own data; {GIT_FIX}"),
        (
            None,
            ".mlpipe/cache/objects/x",
            f"path '.mlpipe/cache/objects/x' is inside .mlpipe/, mlpipe's runs and store; {GIT_FIX}",
        ),
    ],
)
@pytest.mark.parametrize("command", ["validate", "ci-run"])
def test_an_output_path_that_would_write_outside_the_work_tree_is_refused_before_anything_runs(
    project_factory, tmp_path, target, path, expected, command
):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    project = project_factory({"mlpipe.yaml": WRITE_OUTSIDE.replace("PATH", path)}, commit=False)
    if target is not None:
        (project.root / "out").symlink_to(target.replace("OUTSIDE", str(outside)))
    project.commit("a committed link")  # git stores the link as a link: a clone has it too
    before = {p: p.read_bytes() for p in (project.root / ".git").rglob("*") if p.is_file()}

    outcome = project.run(command)

    outcome.assert_code(2)
    assert outcome.stdout == ""
    assert outcome.stderr == (
        f"mlpipe.yaml:6:29: steps.a.outputs.m.path: {expected.replace('OUTSIDE', str(outside))}\n"
    )
    assert list(outside.iterdir()) == []
    assert not (project.root / "ran-a").exists()
    assert not (project.root / ".mlpipe").exists()
    assert {p: p.read_bytes() for p in (project.root / ".git").rglob("*") if p.is_file()} == before


def test_an_output_path_through_a_link_inside_the_work_tree_is_checked_out(project_factory):
    project = project_factory({"models/.keep": "", "mlpipe.yaml": WRITE_OUTSIDE.replace("PATH", "out/model.bin")},
                              commit=False)  # fmt: skip
    (project.root / "out").symlink_to("models")
    project.commit("a link to a directory of the work tree")

    project.run("ci-run").assert_success()

    assert (project.root / "models/model.bin").read_text() == "model\n"


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
