"""Registry credentials against the real htpasswd registry: Docker's config.json, credential helpers, precedence,
refused credentials, and that neither the secret nor mlpipe's registry settings reach steps, records or artifacts.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from pathlib import Path

import pytest

from mlpipe.cache.logins import find_credentials
from mlpipe.cache.registry import RegistryClient
from services.registry import REGISTRY_PASSWORD, REGISTRY_USER, Registry

PIPELINE = """\
name: auth
steps:
  a:
    code: a
    run: sh a.sh ${{ outputs.out }}
    outputs:
      out: {}
"""

FILES = {
    "mlpipe.yaml": PIPELINE,
    # The step's environment is its output: whatever a step could see would be pushed.
    "a/a.sh": 'set -e\nenv | sort > "$1/env.txt"\nhead -c 1100000 /dev/zero > "$1/big.bin"\n',
}


def github_env(tmp: Path) -> dict[str, str]:
    event = tmp / f"event-{uuid.uuid4().hex[:8]}.json"
    event.write_text(json.dumps({"repository": {"full_name": "org/auth", "default_branch": "main"}}))
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_EVENT_PATH": str(event),
    }


def cache_env(registry: Registry, repo: str, tmp: Path, **extra: str) -> dict[str, str]:
    return {"MLPIPE_CACHE": f"oci://{registry.host}/{repo}", **github_env(tmp), **extra}


def docker_config(directory: Path, config: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def auths(registry: Registry, user: str, password: str) -> dict:
    return {"auths": {registry.host: {"auth": b64(f"{user}:{password}")}}}


def credential_helper(bin_dir: Path, name: str, registry: Registry, user: str, secret: str) -> Path:
    """A `docker-credential-<name>` speaking Docker's protocol: `get`, the server URL on stdin, JSON out."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    calls = bin_dir / f"{name}.calls"
    helper = bin_dir / f"docker-credential-{name}"
    answer = json.dumps({"ServerURL": registry.host, "Username": user, "Secret": secret})
    helper.write_text(
        "#!/bin/sh\n"
        'read -r server\necho "$1 $server" >> ' + f"'{calls}'\n"
        f'if [ "$1" = get ] && [ "$server" = "{registry.host}" ]; then\n'
        f"  printf '%s\\n' '{answer}'\n"
        "  exit 0\nfi\n"
        "echo 'credentials not found in native keychain'\nexit 1\n"
    )
    helper.chmod(0o755)
    return calls


def helper_env(registry: Registry, tmp: Path, config: dict, bin_dir: Path) -> dict[str, str]:
    """A fresh repository, DOCKER_CONFIG holding `config`, and `bin_dir` (the helpers) first on PATH."""
    directory = docker_config(tmp / "docker", config)
    repo = f"t/helper-{uuid.uuid4().hex[:8]}"
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    return cache_env(registry, repo, tmp, DOCKER_CONFIG=str(directory), PATH=path)


def push_then_reuse(project_factory, env: dict[str, str]) -> tuple:
    a = project_factory(FILES, name=f"a-{uuid.uuid4().hex[:6]}")
    b = project_factory(FILES, name=f"b-{uuid.uuid4().hex[:6]}")
    out = a.run("ci-run", "--cache-required", env=env).assert_success()
    assert a.record()["options"]["cache"]["pushed"] == 1, out.output
    again = b.run("ci-run", "--cache-required", env=env).assert_success()
    assert b.record()["steps"]["a"]["status"] == "reused", again.output
    return a, b


def assert_secret_nowhere(secret: str, registry: Registry, *projects, outputs: tuple[str, ...] = ()) -> None:
    for text in outputs:
        assert secret not in text
    for project in projects:
        for path in (project.root / ".mlpipe").rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
    for path in (registry.storage / "docker/registry/v2/blobs").rglob("data"):
        assert secret.encode() not in path.read_bytes(), path


# -- Docker's config.json ----------------------------------------------------------------------------------
def test_auths_entry_in_docker_config_dir(project_factory, auth_registry, tmp_path):
    config = docker_config(tmp_path / "docker", auths(auth_registry, REGISTRY_USER, REGISTRY_PASSWORD))
    env = cache_env(auth_registry, f"t/cfg-{uuid.uuid4().hex[:8]}", tmp_path, DOCKER_CONFIG=str(config))
    a, b = push_then_reuse(project_factory, env)
    assert_secret_nowhere(REGISTRY_PASSWORD, auth_registry, a, b)


