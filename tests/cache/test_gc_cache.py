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


def test_ghcr_gc_deletes_package_versions_through_githubs_packages_api(
    project_factory, registry, github_api, tmp_path
):
    """ghcr.io has no OCI delete API; the registry stands in for its tags, the API stand-in for its packages."""
    from mlpipe.cache.gc import Keep, gc_registry
    from mlpipe.cache.local import LocalStore
    from mlpipe.cache.oci import OciCache
    from mlpipe.cache.registry import RegistryClient
    from mlpipe.github.client import GitHubAPI
    from mlpipe.github.packages import GhcrPackages
    from service_fixtures import GITHUB_WRITE_TOKEN

    p = project_factory({"mlpipe.yaml": PIPELINE})
    name = f"demo/{uuid.uuid4().hex[:12]}"
    repo = f"t/{name}"
    env = {"MLPIPE_CACHE": f"oci://{registry.host}/{repo}", "MLPIPE_PROTECTED_REFS": "refs/heads/main"}
    for v in (1, 2):
        p.run("ci-run", "-p", f"v={v}", env=env).assert_success()
    newest = p.record()["steps"]["a"]["fingerprint"]
    client = RegistryClient(registry.host)
    tags = [*sorted(client.tags(repo)), "latest"]  # `latest`: a version mlpipe did not make
    base = f"/orgs/t/packages/container/{name.replace('/', '%2F')}"
    github_api.packages[base] = [
        {
            "id": 500 + i,
            "name": f"sha256:{i:064x}",
            "metadata": {"package_type": "container", "container": {"tags": [t]}},
        }
        for i, t in enumerate(tags)
    ]
    packages = GhcrPackages.for_repo(GitHubAPI(github_api.url, GITHUB_WRITE_TOKEN), repo)
    remote = OciCache(client, LocalStore(tmp_path / "store"))

    report = gc_registry(remote, repo, [], Keep(last=1), dry_run=False, packages=packages)

    assert len(report.removed_tags) == 2  # the old result and the old run record
    left = {t for v in github_api.packages[base] for t in v["metadata"]["container"]["tags"]}
    assert left == {
        "latest",
        f"result-{newest}",
        *(t for t in tags if t.startswith("run.") and t not in report.removed_tags),
    }
    deletes = [r for r in github_api.requests if r.method == "DELETE"]
    assert [r.operation for r in deletes] == ["packages/delete-package-version-for-org"] * 2
    assert all(r.status == 204 for r in deletes)
    assert github_api.violations == []
    assert set(client.tags(repo)) == set(tags) - {"latest"}  # nothing went through the OCI delete API


def test_ghcr_packages_of_a_user_are_deleted_through_the_users_endpoints(github_api):
    from mlpipe.github.client import GitHubAPI
    from mlpipe.github.packages import GhcrPackages
    from service_fixtures import GITHUB_WRITE_TOKEN

    def version(i: int, *tags: str) -> dict:
        return {"id": i, "name": f"sha256:{i:064x}", "metadata": {"container": {"tags": list(tags)}}}

    base = "/users/someone/packages/container/cache"
    github_api.packages[base] = [
        version(1, "run.x.1"),
        version(2, "result-a", "shared"),
        version(3, "result-b"),
    ]
    packages = GhcrPackages.for_repo(GitHubAPI(github_api.url, GITHUB_WRITE_TOKEN), "someone/cache")

    assert packages.delete_tags(["run.x.1", "result-a", "result-b"]) == ["run.x.1", "result-b"]

    assert [v["id"] for v in github_api.packages[base]] == [2]  # also tagged `shared`: kept
    assert [r.operation for r in github_api.requests if r.method == "DELETE"] == [
        "packages/delete-package-version-for-user"
    ] * 2
    assert github_api.violations == []
