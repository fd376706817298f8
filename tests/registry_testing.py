"""The environment of a CI job whose cache is a registry: GitHub Actions' variables and MLPIPE_CACHE."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any


def github_env(tmp: Path, *, event: str = "push", ref: str = "refs/heads/main", payload: dict | None = None):
    path = tmp / f"event-{uuid.uuid4().hex[:8]}.json"
    base = {"repository": {"full_name": "org/demo", "default_branch": "main"}}
    path.write_text(json.dumps({**base, **(payload or {})}))
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_REF": ref,
        "GITHUB_EVENT_PATH": str(path),
    }


def cache_env(host: str, repo: str, tmp: Path, **extra: str) -> dict[str, str]:
    return {"MLPIPE_CACHE": f"oci://{host}/{repo}", **github_env(tmp), **extra}


def token_env(registry: Any, repo: str, tmp: Path, user: str, password: str, **extra: str) -> dict[str, str]:
    """A registry with bearer-token auth, as on ghcr.io, with the given user's credentials."""
    return cache_env(
        registry.host, repo, tmp, MLPIPE_REGISTRY_USERNAME=user, MLPIPE_REGISTRY_PASSWORD=password, **extra
    )