def test_auths_entry_in_home_docker_config(project_factory, auth_registry, tmp_path):
    home = tmp_path / "home"
    docker_config(home / ".docker", auths(auth_registry, REGISTRY_USER, REGISTRY_PASSWORD))
    env = cache_env(auth_registry, f"t/home-{uuid.uuid4().hex[:8]}", tmp_path, HOME=str(home))
    push_then_reuse(project_factory, env)


def test_creds_store_helper(project_factory, auth_registry, tmp_path):
    bin_dir = tmp_path / "bin"
    calls = credential_helper(bin_dir, "mlpipetest", auth_registry, REGISTRY_USER, REGISTRY_PASSWORD)
    config = {"auths": {auth_registry.host: {}}, "credsStore": "mlpipetest"}
    env = helper_env(auth_registry, tmp_path, config, bin_dir)
    a, b = push_then_reuse(project_factory, env)
    assert set(calls.read_text().splitlines()) == {f"get {auth_registry.host}"}
    assert_secret_nowhere(REGISTRY_PASSWORD, auth_registry, a, b)


def test_cred_helpers_entry_beats_creds_store_and_auths(project_factory, auth_registry, tmp_path):
    bin_dir = tmp_path / "bin"
    right = credential_helper(bin_dir, "right", auth_registry, REGISTRY_USER, REGISTRY_PASSWORD)
    wrong = credential_helper(bin_dir, "wrong", auth_registry, REGISTRY_USER, "wrong-store-secret")
    config = {
        **auths(auth_registry, REGISTRY_USER, "wrong-auths-secret"),
        "credsStore": "wrong",
        "credHelpers": {auth_registry.host: "right", "other.example:5000": "wrong"},
    }
    env = helper_env(auth_registry, tmp_path, config, bin_dir)
    push_then_reuse(project_factory, env)
    assert right.read_text().splitlines()[0] == f"get {auth_registry.host}"
    assert not wrong.exists()


# -- precedence ---------------------------------------------------------------------------------------------
def test_precedence_env_then_github_token_for_ghcr_then_docker_config(auth_registry, tmp_path):
    entries = auths(auth_registry, "from-config", "config-secret")["auths"]
    entries["ghcr.io"] = {"auth": b64("ghcr-config:ghcr-secret")}
    config = docker_config(tmp_path / "docker", {"auths": entries})
    mlpipe = {"MLPIPE_REGISTRY_USERNAME": "from-env", "MLPIPE_REGISTRY_PASSWORD": "env-secret"}
    github = {"GITHUB_TOKEN": "ghs_token", "GITHUB_ACTOR": "octocat"}
    base = {"DOCKER_CONFIG": str(config), "HOME": str(tmp_path / "nohome")}

    def found(host: str, **environ: str) -> tuple[str, str] | None:
        creds = find_credentials(host, {**base, **environ})
        return None if creds is None else (creds.username, creds.source)

    cfg = str(config / "config.json")
    assert found("ghcr.io", **mlpipe, **github) == (
        "from-env",
        "MLPIPE_REGISTRY_USERNAME/MLPIPE_REGISTRY_PASSWORD",
    )
    assert found("ghcr.io", **github) == ("octocat", "GITHUB_TOKEN")
    # The action's token under mlpipe's own name (which steps never see) beats a GITHUB_TOKEN of the job.
    assert found("ghcr.io", **github, MLPIPE_GITHUB_TOKEN="ghs_mlpipe") == ("octocat", "MLPIPE_GITHUB_TOKEN")
    assert found("ghcr.io") == ("ghcr-config", cfg)
    assert found(auth_registry.host, **github) == ("from-config", cfg)  # GITHUB_TOKEN is for ghcr.io only
    # Half of the MLPIPE pair is not a pair: the next source is used.
    assert found(auth_registry.host, MLPIPE_REGISTRY_USERNAME="from-env") == ("from-config", cfg)
    assert found("other.example", DOCKER_CONFIG=str(tmp_path / "none")) is None
    assert "env-secret" not in repr(find_credentials("ghcr.io", {**base, **mlpipe}))


