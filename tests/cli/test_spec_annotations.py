"""Pipeline-file errors in GitHub Actions, through the real CLI: each problem is one `::error` annotation at its
file (as a repository path), line and column, its values escaped as GitHub's workflow commands require; outside
Actions the same problems are `file:line:col` lines."""

from __future__ import annotations

from github_testing import actions_job, push_payload
from mlpipe_testing import Project

BROKEN = """\
name: broken
steps:
  train:
    code: .
    run: echo hi
    outputs:
      model: {kind: modle}
  evaluate:
    code: .
    run: echo ${{ steps.trian.outputs.model }}
"""


def job(project: Project, tmp_path) -> dict[str, str]:
    sha = project.git("rev-parse", "HEAD").strip()
    return actions_job(
        tmp_path / "job", event="push", payload=push_payload(sha), sha=sha, ref="refs/heads/main"
    ).env


def test_each_problem_is_one_error_annotation_at_its_repository_path(project_factory, tmp_path):
    project = project_factory({"ml/mlpipe.yaml": BROKEN})
    plain = project.run("validate", "-f", "ml/mlpipe.yaml").assert_code(2)
    problems = plain.stderr.splitlines()
    assert len(problems) == 2, plain.stderr
    assert all(p.startswith("ml/mlpipe.yaml:") for p in problems)

    for command in (("validate",), ("ci-run",), ("plan",)):
        # From the pipeline's own directory: the file is named `mlpipe.yaml`, the annotation `ml/mlpipe.yaml`.
        outcome = Project(project.root / "ml").run(*command, env=job(project, tmp_path)).assert_code(2)
        lines = outcome.stderr.splitlines()
        assert len(lines) == 2, outcome.stderr  # one line per problem: no plain copy beside the annotation
        for line, problem in zip(lines, problems, strict=True):
            where, text = problem.split(": ", 1)
            _, row, col = where.split(":")
            assert line == (
                f"::error file=ml/mlpipe.yaml,line={row},col={col},title=mlpipe%3A invalid pipeline file"
                f"::mlpipe.yaml:{row}:{col}: {text}"
            )


def test_untrusted_text_cannot_end_the_command_or_forge_another(project_factory, tmp_path):
    name = "we,ird:100%.yaml"
    forged = 'name: x\nsteps:\n  "a%0A::warning::forged":\n    run: echo\n'
    project = project_factory({name: forged})
    outcome = project.run("validate", "-f", name, env=job(project, tmp_path)).assert_code(2)
    lines = outcome.stderr.splitlines()
    assert lines, outcome.stderr
    for line in lines:
        assert line.startswith("::error file=we%2Cird%3A100%25.yaml,line=")
        props, message = line[len("::error ") :].split("::", 1)
        assert props.count(",") == 3  # file, line, col, title: nothing added
        assert "%0A" not in message.replace("%250A", "")  # the key's text is escaped, not decoded into a line
    assert any("a%250A::warning::forged" in line for line in lines), outcome.stderr
