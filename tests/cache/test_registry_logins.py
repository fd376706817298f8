"""Registry logins as the container tools write them (containers-auth.json(5)): a real `podman login` and
`buildah login` against the htpasswd registry, then mlpipe pushing and reusing with what they wrote; the order
the login files are read in; namespaced entries.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import uuid
from pathlib import Path

from test_registry_auth import FILES, assert_secret_nowhere, cache_env, push_then_reuse

from ci_testing import unavailable
from mlpipe.cache.logins import find_credentials
from mlpipe.cache.registry import RegistryClient
from services.registry import REGISTRY_PASSWORD, REGISTRY_USER, Registry


def login(tool: str, registry: Registry, env: dict[str, str]) -> None:
    """`podman login` / `buildah login`, writing where `env` tells it to (XDG_RUNTIME_DIR, REGISTRY_AUTH_FILE)."""
    if shutil.which(tool) is None:
        unavailable(f"{tool} is not installed (apt-get install podman buildah)")
    done = subprocess.run(
        [tool, "login", "--tls-verify=false", "-u", REGISTRY_USER, "--password-stdin", registry.host],
        input=REGISTRY_PASSWORD,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": env["HOME"], **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_auths(path: Path, entries: dict[str, str]) -> Path:
    """An auth.json (or config.json) whose `auths` map each key to `user:password`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": {key: {"auth": b64(pair)} for key, pair in entries.items()}}))
    return path


def test_podman_login_in_the_runtime_dir_pushes_and_reuses(project_factory, auth_registry, tmp_path):
    home, runtime = tmp_path / "home", tmp_path / "run"
    runtime.mkdir(mode=0o700)
    login("podman", auth_registry, {"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)})
    written = runtime / "containers/auth.json"
    assert auth_registry.host in json.loads(written.read_text())["auths"]
    env = cache_env(
        auth_registry,
        f"t/podman-{uuid.uuid4().hex[:8]}",
        tmp_path,
        HOME=str(home),
        XDG_RUNTIME_DIR=str(runtime),
        DOCKER_CONFIG=str(tmp_path / "no-docker"),
    )
    a, b = push_then_reuse(project_factory, env)
    assert_secret_nowhere(REGISTRY_PASSWORD, auth_registry, a, b)


def test_buildah_login_to_registry_auth_file(auth_registry, tmp_path):
    auth_file = tmp_path / "logins/auth.json"
    login("buildah", auth_registry, {"HOME": str(tmp_path / "home"), "REGISTRY_AUTH_FILE": str(auth_file)})
    creds = find_credentials(
        auth_registry.host, {"REGISTRY_AUTH_FILE": str(auth_file), "HOME": str(tmp_path / "home")}
    )
    assert creds is not None and (creds.username, creds.source) == (REGISTRY_USER, str(auth_file))
    client = RegistryClient(auth_registry.host, credentials=creds)
    assert list(client.tags("t/buildah-login")) == []  # accepted: a 404 for a repository that does not exist


def test_refused_auth_json_credentials_name_the_file_and_podman_login(
    project_factory, auth_registry, tmp_path
):
    auth_file = write_auths(
        tmp_path / "auth.json", {auth_registry.host: f"{REGISTRY_USER}:wrong-podman-pass"}
    )
    env = cache_env(auth_registry, "t/refused-podman", tmp_path, REGISTRY_AUTH_FILE=str(auth_file))
    out = project_factory(FILES).run("ci-run", "--cache-required", env=env)
    out.assert_code(1)
    assert (
        f"registry {auth_registry.host} answered 401: cannot pull from t/refused-podman: the credentials from "
        f"{auth_file} were refused; fix them there (podman login), or set MLPIPE_REGISTRY_USERNAME and "
        "MLPIPE_REGISTRY_PASSWORD"
    ) in out.stderr
    assert "wrong-podman-pass" not in out.output


def test_login_files_are_read_in_containers_auth_json_order(tmp_path):
    """REGISTRY_AUTH_FILE replaces the runtime dir's file; then XDG_CONFIG_HOME's, Docker's, ~/.dockercfg."""
    host = "registry.example:5000"
    home = tmp_path / "home"
    files = {
        "override": write_auths(tmp_path / "override.json", {host: "override:x"}),
        "runtime": write_auths(tmp_path / "run/containers/auth.json", {host: "runtime:x"}),
        "config": write_auths(tmp_path / "config/containers/auth.json", {host: "config:x"}),
        "docker": write_auths(tmp_path / "docker/config.json", {f"https://{host}/v1/": "docker:x"}),
        "legacy": home / ".dockercfg",
    }
    files["legacy"].parent.mkdir(parents=True)
    files["legacy"].write_text(json.dumps({f"https://{host}": {"auth": b64("legacy:x")}}))
    environ = {
        "HOME": str(home),
        "REGISTRY_AUTH_FILE": str(files["override"]),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "DOCKER_CONFIG": str(tmp_path / "docker"),
    }

    def user() -> str | None:
        found = find_credentials(host, environ)
        return None if found is None else found.username

    assert user() == "override"
    del environ["REGISTRY_AUTH_FILE"]
    assert user() == "runtime"
    for name in ("runtime", "config", "docker"):
        files[name].write_text(json.dumps({"auths": {"other.example": {"auth": b64("other:x")}}}))
        assert user() == {"runtime": "config", "config": "docker", "docker": "legacy"}[name]
    files["legacy"].unlink()
    assert user() is None


def test_a_namespace_entry_beats_the_hosts_for_repositories_under_it(tmp_path):
    host = "registry.example"
    auth = write_auths(
        tmp_path / "auth.json",
        {host: "host:x", f"{host}/team": "team:x", f"{host}/team/models": "models:x", f"{host}/te": "te:x"},
    )
    environ = {"REGISTRY_AUTH_FILE": str(auth), "HOME": str(tmp_path)}

    def user(repo: str) -> str | None:
        found = find_credentials(host, environ, repo=repo)
        return None if found is None else found.username

    assert user("team/models") == "models"
    assert user("team/models/cache") == "models"
    assert user("team/data") == "team"
    assert user("tea/data") == "host"  # a namespace is whole path components, not a prefix of one
    assert user("") == "host"