@pytest.mark.parametrize(
    "entry",
    [
        lambda host: {f"https://{host}/v2/": {"auth": b64(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}")}},
        lambda host: {f"http://{host}": {"auth": b64(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}")}},
        lambda host: {host: {"username": REGISTRY_USER, "password": REGISTRY_PASSWORD}},
    ],
    ids=["url-key", "scheme-key", "username-password"],
)
def test_docker_config_entry_forms_docker_itself_accepts(auth_registry, tmp_path, entry):
    config = docker_config(tmp_path / "docker", {"auths": entry(auth_registry.host)})
    creds = find_credentials(auth_registry.host, {"DOCKER_CONFIG": str(config)})
    assert creds is not None and creds.username == REGISTRY_USER
    client = RegistryClient(auth_registry.host, credentials=creds)
    assert list(client.tags("t/entry-forms")) == []  # accepted (a 404 for a repository that does not exist)


def test_env_credentials_beat_a_docker_config_with_the_right_ones(project_factory, auth_registry, tmp_path):
    config = docker_config(tmp_path / "docker", auths(auth_registry, REGISTRY_USER, REGISTRY_PASSWORD))
    env = cache_env(
        auth_registry,
        "t/precedence",
        tmp_path,
        DOCKER_CONFIG=str(config),
        MLPIPE_REGISTRY_USERNAME=REGISTRY_USER,
        MLPIPE_REGISTRY_PASSWORD="wrong-env-secret-1",
    )
    p = project_factory(FILES)
    out = p.run("ci-run", "--cache-required", env=env)
    out.assert_code(1)
    assert "credentials from MLPIPE_REGISTRY_USERNAME/MLPIPE_REGISTRY_PASSWORD were refused" in out.stderr


# -- refused credentials ------------------------------------------------------------------------------------
def test_refused_docker_config_credentials_name_the_registry_the_file_and_the_fix(
    project_factory, auth_registry, tmp_path
):
    secret = "wrong-config-secret-42"
    config = docker_config(tmp_path / "docker", auths(auth_registry, REGISTRY_USER, secret))
    env = cache_env(auth_registry, "t/refused", tmp_path, DOCKER_CONFIG=str(config))
    p = project_factory(FILES)
    out = p.run("ci-run", env=env).assert_success()
    expected = (
        f"registry {auth_registry.host} answered 401: cannot pull from "
        f"t/refused: the credentials from {config / 'config.json'} were refused; fix them there (docker "
        "login), or set MLPIPE_REGISTRY_USERNAME and MLPIPE_REGISTRY_PASSWORD"
    )
    assert expected in out.stderr, out.stderr
    failed = p.run("ci-run", "--no-reuse", "--cache-required", env=env)
    failed.assert_code(1)
    assert f"cannot push to t/refused: the credentials from {config / 'config.json'} were refused" in (
        failed.stderr
    )
    assert_secret_nowhere(secret, auth_registry, p, outputs=(out.output, failed.output))


def test_no_credentials_say_where_mlpipe_looks(project_factory, auth_registry, tmp_path):
    env = cache_env(auth_registry, "t/anonymous", tmp_path, DOCKER_CONFIG=str(tmp_path / "none"))
    out = project_factory(FILES).run("ci-run", "--cache-required", env=env)
    out.assert_code(1)
    assert (
        f"registry {auth_registry.host} answered 401: cannot pull from t/anonymous: no credentials were found "
        "(set MLPIPE_REGISTRY_USERNAME and MLPIPE_REGISTRY_PASSWORD, GITHUB_TOKEN for ghcr.io, or log in with "
        "docker, podman, skopeo or buildah login)"
    ) in out.stderr


# -- steps never see mlpipe's registry settings or credentials -------------------------------------------------
def test_steps_never_see_registry_settings_or_credentials(project_factory, auth_registry, tmp_path):
    repo = f"t/env-{uuid.uuid4().hex[:8]}"
    env = cache_env(
        auth_registry,
        repo,
        tmp_path,
        MLPIPE_REGISTRY_USERNAME=REGISTRY_USER,
        MLPIPE_REGISTRY_PASSWORD=REGISTRY_PASSWORD,
        MLPIPE_REGISTRY_RETRY_BUDGET_S="20",
        MLPIPE_GITHUB_TOKEN="ghs_not_for_steps",
        STEP_MAY_SEE="yes",
    )
    p = project_factory(FILES)
    p.write({"dirty.txt": "x\n"})  # --allow-dirty-push matters
    out = p.run(
        "ci-run",
        "--cache-mode",
        "read-write",
        "--cache-required",
        "--allow-dirty-push",
        "--plain-http",
        env=env,
    ).assert_success()
    assert p.record()["options"]["cache"]["pushed"] == 1, out.output
    p.run("pull", "a", "--to", str(tmp_path / "pulled"), env=env).assert_success()
    seen = dict(
        line.split("=", 1)
        for line in (tmp_path / "pulled/out/env.txt").read_text().splitlines()
        if "=" in line
    )
    assert seen["STEP_MAY_SEE"] == "yes" and seen["MLPIPE_STEP"] == "a"
    leaked = sorted(
        name
        for name in seen
        if name.startswith(
            ("MLPIPE_CACHE", "MLPIPE_REGISTRY", "MLPIPE_INSECURE", "MLPIPE_ALLOW", "MLPIPE_GITHUB")
        )
    )
    assert leaked == []
    assert_secret_nowhere(REGISTRY_PASSWORD, auth_registry, p, outputs=(out.output,))


# -- bearer tokens: the registry's `auth: token` with a token service, as on ghcr.io and Docker Hub -----------
def token_env(registry, repo: str, tmp: Path, user: str, password: str, **extra: str) -> dict[str, str]:
    return cache_env(
        registry, repo, tmp, MLPIPE_REGISTRY_USERNAME=user, MLPIPE_REGISTRY_PASSWORD=password, **extra
    )


def test_bearer_tokens_push_and_pull_and_are_reused_across_requests(
    project_factory, token_registry, tmp_path
):
    from services.proxy import Proxy
    from services.token_server import WRITER, WRITER_PASSWORD

    tokens = token_registry.tokens
    repo = f"t/token-{uuid.uuid4().hex[:8]}"
    many = {
        **FILES,
        "a/a.sh": FILES["a/a.sh"] + 'for i in 1 2 3 4; do head -c 1100000 /dev/urandom > "$1/r$i"; done\n',
    }
    a = project_factory(many, name="a")
    b = project_factory(many, name="b")
    with Proxy(token_registry.port) as proxy:
        env = token_env(proxy, repo, tmp_path, WRITER, WRITER_PASSWORD)
        tokens.reset()
        out = a.run("ci-run", "--cache-required", env=env).assert_success()
        assert a.record()["options"]["cache"]["pushed"] == 1, out.output
        uploads = proxy.count("PUT", "/blobs/uploads/")
        assert uploads >= 6  # five raw layers, the env chunk, the config, the run record
        # One token to read, one to write: not one per blob, not one per request.
        assert tokens.token_requests(WRITER) == 2, tokens.grants
        assert len(proxy.requests) > 4 * tokens.token_requests()

        tokens.reset()
        b.run("ci-run", "--cache-required", env=env).assert_success()
        assert b.record()["steps"]["a"]["status"] == "reused"
        assert tokens.token_requests(WRITER) <= 2, tokens.grants
    assert_secret_nowhere(WRITER_PASSWORD, token_registry, a, b, outputs=(out.output,))


def test_a_pull_only_token_reads_but_cannot_push(project_factory, token_registry, tmp_path):
    from services.token_server import READER, READER_PASSWORD, WRITER, WRITER_PASSWORD

    repo = f"t/readonly-{uuid.uuid4().hex[:8]}"
    writer = project_factory(FILES, name="writer")
    writer_env = token_env(token_registry, repo, tmp_path, WRITER, WRITER_PASSWORD)
    writer.run("ci-run", "--cache-required", env=writer_env).assert_success()

    reader = project_factory(FILES, name="reader")
    env = token_env(token_registry, repo, tmp_path, READER, READER_PASSWORD)
    reader.run("ci-run", "--cache-mode", "read", "--cache-required", env=env).assert_success()
    assert reader.record()["steps"]["a"]["status"] == "reused"

    reader.write({"a/a.sh": FILES["a/a.sh"] + "# changed\n"})
    reader.commit()
    message = (
        f"registry {token_registry.host} answered 401: cannot push to {repo}: the credentials from "
        "MLPIPE_REGISTRY_USERNAME/MLPIPE_REGISTRY_PASSWORD may not push there (the registry's token grants "
        "less); check MLPIPE_REGISTRY_USERNAME and MLPIPE_REGISTRY_PASSWORD, or read only with --cache-mode read"
    )
    warned = reader.run("ci-run", env=env).assert_success()
    assert message in warned.stderr, warned.stderr
    assert reader.record()["steps"]["a"]["status"] == "ran"
    refused = reader.run("ci-run", "--no-reuse", "--cache-required", env=env)
    refused.assert_code(1)
    assert message in refused.stderr, refused.stderr
    fingerprint = reader.record()["steps"]["a"]["fingerprint"]
    tags = {
        p.name for p in (token_registry.storage / "docker/registry/v2/repositories" / repo).rglob("tags/*")
    }
    assert f"result-{fingerprint}" not in tags
    assert_secret_nowhere(READER_PASSWORD, token_registry, reader, outputs=(warned.output, refused.output))


CHAIN = """\
name: chain
steps:
  a:
    code: a
    run: sh a.sh ${{ outputs.out }}
    outputs: {out: {}}
  s:
    code: s
    run: sh s.sh ${{ inputs.x }} ${{ outputs.out }}
    inputs: {x: '${{ steps.a.outputs.out }}'}
    outputs: {out: {}}
  b:
    code: b
    run: sh b.sh ${{ inputs.x }} ${{ outputs.out }}
    inputs: {x: '${{ steps.s.outputs.out }}'}
    outputs: {out: {}}
"""
CHAIN_FILES = {
    "mlpipe.yaml": CHAIN,
    "a/a.sh": 'echo 1 > "$1/n"\n',
    "s/s.sh": 'cp "$1/n" "$2/n"\n',
    "b/b.sh": 'cp "$1/n" "$2/n"\necho b ran >&2\n',
}


def test_a_refused_push_stops_the_pushes_but_not_the_reads(project_factory, token_registry, tmp_path):
    """A token that may only pull (a PR job given `packages: read`): steps later in the run still reuse."""
    from services.token_server import READER, READER_PASSWORD, WRITER, WRITER_PASSWORD

    repo = f"t/pull-only-{uuid.uuid4().hex[:8]}"
    writer = project_factory(CHAIN_FILES, name="writer")
    writer.run(
        "ci-run", "--cache-required", env=token_env(token_registry, repo, tmp_path, WRITER, WRITER_PASSWORD)
    )

    reader = project_factory(CHAIN_FILES, name="reader")
    # a reruns (its push is refused), then s reruns for 2 s; b's input comes out unchanged, so b's fingerprint is
    # the writer's: found in the registry seconds after the refusal.
    reader.write(
        {"a/a.sh": CHAIN_FILES["a/a.sh"] + "# changed\n", "s/s.sh": "sleep 2\n" + CHAIN_FILES["s/s.sh"]}
    )
    reader.commit()
    out = reader.run(
        "ci-run", "-j", "1", env=token_env(token_registry, repo, tmp_path, READER, READER_PASSWORD)
    )
    out.assert_success()
    steps = reader.record()["steps"]
    assert {name: step["status"] for name, step in steps.items()} == {"a": "ran", "s": "ran", "b": "reused"}
    assert f"cannot push to {repo}" in out.stderr
    assert (
        f"still reading from oci://{token_registry.host}/{repo}, pushing nothing more in this run"
        in out.stderr
    )
    assert out.stderr.count("cannot push") == 1, out.stderr  # said once, not once per step
    assert reader.record()["options"]["cache"]["unavailable"] is False


def test_wrong_password_at_the_token_service_is_refused_by_name(project_factory, token_registry, tmp_path):
    from services.token_server import WRITER

    secret = "not-the-writer-password-9"
    env = token_env(token_registry, "t/token-wrong", tmp_path, WRITER, secret)
    out = project_factory(FILES).run("ci-run", "--cache-required", env=env)
    out.assert_code(1)
    assert (
        f"registry {token_registry.host} answered 401: cannot pull from t/token-wrong: the credentials from "
        "MLPIPE_REGISTRY_USERNAME/MLPIPE_REGISTRY_PASSWORD were refused; check MLPIPE_REGISTRY_USERNAME and "
        "MLPIPE_REGISTRY_PASSWORD"
    ) in out.stderr, out.stderr
    assert secret not in out.output


def test_anonymous_token_says_no_credentials_were_found(project_factory, token_registry, tmp_path):
    env = cache_env(token_registry, "t/token-anon", tmp_path, DOCKER_CONFIG=str(tmp_path / "none"))
    out = project_factory(FILES).run("ci-run", "--cache-required", env=env)
    out.assert_code(1)
    assert "cannot pull from t/token-anon: no credentials were found" in out.stderr, out.stderr


def test_a_container_step_cannot_pass_through_registry_credentials(project_factory):
    # A container gets only the variables its step passes through, and mlpipe's own names are refused there.
    project = project_factory(
        {
            "mlpipe.yaml": "name: c\nsteps:\n  s:\n    image: mlpipe-test/busybox:1\n"
            "    env-passthrough: [TOKEN, MLPIPE_REGISTRY_PASSWORD]\n    run: echo $TOKEN\n"
        }
    )
    out = project.run("ci-run", env={"MLPIPE_REGISTRY_PASSWORD": "container-secret-5"})
    out.assert_code(2)
    assert "steps.s.env-passthrough: MLPIPE_REGISTRY_PASSWORD" in out.stderr
    assert "container-secret-5" not in out.output
