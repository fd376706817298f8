"""Cross-repository blob mount: a PR scope pushing outputs the trusted repository already holds moves no bytes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from mlpipe.cache.oci import result_tag
from mlpipe.cache.registry import Credentials, RegistryClient
from services.proxy import Proxy
from services.registry import Registry

PIPELINE = """\
name: mount
params:
  n: 1
steps:
  a:
    code: a
    run: sh a.sh ${{ outputs.out }} ${{ params.n }}
    outputs:
      out: {}
"""

FILES = {
    "mlpipe.yaml": PIPELINE,
    # The output ignores the param: a PR changing it gets a new fingerprint and the same output content.
    "a/a.sh": (
        'set -e\n: "$2"\necho small > "$1/small.txt"\n'
        'head -c 1500000 /dev/zero > "$1/big-1.bin"\nhead -c 1600000 /dev/zero | tr "\\0" x > "$1/big-2.bin"\n'
    ),
}


def github_env(tmp: Path, event: str, ref: str, payload: dict) -> dict[str, str]:
    path = tmp / f"event-{uuid.uuid4().hex[:8]}.json"
    path.write_text(
        json.dumps({"repository": {"full_name": "org/mount", "default_branch": "main"}, **payload})
    )
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_REF": ref,
        "GITHUB_EVENT_PATH": str(path),
    }


def layer_digests(client: RegistryClient, repo: str, fingerprint: str) -> set[str]:
    got = client.get_manifest(repo, result_tag(fingerprint))
    assert got is not None, f"{repo} has no result {fingerprint[:12]}"
    return {layer["digest"] for layer in json.loads(got[0])["layers"]}


@pytest.fixture(params=["plain", "token"])
def target(request) -> tuple[Registry, dict[str, str]]:
    """The plain registry, and one behind a token service: a mount's token needs pull on the source too."""
    if request.param == "plain":
        return request.getfixturevalue("registry"), {}
    from services.token_server import WRITER, WRITER_PASSWORD

    creds = {"MLPIPE_REGISTRY_USERNAME": WRITER, "MLPIPE_REGISTRY_PASSWORD": WRITER_PASSWORD}
    return request.getfixturevalue("token_registry"), creds


def test_a_pr_scope_mounts_the_trusted_repositorys_blobs_and_uploads_no_layer(
    project_factory, target, tmp_path
):
    registry, creds = target
    repo = f"t/{uuid.uuid4().hex[:12]}"
    trusted = project_factory(FILES, name="trusted")
    main = github_env(tmp_path, "push", "refs/heads/main", {})
    env = {"MLPIPE_CACHE": f"oci://{registry.host}/{repo}", **creds, **main}
    trusted.run("ci-run", "--cache-required", env=env).assert_success()
    trusted_fp = trusted.record()["steps"]["a"]["fingerprint"]

    pr = project_factory(FILES, name="pr")  # another runner: an empty local store
    same_repo_pr = {"pull_request": {"number": 7, "head": {"repo": {"full_name": "org/mount"}}}}
    with Proxy(registry.port) as proxy:
        env = {
            "MLPIPE_CACHE": f"oci://{proxy.host}/{repo}",
            **creds,
            **github_env(tmp_path, "pull_request", "refs/pull/7/merge", same_repo_pr),
        }
        out = pr.run("ci-run", "--cache-required", "-p", "n=2", env=env).assert_success()
        record = pr.record()
        assert record["options"]["cache"]["write"] == f"{repo}/pr-7"
        assert record["steps"]["a"]["status"] == "ran" and record["options"]["cache"]["pushed"] == 1, (
            out.output
        )
        requests = list(proxy.requests)

    user, password = creds.get("MLPIPE_REGISTRY_USERNAME"), creds.get("MLPIPE_REGISTRY_PASSWORD")
    client = RegistryClient(
        registry.host, credentials=Credentials(user, password) if user and password else None
    )
    layers = layer_digests(client, f"{repo}/pr-7", record["steps"]["a"]["fingerprint"])
    assert layers == layer_digests(client, repo, trusted_fp)  # same outputs, same deterministic layers
    assert len(layers) == 3  # the small file's directory layer and two files of their own
    mounts = {p for m, p in requests if m == "POST" and "mount=" in p}
    for digest in layers:
        assert f"/v2/{repo}/pr-7/blobs/uploads/?mount={digest}&from={repo}" in mounts, requests
    # Bytes went up only for what is new: the result's config, the run record and the 2-byte empty descriptor
    # (`{}`, the run record's layer); no layer, no chunked PATCH.
    puts = [p for m, p in requests if m == "PUT" and "/blobs/uploads/" in p]
    empty = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    assert len([p for p in puts if not p.endswith(empty)]) == 2, puts
    assert not any(digest in p for p in puts for digest in layers)
    assert not any(m == "PATCH" for m, _ in requests)
    for digest in layers:  # linked into the PR scope by the registry, from the blob it already held
        link = registry.storage / f"docker/registry/v2/repositories/{repo}/pr-7/_layers/sha256"
        assert (link / digest.removeprefix("sha256:") / "link").is_file()

    # The registry answered those mounts 201 Created: a mount into a third repository says so too.
    assert client.mount_blob(f"{repo}/pr-8", min(layers), repo) is True
    # and a mount of a blob the source does not hold starts a plain upload instead (202), never a false hit.
    assert client.mount_blob(f"{repo}/pr-8", "sha256:" + "0" * 64, repo) is False
