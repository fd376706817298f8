"""Built step images through the OCI cache: real podman API, real distribution registry on 127.0.0.1.

Runner A builds a step's image and pushes it; runner B (another clone, the image removed from the engine)
loads it from the registry instead of building, so both fingerprint the same image id.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import pytest

from registry_testing import cache_env, github_env
from services.docker_proxy import DockerProxy
from services.proxy import Proxy
from services.registry import REGISTRY_PASSWORD, REGISTRY_USER, free_port

IMAGE = "mlpipe-test/busybox:1"
ACCEPT_IMAGES = (
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
)
STEP = "  s:\n    build: img\n    code: src\n    run: {command}\n"


def files(command: str = "cat /hello.txt") -> dict[str, str]:
    # A context of its own per test: the engine is shared by the session and keys builds by the context's tree.
    return {
        "img/Dockerfile": f"FROM {IMAGE}\nCOPY hello.txt /hello.txt\n",
        "img/hello.txt": f"hello from the build {uuid.uuid4().hex[:8]}\n",
        "src/x": "",
        "mlpipe.yaml": "name: c\nsteps:\n" + STEP.format(command=command),
    }


@pytest.fixture
def repo() -> str:
    return f"t/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def clones(project_factory):
    content = files()
    return project_factory(content, name="runner-a"), project_factory(content, name="runner-b")


def build_tag(project) -> str:
    return f"mlpipe-build/s:{project.git('rev-parse', 'HEAD:img').strip()[:12]}"


def engine_has(engine, tag: str) -> bool:
    return tag in engine.cli("images", "--format", "{{.Repository}}:{{.Tag}}")


def registry_json(registry, path: str, accept: str = "application/vnd.oci.image.manifest.v1+json") -> dict:
    request = urllib.request.Request(f"{registry.url}/v2/{path}", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def image_artifact(registry, repo: str) -> dict:
    """The one `image-*` manifest in `repo`."""
    (tag,) = [t for t in registry_json(registry, f"{repo}/tags/list")["tags"] if t.startswith("image-")]
    return registry_json(registry, f"{repo}/manifests/{tag}")


def manifest_status(registry, repo: str, digest: str) -> int:
    request = urllib.request.Request(
        f"{registry.url}/v2/{repo}/manifests/{digest}", method="HEAD", headers={"Accept": ACCEPT_IMAGES}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def image_config(registry, repo: str) -> dict:
    """The config of the one `image-*` artifact in `repo`: where the engine pushed the image."""
    return registry_json(registry, f"{repo}/blobs/{image_artifact(registry, repo)['config']['digest']}")


def pushed_image(registry, repo: str) -> dict:
    """The image manifest the engine pushed for the one `image-*` artifact in `repo`."""
    image = image_config(registry, repo)["image"]
    return registry_json(
        registry,
        f"{image['repository']}/manifests/{image['digest']}",
        ACCEPT_IMAGES,
    )


def requests_to(proxy: DockerProxy, fragment: str) -> int:
    return sum(1 for method, target, _ in proxy.requests if method == "POST" and fragment in target)


def test_runner_b_loads_the_image_runner_a_built_instead_of_building(
    engine, clones, registry, repo, tmp_path, monkeypatch
):
    a, b = clones
    env = cache_env(registry.host, repo, tmp_path)
    tag = build_tag(a)

    out = a.run("ci-run", env=env).assert_success().output
    assert f"mlpipe: step s: building its image from 'img' ({tag})" in out
    assert f"mlpipe: cache: pushed s image {tag} to {registry.host}/{repo}:image-" in out
    built = a.record()["steps"]["s"]["image"]
    assert (built["ref"], built["source"]) == (tag, "built")
    assert a.record()["options"]["cache"]["images"] == {"pushed": 1}
    manifest = image_artifact(registry, repo)
    assert manifest["artifactType"] == "application/vnd.mlpipe.image.v1+json"
    assert manifest["annotations"]["org.mlpipe.image.id"] == built["id"]
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.empty.v1+json"
    config = image_config(registry, repo)
    image = config["image"]
    assert (config["format"], image["id"], image["repository"]) == (
        "mlpipe.oci-image/2",
        built["id"],
        f"{repo}/images",
    )
    assert len(pushed_image(registry, repo)["layers"]) == 2  # the base image's layer and the COPY's
    engine.cli("rmi", "-f", tag)  # a plain `podman pull` of the recorded digest gives the image
    pulled = f"{registry.host}/{repo}/images@{image['digest']}"
    engine.cli("pull", "-q", pulled)
    assert engine.image_id(pulled) == built["id"]
    engine.cli("rmi", "-f", pulled)

    # runner B: an engine without the image
    plan = b.run("plan", env=env).assert_success().output
    assert "s     reuse   same fingerprint as run" in plan, plan  # the id came from the artifact's config
    assert not engine_has(engine, tag), "plan loads nothing"
    with DockerProxy(tmp_path / "proxy.sock", engine.socket) as proxy:
        monkeypatch.setenv("DOCKER_HOST", proxy.docker_host)
        b.run("ci-run", env=env).assert_success()
    assert b.record()["steps"]["s"]["status"] == "reused"
    assert (requests_to(proxy, "/build"), requests_to(proxy, "/images/create")) == (0, 0)
    assert not engine_has(engine, tag), "a reused step needs no image"

    b.write({"mlpipe.yaml": "name: c\nsteps:\n" + STEP.format(command="cat /hello.txt; echo again")})
    with DockerProxy(tmp_path / "proxy2.sock", engine.socket) as proxy:
        monkeypatch.setenv("DOCKER_HOST", proxy.docker_host)
        out = b.run("ci-run", env=env).assert_success().output
    assert "hello from the build" in out and "again" in out
    assert f"mlpipe: cache: fetched s image {tag} from {registry.host}/{repo}:image-" in out
    assert (requests_to(proxy, "/build"), requests_to(proxy, "/images/create")) == (0, 1)
    step = b.record()["steps"]["s"]
    assert step["status"] == "ran"
    assert (step["image"]["id"], step["image"]["source"], step["parts"]["image"]) == (
        built["id"],
        "registry",
        built["id"],
    )
    assert engine.image_id(tag) == built["id"]


def test_a_warm_rerun_asks_the_registry_nothing_and_read_or_off_modes_push_no_image(
    engine, project_factory, registry, repo, tmp_path
):
    project = project_factory(files())
    with Proxy(registry.port) as proxy:
        env = cache_env(proxy.host, repo, tmp_path)
        plan = project.run("plan", env=env).assert_success().output
        where = f"{build_tag(project)} is not in the container engine nor in the registry"
        assert f"s     run     its image must be built from 'img' ({where})" in plan, plan
        proxy.reset()
        project.run("ci-run", "--cache-mode", "off", env=env).assert_success()
        assert project.record()["steps"]["s"]["image"]["source"] == "built"
        assert proxy.requests == []

        project.run("ci-run", "--cache-mode", "read", "--no-reuse", env=env).assert_success()
        assert project.record()["steps"]["s"]["image"]["source"] == "engine"
        assert repo not in registry.repositories()
        assert proxy.count("POST", "/blobs/uploads/") == 0

        project.write({"mlpipe.yaml": "name: c\nsteps:\n" + STEP.format(command="echo second")})
        project.commit()
        project.run("ci-run", env=env).assert_success()  # may write: the image built before is pushed now
        assert project.record()["steps"]["s"]["image"]["source"] == "engine"
        assert image_artifact(registry, repo)["layers"]

        proxy.reset()
        project.run("ci-run", env=env).assert_success()
        assert project.record()["steps"]["s"]["status"] == "reused"
        assert proxy.requests == [], proxy.requests


@pytest.mark.parametrize(
    "damage",
    [lambda data: data[:-1] + bytes([data[-1] ^ 1]), None],
    ids=["corrupt", "missing"],
)
def test_a_corrupt_or_missing_image_blob_is_built_instead_with_a_warning(
    engine, clones, registry, repo, tmp_path, monkeypatch, damage
):
    a, b = clones
    env = cache_env(registry.host, repo, tmp_path)
    tag = build_tag(a)
    a.run("ci-run", env=env).assert_success()
    first = a.record()["steps"]["s"]["image"]["id"]
    layer = pushed_image(registry, repo)["layers"][-1]  # the COPY's: the engine has the base layer
    blob = registry.blob_path(layer["digest"])
    original = blob.read_bytes()
    engine.cli("rmi", "-f", tag)
    b.write({"mlpipe.yaml": "name: c\nsteps:\n" + STEP.format(command="echo changed")})  # so the step runs
    try:
        if damage is None:
            blob.unlink()
        else:
            blob.write_bytes(damage(original))
        with DockerProxy(tmp_path / "proxy.sock", engine.socket) as proxy:
            monkeypatch.setenv("DOCKER_HOST", proxy.docker_host)
            result = b.run("ci-run", env=env).assert_success()
    finally:
        blob.write_bytes(original)
    assert f"mlpipe: warning: ignoring registry image {registry.host}/{repo}:image-" in result.stderr
    assert "the engine could not pull it: " in result.stderr, result.stderr
    assert "; building it here" in result.stderr, result.stderr
    assert result.stderr.count("warning") == 1, result.stderr
    assert (requests_to(proxy, "/build"), requests_to(proxy, "/images/create")) == (1, 1)
    step = b.record()["steps"]["s"]
    assert (step["status"], step["image"]["source"]) == ("ran", "built")
    assert step["image"]["id"] != first


def test_plan_builds_nothing_and_says_which_image_must_be_built(engine, project_factory):
    project = project_factory(files())
    tag = build_tag(project)

    out = project.run("plan").assert_success().output

    assert out.splitlines()[2] == (
        f"s     run     its image must be built from 'img' ({tag} is not in the container engine)"
    )
    assert not engine_has(engine, tag)
    project.run("ci-run").assert_success()
    assert "s     reuse   same fingerprint as run" in project.run("plan").assert_success().output


def test_an_unreachable_registry_is_one_warning_and_a_build_or_an_error_when_required(
    engine, project_factory, tmp_path
):
    project = project_factory(files())
    tag = build_tag(project)
    env = cache_env(f"127.0.0.1:{free_port()}", "t/nowhere", tmp_path, MLPIPE_REGISTRY_RETRY_BUDGET_S="1")

    required = project.run("ci-run", "--cache-required", env=env, timeout=60)

    required.assert_code(1)
    assert "looking up the image of step s in " in required.stderr
    assert "(--cache-required)" in required.stderr
    assert not engine_has(engine, tag)

    out = project.run("ci-run", env=env, timeout=60).assert_success()
    assert out.stderr.count("mlpipe: warning:") == 1, out.stderr
    assert "is not answering" in out.stderr
    assert f"mlpipe: step s: building its image from 'img' ({tag})" in out.stderr
    assert project.record()["steps"]["s"]["image"]["source"] == "built"


MIB = 1 << 20
_MEASURED = """\
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:])
print(f"peak-rss-kib {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}", file=sys.stderr)
sys.exit(done.returncode)
"""


def run_measured(project, *args: str, env: dict[str, str]) -> tuple[str, float]:
    """`mlpipe ARGS` and its peak resident memory in MiB (the largest process the wrapper waited for: mlpipe)."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, sys.executable, "-m", "mlpipe", *args],
        check=False,
        cwd=project.root,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    peak = int(done.stderr.rsplit("peak-rss-kib ", 1)[1].split()[0])
    return done.stdout + done.stderr, peak / 1024


