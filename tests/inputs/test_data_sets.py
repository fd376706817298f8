"""`mlpipe data add/push/pull` and inputs that name a data file: data kept out of git, content in the store."""

from __future__ import annotations

import json
import shutil

from registry_testing import cache_env

PIPELINE = """\
name: demo
steps:
  count:
    code: src
    run: cat ${{ inputs.raw }}/*.txt > ${{ outputs.n }}
    inputs:
      raw: data/raw.mlpipe-data.json
    outputs:
      n: {type: file, path: n.txt}
"""
FILES = {"src/.keep": "", "data/raw/a.txt": "one\n", "data/raw/sub/b.bin": b"\x00\x01" * 5000}


def tree(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def added(project_factory, files=FILES, **kwargs):
    project = project_factory({**files}, commit=False, **kwargs)
    out = project.run("data", "add", "data/raw").assert_success().output
    project.write({"mlpipe.yaml": PIPELINE})
    project.commit("data recorded")
    return project, out


def test_add_records_the_digest_in_a_committed_file_and_ignores_the_data(project_factory):
    project, out = added(project_factory)

    record = json.loads((project.root / "data/raw.mlpipe-data.json").read_text())
    assert set(record) == {"format", "path", "digest", "type", "size", "files"}
    assert record["format"] == "mlpipe.data/1"
    assert (record["path"], record["type"], record["size"], record["files"]) == ("raw", "dir", 10004, 2)
    assert record["digest"].startswith("sha256:")
    assert (project.root / "data/.gitignore").read_text() == "/raw\n"
    assert project.git("ls-files", "data").split() == ["data/.gitignore", "data/raw.mlpipe-data.json"]
    assert out == (
        f"raw.mlpipe-data.json: {record['digest']} (2 files, 9.8 KiB)\n"
        f"added /raw to {project.root}/data/.gitignore\n"
        "commit raw.mlpipe-data.json; `mlpipe data push data/raw` stores the data\n"
    )


def test_push_then_pull_restores_the_data_verified(project_factory):
    project, _ = added(project_factory)
    before = tree(project.root / "data/raw")

    project.run("data", "push", "data/raw").assert_success()
    shutil.rmtree(project.root / "data/raw")
    out = project.run("data", "pull", "data/raw.mlpipe-data.json").assert_success().output

    assert out == "pulled data/raw\n"
    assert tree(project.root / "data/raw") == before
    (project.root / "data/raw/a.txt").write_text("still writable\n")  # a copy, not the store's objects


def test_push_refuses_data_changed_since_add_and_pull_says_what_is_missing(project_factory):
    project, _ = added(project_factory)
    recorded = json.loads((project.root / "data/raw.mlpipe-data.json").read_text())["digest"]

    missing = project.run("data", "pull", "data/raw").assert_success()  # in place and matching: nothing to do
    (project.root / "data/raw/a.txt").write_text("edited\n")
    changed = project.run("data", "push", "data/raw").assert_code(1).output
    shutil.rmtree(project.root / "data/raw")
    absent = project.run("data", "pull", "data/raw").assert_code(1).output

    assert missing.output == "pulled data/raw\n"
    assert changed.startswith(
        f"error: data/raw changed since it was recorded (recorded {recorded}, found sha256:"
    )
    assert changed.endswith("run `mlpipe data add data/raw` to record the new content\n")
    assert absent == (
        f"error: data set data/raw ({recorded}) is not in the store; "
        "run `mlpipe data push data/raw` where the data is (with the same --cache)\n"
    )


def test_ci_run_pulls_a_missing_data_set_from_the_store(project_factory, tmp_path):
    env = {"MLPIPE_CACHE": str(tmp_path / "shared-cache")}
    project, _ = added(project_factory)
    project.run("data", "push", "data/raw", env=env).assert_success()
    clone = project_factory({}, name="clone", commit=False)
    shutil.rmtree(clone.root)
    project.git("clone", "-q", str(project.root), str(clone.root))
    assert not (clone.root / "data/raw").exists()

    first = clone.run("ci-run", "--json", env=env).assert_success().json()
    again = project.run("ci-run", "--json", env=env).assert_success().json()

    assert (clone.root / "n.txt").read_text() == "one\n"
    assert tree(clone.root / "data/raw") == tree(project.root / "data/raw")
    assert first["steps"]["count"]["status"] == "ran"
    assert again["steps"]["count"]["status"] == "reused"


def test_data_changed_in_the_workspace_is_an_error_naming_the_input(project_factory):
    project, _ = added(project_factory)
    recorded = json.loads((project.root / "data/raw.mlpipe-data.json").read_text())["digest"]
    (project.root / "data/raw/a.txt").write_text("edited\n")

    out = project.run("ci-run").assert_code(1).output

    assert out.startswith(
        f"error: input 'raw': data/raw changed since data/raw.mlpipe-data.json was written (recorded {recorded}, "
        "found sha256:"
    )
    assert out.endswith(
        "run `mlpipe data add data/raw` to record it, or `mlpipe data pull data/raw` to restore the recorded data\n"
    )


def test_a_data_set_not_in_any_store_fails_its_step(project_factory):
    project, _ = added(project_factory)
    shutil.rmtree(project.root / "data/raw")

    out = project.run("ci-run").assert_code(1).output

    assert "count: failed: data set " in out
    assert "is not in the store; run `mlpipe data push" in out


def test_push_and_pull_through_a_registry(project_factory, registry, tmp_path):
    env = cache_env(registry.host, "t/data", tmp_path)
    project, _ = added(project_factory)
    before = tree(project.root / "data/raw")
    project.run("data", "push", "data/raw", env=env).assert_success()
    clone = project_factory({}, name="clone", commit=False)
    shutil.rmtree(clone.root)
    project.git("clone", "-q", str(project.root), str(clone.root))

    clone.run("data", "pull", "data/raw", env=env).assert_success()  # the clone's own, empty local store
    ran = clone.run("ci-run", "--json", env=env).assert_success().json()

    assert tree(clone.root / "data/raw") == before
    assert ran["steps"]["count"]["status"] == "ran"
