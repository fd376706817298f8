"""Where a registry's credentials come from, first found wins: MLPIPE_REGISTRY_USERNAME/PASSWORD, then
MLPIPE_GITHUB_TOKEN or GITHUB_TOKEN for ghcr.io, then the files the container tools' logins write, read in the
order containers-auth.json(5) gives, as podman, skopeo and buildah read them:

1. `REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json` (`/run/containers/<uid>/auth.json`
   without XDG_RUNTIME_DIR), where `podman login`, `skopeo login` and `buildah login` write;
2. `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`;
3. Docker's `config.json` in `$DOCKER_CONFIG` or `~/.docker` (where `docker login` writes);
4. the legacy `~/.dockercfg`.

In each file a credential helper named for the host (`credHelpers`), then `credsStore`, then `auths`, whose
keys may name the host (in any form Docker writes: `https://HOST/v1/`) or a namespace on it (`HOST/org` or
`HOST/org/repo`, the longest that holds the repository wins). MLPIPE_GITHUB_TOKEN, unlike GITHUB_TOKEN, never
reaches steps (mlpipe.ownvars.step_environment). A `Credentials`' repr hides its secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

from mlpipe.frozen import frozen

ENV_PAIR = "MLPIPE_REGISTRY_USERNAME and MLPIPE_REGISTRY_PASSWORD"


@frozen
class Credentials:
    username: str
    password: str = field(repr=False)
    source: str = ""
    """Where they came from (an env var name, a login file, a credential helper), for messages."""


def fix_hint(credentials: Credentials) -> str:
    """How to fix refused credentials, by where they came from."""
    if credentials.source.startswith("MLPIPE_REGISTRY_"):
        return f"check {ENV_PAIR}"
    if credentials.source.endswith("GITHUB_TOKEN"):
        return (
            "give the workflow `permissions: packages: write` (read to pull only), or set "
            f"{ENV_PAIR} to a token that may use the package"
        )
    if credentials.source.startswith("docker-credential-"):
        return f"log in again (docker login), or set {ENV_PAIR}"
    login = "podman login" if credentials.source.endswith("auth.json") else "docker login"
    return f"fix them there ({login}), or set {ENV_PAIR}"


def find_credentials(
    host: str, environ: Mapping[str, str], home: Path | None = None, *, repo: str = ""
) -> Credentials | None:
    """The credentials for `repo` on `host` (see the module's docstring for where they are looked up)."""
    user, password = environ.get("MLPIPE_REGISTRY_USERNAME"), environ.get("MLPIPE_REGISTRY_PASSWORD")
    if user and password:
        return Credentials(user, password, "MLPIPE_REGISTRY_USERNAME/MLPIPE_REGISTRY_PASSWORD")
    if host == "ghcr.io":
        name = next((n for n in ("MLPIPE_GITHUB_TOKEN", "GITHUB_TOKEN") if environ.get(n)), None)
        if name is not None:
            return Credentials(environ.get("GITHUB_ACTOR") or "github-actions", environ[name], name)
    for path, legacy in login_files(environ, home):
        found = file_credentials(path, host, repo, legacy=legacy)
        if found is not None:
            return found
    return None


def login_files(environ: Mapping[str, str], home: Path | None = None) -> list[tuple[Path, bool]]:
    """The login files in the order they are read, each with whether it has the legacy `.dockercfg` form."""
    home = (home or Path(environ.get("HOME") or "~")).expanduser()
    if environ.get("REGISTRY_AUTH_FILE"):
        primary = Path(environ["REGISTRY_AUTH_FILE"])
    elif environ.get("XDG_RUNTIME_DIR"):
        primary = Path(environ["XDG_RUNTIME_DIR"]) / "containers/auth.json"
    else:
        primary = Path(f"/run/containers/{os.getuid()}/auth.json")
    config_home = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    docker = Path(environ.get("DOCKER_CONFIG") or home / ".docker") / "config.json"
    return [
        (primary, False),
        (config_home / "containers/auth.json", False),
        (docker, False),
        (home / ".dockercfg", True),
    ]


def file_credentials(path: Path, host: str, repo: str = "", *, legacy: bool = False) -> Credentials | None:
    """The credentials one login file holds for `repo` on `host`; None when it holds none (or cannot be read)."""
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(config, dict):
        return None
    if legacy:
        return _entry_credentials(_match(config, host, repo), str(path))
    helpers = config.get("credHelpers")
    helper = (helpers.get(host) if isinstance(helpers, dict) else None) or config.get("credsStore")
    if isinstance(helper, str) and helper:
        found = helper_credentials(helper, host)
        if found is not None:
            return found
    auths = config.get("auths")
    return _entry_credentials(_match(auths if isinstance(auths, dict) else {}, host, repo), str(path))


def _match(auths: Mapping[str, Any], host: str, repo: str) -> Any:
    """The entry for the longest key naming `host` or a namespace of it that holds `repo`."""
    parts = [p for p in repo.split("/") if p]
    for length in range(len(parts), -1, -1):
        scope = "/".join([host, *parts[:length]])
        for key, value in auths.items():
            if _normalized(key) == scope:
                return value
    return None


def _normalized(key: str) -> str:
    """A key with a scheme, as Docker writes it ("https://HOST/v1/", "http://HOST"), names HOST
    (Docker's ConvertToHostname); any other key names what it says (a host, or a namespace on one)."""
    if key.startswith(("https://", "http://")):
        return key.split("://", 1)[1].split("/", 1)[0]
    return key


def _entry_credentials(entry: Any, source: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    user, password = entry.get("username"), entry.get("password")
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
    if isinstance(user, str) and user and isinstance(password, str) and password:
        return Credentials(user, password, source)
    return None


def helper_credentials(helper: str, host: str) -> Credentials | None:
    """Ask `docker-credential-<helper> get` (Docker's credential helper protocol) for `host`'s credentials."""
    try:
        done = subprocess.run(
            [f"docker-credential-{helper}", "get"],
            input=host,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        data = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    if isinstance(data, dict) and data.get("Username") and data.get("Secret"):
        return Credentials(str(data["Username"]), str(data["Secret"]), f"docker-credential-{helper}")
    return None
