"""Pull request runs against the local registry and the GitHub API stand-in: only what the PR touches reruns,
and the check run says why and shows the metrics diff against the base branch's run, found in the registry."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from github_testing import REPO, actions_job, pull_request_clone, pull_request_payload, push_payload
from mlpipe_testing import METRICS_FILES, Project, metrics_pipeline
from service_fixtures import GITHUB_READ_TOKEN, GITHUB_WRITE_TOKEN

PIPELINE = metrics_pipeline(
    "prdemo",
    """\
  lint:
    code: lint
    run: echo ok > ${{ outputs.log }}
    outputs:
      log: {type: file}
""",
)

FILES = {".gitignore": ".mlpipe/\n", "mlpipe.yaml": PIPELINE, **METRICS_FILES, "lint/.keep": ""}
TUNED = '# tuned\nprintf \'{"acc": 0.75}\' > "$3"\n'


def statuses(record: dict) -> dict[str, str]:
    return {name: step["status"] for name, step in record["steps"].items()}


@pytest.fixture
def setup(project_factory, registry, tmp_path, github_api):
    """main's run pushed by one runner; a PR branch changing train's code in a fresh clone (no local runs)."""
    cache = f"oci://{registry.host}/t/{uuid.uuid4().hex[:12]}"
    main = project_factory(FILES, name="main")
    base = main.git("rev-parse", "HEAD").strip()
    job = actions_job(
        tmp_path / "push", event="push", payload=push_payload(base), sha=base, ref="refs/heads/main"
    )
    main.run(
        "ci-run", env={**job.env, "MLPIPE_CACHE": cache, "MLPIPE_PUBLISH_CHECKS": "false"}
    ).assert_success()
    pr = pull_request_clone(main, tmp_path / "pr", {"train/train.sh": TUNED}, "tune train")
    return main, pr, base, cache


def run_pr(pr: Project, tmp_path: Path, api: Any, cache: str, base: str, *, fork: bool = False):
    head = pr.git("rev-parse", "HEAD").strip()
    payload = pull_request_payload(7, head, base, head_repo="mallory/ml-repo" if fork else REPO)
    job = actions_job(
        tmp_path / f"job-{uuid.uuid4().hex[:6]}",
        event="pull_request",
        payload=payload,
        sha=head,
        ref="refs/pull/7/merge",
        token=GITHUB_READ_TOKEN if fork else GITHUB_WRITE_TOKEN,
        api_url=api.url,
    )
    outcome = pr.run("ci-run", env={**job.env, "MLPIPE_CACHE": cache, "MLPIPE_GITHUB_THROTTLE_S": "0"})
    return outcome.assert_success(), job


def test_a_pr_reruns_only_the_changed_step_and_its_downstream_with_reasons_and_metrics_diff(
    setup, tmp_path, github_api
):
    main, pr, base, cache = setup
    base_run = main.record()["run_id"]
    outcome, job = run_pr(pr, tmp_path, github_api, cache, base)

    record = pr.record()
    assert statuses(record) == {"prepare": "reused", "train": "ran", "report": "ran", "lint": "reused"}
    assert record["options"]["cache"]["write"].endswith("/pr-7")
    old_tree = pr.git("rev-parse", f"{base}:train").strip()[:12]
    new_tree = pr.git("rev-parse", "HEAD:train").strip()[:12]
    summary = github_api.only_check_run()["output"]["summary"]
    assert github_api.violations == []
    assert f"### Compared with {base_run} ({base[:12]})" in summary
    assert (
        f"| `train` | changed | code changed ({old_tree} -> {new_tree})"
        "<br>`train.sh \\| 3 ++-`<br>`1 file changed, 2 insertions(+), 1 deletion(-)` |"
    ) in summary
    assert "| `report` | changed | input scores changed |" in summary
    assert "`prepare` | changed" not in summary and "`lint` | changed" not in summary
    assert "| `train` | `scores.acc` | 0.75 | 0.5 | +0.25 | 🟢 ▲ |" in summary
    assert summary in job.summary_file.read_text()
    # The console says the same in text.
    assert outcome.stdout.splitlines()[-1].split() == [
        "train",
        "scores.acc",
        "0.75",
        "0.5",
        "+0.25",
        "better",
    ]


def test_a_fork_pr_compares_from_the_registry_but_never_writes(setup, tmp_path, github_api, registry):
    main, pr, base, cache = setup
    before = registry.repositories()
    _, job = run_pr(pr, tmp_path, github_api, cache, base, fork=True)

    record = pr.record()
    assert statuses(record) == {"prepare": "reused", "train": "ran", "report": "ran", "lint": "reused"}
    assert record["options"]["cache"]["write"] is None and "fork" in record["options"]["cache"]["why"]
    assert registry.repositories() == before
    summary = job.summary_file.read_text()  # the read-only token cannot write checks: the job summary has it
    assert github_api.check_runs == {}
    assert f"### Compared with {main.record()['run_id']}" in summary
    assert "| `train` | `scores.acc` | 0.75 | 0.5 | +0.25 | 🟢 ▲ |" in summary


def test_a_pr_whose_base_never_ran_says_so(project_factory, tmp_path, github_api, registry):
    pr = project_factory(FILES, name="lonely")
    cache = f"oci://{registry.host}/t/{uuid.uuid4().hex[:12]}"
    outcome, job = run_pr(pr, tmp_path, github_api, cache, "f" * 40)

    assert f"No comparison with the base branch: no run of the base commit {'f' * 12} is recorded." in (
        job.summary_file.read_text()
    )
    assert outcome.stdout.endswith(
        f"no comparison with the base: no run of the base commit {'f' * 12} is recorded\n"
    )


def test_since_compares_with_a_commits_run_locally(project_factory):
    p = project_factory(FILES)
    p.run("ci-run").assert_success()
    p.write({"train/train.sh": TUNED})
    p.commit("tune")
    out = p.run("ci-run", "--since", "HEAD~1").assert_success().stdout
    assert statuses(p.record()) == {"prepare": "reused", "train": "ran", "report": "ran", "lint": "reused"}
    assert out.splitlines()[-1].split() == ["train", "scores.acc", "0.75", "0.5", "+0.25", "better"]

    p.write({"NOTES": "no run at this commit\n"})
    p.commit("notes")
    missing = p.run("ci-run", "--since", "HEAD").assert_code(2)
    head = p.git("rev-parse", "HEAD").strip()
    assert missing.stderr == (
        f"error: --since HEAD: no run of commit {head[:12]} is recorded here "
        "(pass --cache oci://… to look in a registry)\n"
    )


def test_plan_github_publishes_what_will_run_before_any_compute(setup, tmp_path, github_api):
    _, pr, base, cache = setup
    head = pr.git("rev-parse", "HEAD").strip()
    job = actions_job(
        tmp_path / "plan-job",
        event="pull_request",
        payload=pull_request_payload(7, head, base),
        sha=head,
        ref="refs/pull/7/merge",
        token=GITHUB_WRITE_TOKEN,
        api_url=github_api.url,
    )
    out = pr.run("plan", "--github", env={**job.env, "MLPIPE_CACHE": cache}).assert_success()

    assert github_api.violations == []
    check = github_api.only_check_run()
    assert (check["name"], check["head_sha"]) == ("mlpipe plan / prdemo", head)
    assert (check["status"], check["conclusion"]) == ("completed", "neutral")
    assert check["output"]["title"] == "prdemo: plan (2 to run, 2 reused)"
    summary = check["output"]["summary"]
    old_tree = pr.git("rev-parse", f"{base}:train").strip()[:12]
    new_tree = pr.git("rev-parse", "HEAD:train").strip()[:12]
    assert f"| `train` | ▶️ run | vs base: code changed ({old_tree} -> {new_tree}) |" in summary
    assert "| `report` | ▶️ run | upstream train will run" in summary
    assert "| `prepare` | ♻️ reuse | from run " in summary
    assert summary in job.summary_file.read_text()
    assert out.stdout.startswith("step ")  # the plan itself, as without --github
    assert not (pr.root / ".mlpipe/runs").exists()  # nothing ran


def test_plan_github_outside_actions_is_a_usage_error(project_factory):
    p = project_factory(FILES)
    out = p.run("plan", "--github").assert_code(2)
    assert out.stderr == (
        "error: --github publishes to GitHub Actions: run it in a workflow job (GITHUB_ACTIONS=true)\n"
    )


def test_plan_github_on_a_fork_pr_writes_the_job_summary_only(setup, tmp_path, github_api):
    _, pr, base, cache = setup
    head = pr.git("rev-parse", "HEAD").strip()
    job = actions_job(
        tmp_path / "fork-plan-job",
        event="pull_request",
        payload=pull_request_payload(7, head, base, head_repo="mallory/ml-repo"),
        sha=head,
        ref="refs/pull/7/merge",
        token=GITHUB_READ_TOKEN,
        api_url=github_api.url,
    )
    out = pr.run("plan", "--github", env={**job.env, "MLPIPE_CACHE": cache}).assert_success()

    assert github_api.check_runs == {}
    assert "::warning title=mlpipe::the token cannot write checks" in out.stderr
    assert [line for line in out.output.splitlines() if GITHUB_READ_TOKEN in line] == [
        f"::add-mask::{GITHUB_READ_TOKEN}"
    ]
    assert "## 📋 mlpipe · prdemo: plan" in job.summary_file.read_text()
