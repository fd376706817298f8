"""The registry cache through the real CLI against a real distribution registry on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from mlpipe_testing import Project
from registry_testing import cache_env, github_env
from services.proxy import Fault, Proxy
from services.registry import REGISTRY_PASSWORD, REGISTRY_USER, Registry

PIPELINE = """\
name: demo
params:
  n: 3
steps:
  a:
    code: a
    run: sh a.sh ${{ inputs.data }} ${{ outputs.out }} ${{ params.n }}
    inputs:
      data: data
    outputs:
      out: {}
  b:
    code: b
    run: sh b.sh ${{ inputs.upstream }} ${{ outputs.result }}
    inputs:
      upstream: ${{ steps.a.outputs.out }}
    outputs:
      result: {type: file}
"""

FILES = {
    "mlpipe.yaml": PIPELINE,
    "data/small.txt": "one\ntwo\n",
    "data/big.bin": bytes(range(256)) * 8192,  # 2 MiB: a layer of its own
    # The output ignores the param: a param change gives a new fingerprint but the same output content.
    "a/a.sh": 'set -e\n: "$3"\ncp -r "$1"/. "$2"/\necho ran >> "$HOME/a-ran"\n',
    "b/b.sh": 'set -e\nls "$1" > "$2"\n',
}


def statuses(record: dict) -> dict[str, str]:
    return {name: step["status"] for name, step in record["steps"].items()}


@pytest.fixture
def repo_name() -> str:
    return f"t/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def clones(project_factory, tmp_path):
    """Two clones of one pipeline repository: two CI runners."""
    a = project_factory(FILES, name="runner-a")
    b = project_factory(FILES, name="runner-b")
    assert a.git("rev-parse", "HEAD") == b.git("rev-parse", "HEAD")
    return a, b


def test_runner_b_reuses_what_runner_a_pushed(clones, registry, repo_name, tmp_path):
    a, b = clones
    env = cache_env(registry.host, repo_name, tmp_path)
    a.run("ci-run", env=env).assert_success()
    first = a.record()
    assert statuses(first) == {"a": "ran", "b": "ran"}
    assert first["options"]["cache"]["pushed"] == 2
    assert first["options"]["cache"]["write"] == repo_name

    out = b.run("ci-run", env=env).assert_success()
    second = b.record()
    assert statuses(second) == {"a": "reused", "b": "reused"}, out.output
    assert second["steps"]["a"]["reused_from"]["run_id"] == first["run_id"]
    assert second["steps"]["b"]["outputs"] == first["steps"]["b"]["outputs"]
    b.run("pull", "a", "--to", str(tmp_path / "pulled"), env=env).assert_success()
    assert (tmp_path / "pulled/out/big.bin").read_bytes() == FILES["data/big.bin"]
    assert (tmp_path / "pulled/out/small.txt").read_text() == "one\ntwo\n"


def test_unchanged_outputs_upload_no_blob_and_warm_noop_makes_no_request(
    clones, registry, repo_name, tmp_path
):
    a, _ = clones
    with Proxy(registry.port) as proxy:
        env = cache_env(proxy.host, repo_name, tmp_path)
        a.run("ci-run", env=env).assert_success()
        layers = proxy.count("POST", "/blobs/uploads/")
        assert layers >= 4  # a's tar chunk, its big file, the configs, b's file, the run record

        proxy.reset()
        a.run("ci-run", env=env).assert_success()  # warm local store: everything reused locally
        assert statuses(a.record()) == {"a": "reused", "b": "reused"}
        assert proxy.requests == []

        proxy.reset()
        a.run("ci-run", "-p", "n=4", env=env).assert_success()  # new fingerprints, same output content
        record = a.record()
        assert statuses(record) == {"a": "ran", "b": "reused"}
        assert record["options"]["cache"]["pushed"] == 1
        # Only the new result config and the run record are new blobs; every output layer was HEADed.
        assert proxy.count("POST", "/blobs/uploads/") == 2, proxy.requests
        assert proxy.count("HEAD", "/blobs/sha256:") >= 4


def test_corrupt_blob_in_registry_storage_is_a_miss_with_a_warning(clones, registry, repo_name, tmp_path):
    a, b = clones
    env = cache_env(registry.host, repo_name, tmp_path)
    a.run("ci-run", env=env).assert_success()
    big = registry.blob_path("sha256:" + __import__("hashlib").sha256(FILES["data/big.bin"]).hexdigest())
    original = big.read_bytes()
    try:
        big.write_bytes(b"x" + original[1:])
        out = b.run("ci-run", env=env).assert_success()
        assert "does not match its digest" in out.stderr
        assert statuses(b.record())["a"] == "ran"
        objects = b.root / ".mlpipe/cache/objects"
        assert all(p.read_bytes() != b"x" + original[1:] for p in objects.rglob("*") if p.is_file())
    finally:
        big.write_bytes(original)


def test_registry_stopped_mid_run_is_warned_about_once_and_the_run_succeeds(project_factory, tmp_path):
    registry = Registry(tmp_path / "doomed")
    registry.start()
    try:
        files = {**FILES, "a/a.sh": FILES["a/a.sh"] + 'kill "$REGISTRY_PID"\nsleep 0.5\n'}
        p = project_factory(files)
        env = cache_env(
            registry.host,
            "t/doomed",
            tmp_path,
            REGISTRY_PID=str(registry.process.pid),
            MLPIPE_REGISTRY_RETRY_BUDGET_S="2",
        )
        out = p.run("ci-run", env=env, timeout=60).assert_success()
        assert out.stderr.count("is not answering") == 1, out.stderr
        record = p.record()
        assert statuses(record) == {"a": "ran", "b": "ran"}
        assert record["options"]["cache"]["unavailable"] is True

        required = p.run("ci-run", "--no-reuse", "--cache-required", env=env, timeout=60)
        required.assert_code(1)
    finally:
        registry.stop()


def test_5xx_and_429_are_retried_honouring_retry_after(clones, registry, repo_name, tmp_path):
    a, b = clones
    env = cache_env(registry.host, repo_name, tmp_path)
    a.run("ci-run", env=env).assert_success()
    with Proxy(registry.port) as proxy:
        proxy.faults = [
            Fault(503, 2, lambda m, p: "/manifests/" in p),
            Fault(429, 1, lambda m, p: "/blobs/" in p and m == "GET", {"Retry-After": "1"}),
        ]
        out = b.run("ci-run", env=cache_env(proxy.host, repo_name, tmp_path)).assert_success()
        assert statuses(b.record()) == {"a": "reused", "b": "reused"}, out.output
        assert all(f.times == 0 for f in proxy.faults)
        assert "warning" not in out.stderr


def test_wrong_credentials_are_a_clear_warning_or_an_error_when_required(
    project_factory, auth_registry, tmp_path
):
    p = project_factory(FILES)
    env = cache_env(
        auth_registry.host,
        "t/auth",
        tmp_path,
        MLPIPE_REGISTRY_USERNAME="mlpipe-test",
        MLPIPE_REGISTRY_PASSWORD="wrong-password-123",
    )
    out = p.run("ci-run", env=env).assert_success()
    message = (
        f"registry {auth_registry.host} answered 401: cannot pull from t/auth: the credentials from "
        "MLPIPE_REGISTRY_USERNAME/MLPIPE_REGISTRY_PASSWORD were refused"
    )
    assert message in out.stderr
    assert "wrong-password-123" not in out.output
    assert "wrong-password-123" not in json.dumps(p.record())

    failed = p.run("ci-run", "--no-reuse", "--cache-required", env=env)
    failed.assert_code(1)
    push_message = message.replace("cannot pull from", "cannot push to")
    assert (
        f"error: --cache-required: pushing {failed_fp(p)} to {auth_registry.host}/t/auth: {push_message}"
        in (failed.stderr)
    )


def failed_fp(project) -> str:
    return project.record()["steps"]["a"]["fingerprint"][:12]


def test_right_credentials_push_and_pull(clones, auth_registry, tmp_path):
    a, b = clones
    env = cache_env(
        auth_registry.host,
        "t/auth-ok",
        tmp_path,
        MLPIPE_REGISTRY_USERNAME=REGISTRY_USER,
        MLPIPE_REGISTRY_PASSWORD=REGISTRY_PASSWORD,
    )
    a.run("ci-run", env=env).assert_success()
    b.run("ci-run", env=env).assert_success()
    assert statuses(b.record()) == {"a": "reused", "b": "reused"}
    blobs = auth_registry.storage / "docker/registry/v2/blobs"
    for path in blobs.rglob("data"):
        assert REGISTRY_PASSWORD.encode() not in path.read_bytes()


def test_fork_pr_reads_but_never_writes(clones, registry, repo_name, tmp_path):
    a, b = clones
    a.run("ci-run", env=cache_env(registry.host, repo_name, tmp_path)).assert_success()
    b.write({"a/a.sh": FILES["a/a.sh"] + "# a comment\n"})
    b.commit()
    fork = {
        "pull_request": {"number": 7, "head": {"repo": {"full_name": "mallory/demo"}}},
    }
    env = {
        "MLPIPE_CACHE": f"oci://{registry.host}/{repo_name}",
        **github_env(tmp_path, event="pull_request", ref="refs/pull/7/merge", payload=fork),
    }
    b.run("ci-run", env=env).assert_success()
    record = b.record()
    assert statuses(record) == {"a": "ran", "b": "reused"}  # b's input came out the same
    cache = record["options"]["cache"]
    assert cache["write"] is None and "fork" in cache["why"]
    assert registry.repositories() == sorted({*registry.repositories()} - {f"{repo_name}/pr-7"})


def test_same_repo_pr_writes_its_scope_which_protected_runs_do_not_read(
    clones, registry, repo_name, tmp_path
):
    a, _ = clones
    a.write({"data/small.txt": "pr change\n"})
    a.commit()
    same = {"pull_request": {"number": 8, "head": {"repo": {"full_name": "org/demo"}}}}
    pr_env = {
        "MLPIPE_CACHE": f"oci://{registry.host}/{repo_name}",
        **github_env(tmp_path, event="pull_request", ref="refs/pull/8/merge", payload=same),
    }
    a.run("ci-run", env=pr_env).assert_success()
    assert a.record()["options"]["cache"]["write"] == f"{repo_name}/pr-8"
    assert f"{repo_name}/pr-8" in registry.repositories()

    # A later run of the same PR on another runner reads the PR scope.
    c = a.root.parent / "runner-c"
    subprocess.run(["git", "clone", "-q", str(a.root), str(c)], check=True)
    again = Project(c)
    again.run("ci-run", env=pr_env).assert_success()
    assert statuses(again.record()) == {"a": "reused", "b": "reused"}

    # The default branch at the same commit does not trust what the PR pushed.
    main_env = cache_env(registry.host, repo_name, tmp_path)
    d = a.root.parent / "runner-d"
    subprocess.run(["git", "clone", "-q", str(a.root), str(d)], check=True)
    Project(d).run("ci-run", env=main_env).assert_success()
    assert statuses(Project(d).record()) == {"a": "ran", "b": "ran"}


def test_read_mode_and_dirty_runs_do_not_push(clones, registry, repo_name, tmp_path):
    a, _ = clones
    env = cache_env(registry.host, repo_name, tmp_path)
    a.run("ci-run", "--cache-mode", "read", env=env).assert_success()
    assert a.record()["options"]["cache"]["write"] is None
    assert repo_name not in registry.repositories()

    a.write({"data/small.txt": "dirty\n"})
    a.run("ci-run", env=env).assert_success()
    assert "uncommitted" in a.record()["options"]["cache"]["why"]
    assert repo_name not in registry.repositories()

    a.run("ci-run", "--no-reuse", "--allow-dirty-push", env=env).assert_success()
    assert a.record()["options"]["cache"].get("pushed") == 2
    assert repo_name in registry.repositories()


def test_a_dirty_push_carries_its_code_snapshot_which_another_clone_can_unbundle(
    clones, registry, repo_name, tmp_path
):
    from mlpipe.cache.local import LocalStore
    from mlpipe.cache.oci import OciCache
    from mlpipe.cache.registry import RegistryClient

    a, b = clones
    env = cache_env(registry.host, repo_name, tmp_path)
    a.write({"data/small.txt": "dirty\n", "a/new.sh": "echo new\n"})
    a.run("ci-run", "--allow-dirty-push", env=env).assert_success()
    record = a.record()
    ref = record["git"]["snapshot_ref"]
    assert ref == f"refs/mlpipe/runs/{record['run_id']}"
    oci = OciCache(RegistryClient(registry.host), LocalStore(tmp_path / "store"))
    bundle = tmp_path / "run.bundle"
    assert oci.fetch_run_bundle(repo_name, record["options"]["cache"]["run_tag"], bundle)

    b.git("bundle", "verify", str(bundle))
    b.git("fetch", str(bundle), f"{ref}:{ref}")
    assert b.git("rev-parse", ref) == a.git("rev-parse", ref)
    assert b.git("show", f"{ref}:data/small.txt") == "dirty\n"
    assert b.git("show", f"{ref}:a/new.sh") == "echo new\n"
    assert b.git("rev-parse", f"{ref}^") == b.git("rev-parse", "HEAD")
    # A clean run's record carries no bundle.
    b.run("ci-run", env=env).assert_success()
    assert not oci.fetch_run_bundle(repo_name, b.record()["options"]["cache"]["run_tag"], tmp_path / "none")


def test_cache_mode_off_never_contacts_the_registry(project_factory, tmp_path):
    p = project_factory(FILES)
    env = cache_env("127.0.0.1:9", "t/off", tmp_path, MLPIPE_CACHE_MODE="off")
    p.run("ci-run", env=env).assert_success()
    assert "warning" not in p.run("ci-run", env=env).assert_success().stderr


def test_runs_lists_every_runners_history_from_the_registry(clones, registry, repo_name, tmp_path):
    a, b = clones
    env = cache_env(registry.host, repo_name, tmp_path)
    a.run("ci-run", env=env).assert_success()
    b.run("ci-run", env=env).assert_success()
    listed = b.run("runs", "--json", "--cache", f"oci://{registry.host}/{repo_name}", env=env)
    listed.assert_success()
    ids = [r["run_id"] for r in listed.json()["runs"]]
    assert a.record()["run_id"] in ids and b.record()["run_id"] in ids
    assert len(ids) == len(set(ids)) == 2


def test_bad_cache_urls_are_usage_errors(project_factory):
    p = project_factory(FILES)
    out = p.run("ci-run", env={"MLPIPE_CACHE": "oci://user:pw@127.0.0.1:5000/x"})
    out.assert_code(2)
    assert "pw" not in out.output.replace("password", "")
    out = p.run("ci-run", env={"MLPIPE_CACHE": "oci://127.0.0.1:5000/Upper"})
    out.assert_code(2)
    assert "expected oci://HOST[:PORT]/REPO" in out.stderr


def test_env_is_not_leaked(tmp_path):
    assert "MLPIPE_CACHE" not in os.environ
