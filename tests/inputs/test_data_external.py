"""`inputs: {raw: {path: /abs/path, external: true}}`: data on the runner, outside the workspace."""

from __future__ import annotations

import json

PIPELINE = """\
name: demo
steps:
  count:
    code: src
    run: {run}
    inputs:
      raw: {{path: '{path}', external: true}}
    outputs:
      n: {{type: file, path: n.txt}}
"""


def project_with(project_factory, outside, run="cat ${{ inputs.raw }}/a.txt > ${{ outputs.n }}"):
    return project_factory({"src/.keep": "", "mlpipe.yaml": PIPELINE.format(run=run, path=outside)})


def test_hashed_like_any_input_and_a_change_reruns_the_step(project_factory, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.txt").write_text("one\n")
    project = project_with(project_factory, outside)

    project.run("ci-run").assert_success()
    reused = project.run("ci-run", "--json").assert_success().json()
    (outside / "a.txt").write_text("two\n")
    changed = project.run("ci-run", "--json").assert_success().json()

    assert reused["steps"]["count"]["status"] == "reused"
    trees = [json.loads(p.read_text()) for p in (project.root / ".mlpipe/external").glob("*-trees.json")]
    assert [list(t["entries"]) for t in trees] == [["outside"]]  # the stat cache spares unchanged files
    assert changed["steps"]["count"]["status"] == "ran"
    old, new = (r["steps"]["count"]["parts"]["inputs"]["raw"] for r in (reused, changed))
    assert changed["steps"]["count"]["reasons"] == [
        f"input raw ({outside}) changed: {old[:19]} -> {new[:19]}"
    ]
    assert (project.root / "n.txt").read_text() == "two\n"


def test_a_step_that_modifies_it_fails(project_factory, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.txt").write_text("one\n")
    project = project_with(
        project_factory, outside, "echo x >> ${{ inputs.raw }}/a.txt; touch ${{ outputs.n }}"
    )

    out = project.run("ci-run").assert_code(1).output

    assert "the step modified its input 'raw'" in out


def test_a_missing_path_is_a_spec_error_at_its_line(project_factory, tmp_path):
    project = project_with(project_factory, tmp_path / "nowhere")

    out = project.run("ci-run").assert_code(2).output

    assert out == (
        f"mlpipe.yaml:7:19: steps.count.inputs.raw.path: external path '{tmp_path}/nowhere' does not exist; "
        "check the path on this machine\n"
    )