@pytest.mark.slow
def test_a_large_image_moves_through_the_engine_not_through_mlpipes_memory(
    engine, project_factory, registry, repo, tmp_path
):
    size = 192 * MIB
    project = project_factory({**files(), "img/big.bin": os.urandom(size)})
    project.write({"img/Dockerfile": f"FROM {IMAGE}\nCOPY hello.txt big.bin /\n"})
    project.commit()
    tag = build_tag(project)
    env = cache_env(registry.host, repo, tmp_path)

    _, pushed = run_measured(project, "ci-run", env=env)
    layer = pushed_image(registry, repo)["layers"][-1]
    assert layer["size"] > size
    engine.cli("rmi", "-f", tag)
    project.write({"mlpipe.yaml": "name: c\nsteps:\n" + STEP.format(command="wc -c /big.bin")})
    out, loaded = run_measured(project, "ci-run", env=env)

    assert f"{size} /big.bin" in out
    assert project.record()["steps"]["s"]["image"]["source"] == "registry"
    print(
        f"peak RSS with a {layer['size'] / MIB:.0f} MiB image: push {pushed:.0f} MiB, load {loaded:.0f} MiB"
    )
    assert pushed < size / MIB / 2 and loaded < size / MIB / 2, (
        pushed,
        loaded,
    )  # the engine moves the image: none of it is in mlpipe's memory


