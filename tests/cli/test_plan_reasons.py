"""`plan` and `ci-run` name what changed in a fresh clone, whose store holds no result of its own: against the
newest run of the step in the registry, or, on a pull request, the base commit's run."""

from __future__ import annotations

import subprocess
import uuid

from mlpipe_testing import METRICS_FILES, Project, metrics_pipeline
from registry_testing import cache_env

PIPELINE = metrics_pipeline("reasons")
FILES = {"mlpipe.yaml": PIPELINE, **METRICS_FILES}


def test_a_fresh_clone_names_the_change_against_the_newest_run_in_the_registry(
    project_factory, registry, tmp_path
):
    repo = f"t/{uuid.uuid4().hex[:12]}"
    main = project_factory(FILES, name="main")
    main.run("ci-run", env=cache_env(registry.host, repo, tmp_path)).assert_success()
    main_run, commit = main.record()["run_id"], main.git("rev-parse", "HEAD").strip()
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(main.root), str(clone)], check=True)
    fresh = Project(clone)
    fresh.write({"mlpipe.yaml": PIPELINE.replace("lr: 0.1", "lr: 0.2")})
    fresh.commit("raise lr")

    env = {"MLPIPE_CACHE": f"oci://{registry.host}/{repo}"}
    plan = fresh.run("plan", "--json", env=env).assert_success().json()
    reasons = {s["name"]: s["reasons"] for s in plan["steps"]}
    assert reasons["train"] == ["param lr: 0.1 -> 0.2", f"vs run {main_run} at {commit[:10]}"]
    lr_line = 1 + PIPELINE.splitlines().index(next(x for x in PIPELINE.splitlines() if "lr: 0.1" in x))
    changed_at = {s["name"]: s["changed_at"] for s in plan["steps"]}
    assert changed_at["train"] == {"path": None, "line": lr_line}  # the param's line in the pipeline file
    # Without the registry nothing names an earlier run.
    assert fresh.run("plan", "--json").assert_success().json()["steps"][1]["reasons"] == [
        "no stored result for this step yet"
    ]
