"""`mlpipe gc` on the local store and on a registry: old entries go, entries of kept runs stay."""

from __future__ import annotations

import json
import uuid

from mlpipe_testing import Project

PIPELINE = """\
name: demo
params:
  v: 1
steps:
  a:
    run: echo ${{ params.v }} > ${{ outputs.out }}
    outputs:
      out: {type: file}
"""


def test_local_gc_keeps_what_the_newest_runs_point_to(project_factory):
    p: Project = project_factory({"mlpipe.yaml": PIPELINE})
    for v in (1, 2, 3):
        p.run("ci-run", "-p", f"v={v}").assert_success()
    fps = [r["steps"]["a"]["fingerprint"] for r in (p.record(f) for f in _ids(p))]
    results = p.root / ".mlpipe/cache/results"
    assert len(list(results.rglob("*.json"))) == 3

    dry = p.run("gc", "--keep-last", "1", "--dry-run", "--json").assert_success().json()
    assert sorted(dry["local"]["removed_entries"]) == sorted(fps[1:])
    assert len(list(results.rglob("*.json"))) == 3

    p.run("gc", "--keep-last", "1").assert_success()
    left = [path.stem for path in results.rglob("*.json")]
    assert left == [fps[0]]
    objects = [path for path in (p.root / ".mlpipe/cache/objects").rglob("*") if path.is_file()]
    assert len(objects) == 1 and objects[0].read_text() == "3\n"
    p.run("ci-run", "-p", "v=3").assert_success()
    assert p.record()["steps"]["a"]["status"] == "reused"


def test_gc_needs_exactly_one_rule(project_factory):
    p = project_factory({"mlpipe.yaml": PIPELINE})
    out = p.run("gc")
    out.assert_code(2)
    assert out.stderr == "error: give exactly one of --keep-days N and --keep-last N\n"


def test_registry_gc_deletes_manifests_no_kept_run_points_to(project_factory, registry, tmp_path):
    p = project_factory({"mlpipe.yaml": PIPELINE})
    repo = f"t/{uuid.uuid4().hex[:12]}"
    url = f"oci://{registry.host}/{repo}"
    env = {"MLPIPE_CACHE": url, "MLPIPE_PROTECTED_REFS": "refs/heads/main"}
    for v in (1, 2):
        p.run("ci-run", "-p", f"v={v}", env=env).assert_success()
    newest = p.record()["steps"]["a"]["fingerprint"]
    report = p.run("gc", "--keep-last", "1", "--cache", url, "--json", env=env).assert_success().json()
    assert len(report["registry"]["removed_entries"]) == 1
    assert len(report["registry"]["removed_tags"]) == 2  # the old result and the old run record

    from mlpipe.cache.registry import RegistryClient

    tags = list(RegistryClient(registry.host).tags(repo))
    assert f"result-{newest}" in tags
    assert len([t for t in tags if t.startswith("result-")]) == 1
    assert len([t for t in tags if t.startswith("run.")]) == 1


def _ids(p: Project) -> list[str]:
    listed = json.loads(p.run("runs", "--json").assert_success().stdout)
    return [r["run_id"] for r in listed["runs"]]