def test_an_image_a_pull_request_pushed_is_not_loaded_by_a_protected_run(
    engine, clones, registry, repo, tmp_path
):
    a, b = clones
    tag = build_tag(a)
    same_repo_pr = {"pull_request": {"number": 8, "head": {"repo": {"full_name": "org/demo"}}}}
    pr_env = {
        "MLPIPE_CACHE": f"oci://{registry.host}/{repo}",
        **github_env(tmp_path, event="pull_request", ref="refs/pull/8/merge", payload=same_repo_pr),
    }
    a.run("ci-run", env=pr_env).assert_success()
    assert image_artifact(registry, f"{repo}/pr-8")["layers"]
    engine.cli("rmi", "-f", tag)

    out = b.run("ci-run", env=cache_env(registry.host, repo, tmp_path)).assert_success()

    assert f"mlpipe: step s: building its image from 'img' ({tag})" in out.stderr
    assert b.record()["steps"]["s"]["image"]["source"] == "built"


def test_an_archive_that_would_retag_another_image_is_refused(
    engine, project_factory, registry, repo, tmp_path
):
    from mlpipe.cache.image_artifacts import IMAGE_ARTIFACT_TYPE, IMAGE_CONFIG_TYPE, IMAGE_FORMAT
    from mlpipe.cache.oci import _manifest
    from mlpipe.cache.registry import RegistryClient
    from mlpipe.digest import canonical_json
    from mlpipe.images.provide import build_key, image_tag
    from mlpipe.run.prepare import platform_id

    project = project_factory(files())
    tag = build_tag(project)
    # A writer of the trusted repository publishes, under this build's key, the test's base image tagged as itself.
    archive = tmp_path / "other.tar"
    engine.cli("save", "--format", "docker-archive", "-o", str(archive), IMAGE)
    other = engine.image_id(IMAGE)
    client = RegistryClient(registry.host)
    data = archive.read_bytes()
    layer = {"mediaType": "application/vnd.mlpipe.image.archive.v1.tar", "size": len(data)}
    layer["digest"] = "sha256:" + hashlib.sha256(data).hexdigest()
    client.upload_bytes(repo, str(layer["digest"]), data)
    config = canonical_json({"format": IMAGE_FORMAT, "image": {"id": other}, "trust": {"protected": True}})
    client.upload_bytes(repo, "sha256:" + hashlib.sha256(config).hexdigest(), config)
    key = build_key(project.git("rev-parse", "HEAD:img").strip(), "Dockerfile", platform_id())
    client.put_manifest(
        repo, image_tag(key), _manifest(IMAGE_ARTIFACT_TYPE, IMAGE_CONFIG_TYPE, config, [layer], {})
    )

    out = project.run("ci-run", env=cache_env(registry.host, repo, tmp_path)).assert_success()

    warning = f"mlpipe: warning: ignoring registry image {registry.host}/{repo}:{image_tag(key)[:18]}…: "
    assert f"{warning}the archive would tag 'localhost/{IMAGE}'; building it here" in out.stderr
    assert f"building its image from 'img' ({tag})" in out.stderr
    assert engine.image_id(IMAGE) == other


