"""`mlpipe checkout RUN`: a run's exact code, from this clone or from a registry, against a real registry."""

from __future__ import annotations

import uuid

import pytest

from mlpipe_testing import Project

PIPELINE = """\
name: demo
steps:
  a:
    code: a
    run: sh a.sh ${{ inputs.data }} ${{ outputs.out }}
    inputs:
      data: data
    outputs:
      out: {}
"""

FILES = {
    "mlpipe.yaml": PIPELINE,
    "data/small.txt": "one\n",
    "a/a.sh": 'set -e\ncp -r "$1"/. "$2"/\n',
}


@pytest.fixture
def clones(project_factory):
    a = project_factory(FILES, name="runner-a")
    b = project_factory(FILES, name="runner-b")
    assert a.git("rev-parse", "HEAD") == b.git("rev-parse", "HEAD")
    return a, b


@pytest.fixture
def cache(registry) -> dict[str, str]:
    return {"MLPIPE_CACHE": f"oci://{registry.host}/t/{uuid.uuid4().hex[:12]}"}


def dirty_pushed_run(project: Project, env: dict[str, str]) -> dict:
    project.write({"data/small.txt": "dirty\n", "a/new.sh": "echo new\n"})
    project.run("ci-run", "--allow-dirty-push", env=env).assert_success()
    return project.record()


def test_another_clone_checks_out_a_dirty_run_fetched_from_the_registry(clones, cache, tmp_path):
    a, b = clones
    record = dirty_pushed_run(a, cache)
    run_id, ref = record["run_id"], record["git"]["snapshot_ref"]

    dest = tmp_path / "code"
    out = b.run("checkout", run_id[:12], "--to", str(dest), env=cache).assert_success().output
    assert f"run {run_id} ran on {ref} (from oci://" in out
    assert (dest / "data/small.txt").read_text() == "dirty\n"
    assert (dest / "a/new.sh").read_text() == "echo new\n"
    assert b.git("rev-parse", ref) == a.git("rev-parse", ref)
    assert not (dest / ".mlpipe").exists()  # the snapshot is the code as the snapshot rules see it

    # Now the ref is in b, the registry is not needed again.
    again = b.run("checkout", run_id, env={"MLPIPE_CACHE": ""}).assert_success().output
    assert "(from this clone)" in again and f"git worktree add DIR {ref}" in again


def test_a_dirty_run_not_pushed_says_where_to_look(clones, cache):
    a, b = clones
    a.write({"data/small.txt": "dirty\n"})
    a.run("ci-run", env=cache).assert_success()  # dirty: not pushed without --allow-dirty-push
    run_id = a.record()["run_id"]

    assert "(from this clone)" in a.run("checkout", run_id).assert_success().output
    missing = b.run("checkout", run_id, env=cache).assert_code(2).output
    assert f"no run matches {run_id!r} here or in oci://" in missing
    without_registry = b.run("checkout", run_id).assert_code(2).output
    assert "give --cache oci://" in without_registry


def test_a_clean_run_checks_out_its_commit(clones, tmp_path):
    a, _ = clones
    a.run("ci-run").assert_success()
    commit = a.record()["git"]["commit"]
    a.write({"data/small.txt": "later\n"})
    a.commit()

    dest = tmp_path / "old"
    out = a.run("checkout", "latest", "--to", str(dest)).assert_success().output
    assert f"ran on {commit}" in out
    assert (dest / "data/small.txt").read_text() == "one\n"
    assert a.run("checkout", "latest", "--to", str(dest)).assert_code(2).output.count("is not empty") == 1
