"""Reuse links, through the real CLI in Actions jobs and the GitHub API stand-in: a run made in CI records its
workflow run's URL (and stores it with each result), and a later run's "from run X" links to that workflow run in
the job summary and the check run; a URL not of GitHub's form is never recorded or linked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from github_testing import REPO, actions_job, push_payload
from mlpipe.github.summary import reused_from
from mlpipe_testing import Project
from service_fixtures import GITHUB_WRITE_TOKEN

PIPELINE = """\
name: links
steps:
  train:
    code: train
    run: echo trained > ${{ outputs.model }}
    outputs:
      model: {type: file}
"""


def ci_run(project: Project, tmp_path: Path, api: Any, name: str, **env: str):
    sha = project.git("rev-parse", "HEAD").strip()
    job = actions_job(
        tmp_path / name,
        event="push",
        payload=push_payload(sha),
        sha=sha,
        ref="refs/heads/main",
        token=GITHUB_WRITE_TOKEN,
        api_url=api.url,
    )
    outcome = project.run("ci-run", env={**job.env, **env}).assert_success()
    return outcome, job


def test_a_reused_step_links_to_the_workflow_run_that_made_its_result(project_factory, tmp_path, github_api):
    project = project_factory({"mlpipe.yaml": PIPELINE, "train/.keep": ""})
    ci_run(project, tmp_path, github_api, "first", GITHUB_RUN_ID="111")
    first = project.record()
    url = f"https://github.com/{REPO}/actions/runs/111"
    assert first["ci"] == {"run_url": url}
    assert f"CI run:    {url}" in project.run("show", first["run_id"]).assert_success().stdout

    _, job = ci_run(project, tmp_path, github_api, "second", GITHUB_RUN_ID="222")
    second = project.record()
    assert second["ci"] == {"run_url": f"https://github.com/{REPO}/actions/runs/222"}
    assert second["steps"]["train"]["reused_from"]["run_url"] == url
    link = f"| `train` | ♻️ reused |  | from run [{first['run_id']}]({url}) at "
    assert link in job.summary_file.read_text()
    checks = [r.body for r in github_api.requests if r.operation == "checks/update"]
    assert link in checks[-1]["output"]["summary"]
    assert github_api.violations == []


def test_a_workflow_run_url_not_of_githubs_form_is_neither_recorded_nor_linked(
    project_factory, tmp_path, github_api
):
    project = project_factory({"mlpipe.yaml": PIPELINE, "train/.keep": ""})
    hostile = {
        "GITHUB_RUN_ID": "1)[click](https://evil.example/x",
        "GITHUB_SERVER_URL": "javascript:alert(1)//",
    }
    for key, value in hostile.items():
        ci_run(project, tmp_path, github_api, f"bad-{key}", **{key: value})
        record = project.record()
        assert record["ci"] == {}
        assert "run_url" not in (record["steps"]["train"]["reused_from"] or {})
    _, job = ci_run(project, tmp_path, github_api, "after")
    assert "](" not in job.summary_file.read_text().split("| `train` |", 1)[1].split("\n", 1)[0]


def test_a_stored_link_is_shown_only_when_it_is_a_workflow_run_url():
    run_id = "20260101T000000000Z-0123456789abcdef"
    good = "https://ghe.example.com:8443/octo-org/ml.repo/actions/runs/42"
    assert reused_from({"run_id": run_id, "commit": "a" * 40, "run_url": good}) == (
        f"from run [{run_id}]({good}) at {'a' * 12}"
    )
    for bad in (
        "https://github.com/octo-org/ml-repo/actions/runs/42)[x](https://evil.example",
        "https://github.com/../../evil/actions/runs/42",
        "ftp://github.com/octo-org/ml-repo/actions/runs/42",
        "https://github.com/octo-org/ml-repo/pulls/42",
        42,
    ):
        assert reused_from({"run_id": run_id, "run_url": bad}) == f"from run {run_id}"
    assert reused_from({"run_id": "x](https://evil.example)", "run_url": good}) == (
        "from run x](https://evil.example)"
    )