@pytest.mark.parametrize("forged", ["id", "repository"])
def test_a_pushed_image_that_is_not_the_recorded_one_is_a_warning_and_a_build(
    engine, project_factory, registry, repo, tmp_path, forged
):
    from mlpipe.cache.image_artifacts import IMAGE_ARTIFACT_TYPE, IMAGE_CONFIG_TYPE, IMAGE_FORMAT_PUSHED
    from mlpipe.cache.oci import _manifest, empty_layer
    from mlpipe.cache.registry import RegistryClient
    from mlpipe.digest import canonical_json
    from mlpipe.images.provide import IMAGE_MANIFEST_TYPES, build_key, image_tag
    from mlpipe.run.prepare import platform_id

    project = project_factory(files())
    tag = build_tag(project)
    # A writer of the trusted repository records, under this build's key, the base image pushed by the engine.
    elsewhere = f"{repo}/images" if forged == "id" else f"{repo}-other/images"
    engine.cli("push", IMAGE, f"{registry.host}/{elsewhere}:other")
    client = RegistryClient(registry.host)
    _, digest = client.get_manifest(elsewhere, "other", accept=IMAGE_MANIFEST_TYPES)
    recorded = "sha256:" + "0" * 64 if forged == "id" else engine.image_id(IMAGE)
    image = {"id": recorded, "repository": elsewhere, "digest": digest}
    config = canonical_json({"format": IMAGE_FORMAT_PUSHED, "image": image, "trust": {"protected": True}})
    client.upload_bytes(repo, "sha256:" + hashlib.sha256(config).hexdigest(), config)
    key = build_key(project.git("rev-parse", "HEAD:img").strip(), "Dockerfile", platform_id())
    layers = empty_layer(client, repo)
    client.put_manifest(
        repo, image_tag(key), _manifest(IMAGE_ARTIFACT_TYPE, IMAGE_CONFIG_TYPE, config, layers, {})
    )

    out = project.run("ci-run", env=cache_env(registry.host, repo, tmp_path)).assert_success()

    warning = f"mlpipe: warning: ignoring registry image {registry.host}/{repo}:{image_tag(key)[:18]}…: "
    why = (
        f"its digest {digest[:19]} gave image {engine.image_id(IMAGE)[:19]}, not the recorded {recorded[:19]}; "
        "building it here"
        if forged == "id"
        else f"its image is in {elsewhere!r}, not in {repo + '/images'!r}"
    )
    assert f"{warning}{why}" in out.stderr, out.stderr
    assert f"building its image from 'img' ({tag})" in out.stderr
    step = project.record()["steps"]["s"]
    assert step["image"]["source"] == "built" and step["image"]["id"] != recorded
    assert engine.image_id(tag) == step["image"]["id"]


