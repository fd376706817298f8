"""mlpipe's own environment variables that a step's process never sees: its registry and cache settings and
their credentials (the registry password above all; a step that needs credentials gets them under its own
names). A leaf: config.py builds a step's environment with it, and every executor request drops them again."""

from __future__ import annotations

from collections.abc import Mapping

MLPIPE_PRIVATE_ENV = frozenset(
    {
        "MLPIPE_CACHE",
        "MLPIPE_CACHE_MODE",
        "MLPIPE_CACHE_REQUIRED",
        "MLPIPE_ALLOW_DIRTY_PUSH",
        "MLPIPE_INSECURE_REGISTRY",
        "MLPIPE_REGISTRY_USERNAME",
        "MLPIPE_REGISTRY_PASSWORD",
        "MLPIPE_REGISTRY_RETRY_BUDGET_S",
        "MLPIPE_GITHUB_TOKEN",
    }
)
"""mlpipe's own registry/cache settings and credentials: a step's process never sees them (the registry
password above all; a step that needs credentials gets them under its own names)."""


def step_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment a step starts from: the caller's (the command's settings' `environ`), less mlpipe's own
    settings and credentials. The runner adds the step's MLPIPE_STEP, MLPIPE_INPUT_*, ... to it."""
    return {name: value for name, value in environ.items() if name not in MLPIPE_PRIVATE_ENV}