def test_images_travel_with_the_runs_registry_credentials(engine, clones, auth_registry, repo, tmp_path):
    a, b = clones
    tag = build_tag(a)
    env = cache_env(
        auth_registry.host,
        repo,
        tmp_path,
        MLPIPE_REGISTRY_USERNAME=REGISTRY_USER,
        MLPIPE_REGISTRY_PASSWORD=REGISTRY_PASSWORD,
    )
    out = a.run("ci-run", env=env).assert_success().output
    assert f"mlpipe: cache: pushed s image {tag} to {auth_registry.host}/{repo}:image-" in out
    engine.cli("rmi", "-f", tag)
    b.write({"mlpipe.yaml": "name: c\nsteps:\n" + STEP.format(command="cat /hello.txt; echo again")})

    out = b.run("ci-run", env=env).assert_success().output

    assert f"mlpipe: cache: fetched s image {tag} from {auth_registry.host}/{repo}:image-" in out
    assert "building its image" not in out and REGISTRY_PASSWORD not in out


def test_an_image_push_refused_for_its_credentials_stops_the_pushes_not_the_reads(
    engine, project_factory, token_registry, repo, tmp_path
):
    from registry_testing import token_env
    from services.token_server import READER, READER_PASSWORD

    project = project_factory(files())
    tag = build_tag(project)

    out = project.run("ci-run", env=token_env(token_registry, repo, tmp_path, READER, READER_PASSWORD))

    out.assert_success()
    assert f"mlpipe: warning: pushing the image of step s to {token_registry.host}/{repo}: " in out.stderr
    assert out.stderr.count("cannot push") == 1, out.stderr  # the image's push; the result's is not tried
    assert f"still reading from oci://{token_registry.host}/{repo}, pushing nothing more" in out.stderr
    assert project.record()["options"]["cache"]["unavailable"] is False
    assert project.record()["steps"]["s"]["image"]["ref"] == tag


def test_a_changed_context_uploads_its_changed_layer_only_and_gc_removes_the_old_image(
    engine, project_factory, registry, repo, tmp_path
):
    project = project_factory(files(), name="gc")
    with Proxy(registry.port) as proxy:
        env = cache_env(proxy.host, repo, tmp_path)
        project.run("ci-run", env=env).assert_success()
        first_upload = proxy.uploaded
        old_tag, old_artifact, old_image = (
            build_tag(project),
            image_artifact(registry, repo),
            pushed_image(registry, repo),
        )
        old_digest = image_config(registry, repo)["image"]["digest"]
        project.write({"img/hello.txt": "a new context\n"})  # one line changed: the COPY layer only
        project.commit()
        proxy.reset()
        project.run("ci-run", env=env).assert_success()
        new_id = project.record()["steps"]["s"]["image"]["id"]
        changed_upload = proxy.uploaded

        url = f"oci://{proxy.host}/{repo}"
        report = (
            project.run("gc", "--keep-last", "1", "--cache", url, "--json", env=env).assert_success().json()
        )
    removed = report["registry"]["removed_tags"]
    assert len([t for t in removed if t.startswith("image-")]) == 1
    manifest = image_artifact(registry, repo)  # exactly one image artifact is left: the kept run's
    assert manifest != old_artifact
    config = registry_blob(registry, repo, manifest["config"]["digest"])
    assert json.loads(config)["image"]["id"] == new_id
    new_image, new_digest = pushed_image(registry, repo), image_config(registry, repo)["image"]["digest"]
    base = old_image["layers"][0]
    assert [layer["digest"] for layer in new_image["layers"]][:1] == [base["digest"]]
    assert new_image["layers"][1]["digest"] != old_image["layers"][1]["digest"]
    print(f"uploaded: first push {first_upload} B, after a one-line change {changed_upload} B")
    assert first_upload > base["size"] > 100_000  # the base layer went up once ...
    assert changed_upload < base["size"] / 4  # ... and not again: the changed layer, config and manifests
    assert f"{repo}/images@{old_digest}" in removed
    assert manifest_status(registry, f"{repo}/images", old_digest) == 404  # the engine's push is gone too
    assert manifest_status(registry, f"{repo}/images", new_digest) == 200
    engine.cli("rmi", "-f", old_tag, build_tag(project))
    pulled = f"{registry.host}/{repo}/images@{new_digest}"  # a push that reused the base layer pulls
    engine.cli("pull", "-q", pulled)
    assert engine.image_id(pulled) == new_id
    engine.cli("rmi", "-f", pulled)


def registry_blob(registry, repo: str, digest: str) -> bytes:
    with urllib.request.urlopen(f"{registry.url}/v2/{repo}/blobs/{digest}", timeout=10) as answer:
        return answer.read()
