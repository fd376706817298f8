"""A step's environment starts from the caller's, less mlpipe's own registry settings and credentials; the
settings come from flags, the environment and config files, and nothing writes the environment."""

from __future__ import annotations

import os

import pytest

from mlpipe.config import settings
from mlpipe.errors import UsageError
from mlpipe.ownvars import MLPIPE_PRIVATE_ENV, step_environment


def test_step_environment_drops_mlpipe_registry_settings_and_credentials():
    env = dict.fromkeys(MLPIPE_PRIVATE_ENV, "x")
    env.update(PATH="/bin", MLPIPE_KILL_GRACE_S="3", TOKEN="user's own")
    assert step_environment(env) == {"PATH": "/bin", "MLPIPE_KILL_GRACE_S": "3", "TOKEN": "user's own"}
    assert {"MLPIPE_REGISTRY_PASSWORD", "MLPIPE_REGISTRY_USERNAME", "MLPIPE_CACHE"} <= MLPIPE_PRIVATE_ENV


def test_flags_beat_the_environment_and_leave_it_alone():
    before = dict(os.environ)
    environ = {"MLPIPE_CACHE": "oci://127.0.0.1:5000/env", "MLPIPE_CACHE_MODE": "read"}
    got = settings(cli={"cache-mode": "off", "plain-http": True}, environ=environ)
    assert (got.cache, got.cache_mode, got.plain_http) == ("oci://127.0.0.1:5000/env", "off", True)
    assert got.values["cache-mode"].source == "--cache-mode"
    assert (got.allow_dirty_push, got.cache_required) == (False, False)
    assert dict(os.environ) == before


def test_flag_variables_turn_flags_on():
    got = settings(environ={"MLPIPE_ALLOW_DIRTY_PUSH": "yes", "MLPIPE_CACHE_REQUIRED": "1"})
    assert (got.allow_dirty_push, got.cache_required, got.plain_http) == (True, True, None)
    assert got.remote_cache is None


def test_plain_http_is_a_flag_a_variable_or_unset_and_insecure_is_its_old_name():
    def plain(cli: dict[str, object], **environ: str) -> bool | None:
        return settings(cli=cli, environ=environ).plain_http

    assert plain({}) is None  # plain HTTP to loopback hosts only
    assert plain({}, MLPIPE_PLAIN_HTTP="true") is True
    assert plain({}, MLPIPE_PLAIN_HTTP="0") is False
    assert plain({"plain-http": False}, MLPIPE_PLAIN_HTTP="true") is False  # --no-plain-http beats the env
    assert plain({"insecure": True}) is True  # the deprecated flag
    assert plain({}, MLPIPE_INSECURE_REGISTRY="1") is True  # the deprecated variable
    assert plain({}, MLPIPE_INSECURE_REGISTRY="1", MLPIPE_PLAIN_HTTP="false") is False
    assert settings(cli={"plain-http": False}).source("plain-http") == "--no-plain-http"
    assert (
        settings(environ={"MLPIPE_INSECURE_REGISTRY": "1"}).source("plain-http")
        == "env MLPIPE_INSECURE_REGISTRY"
    )
    with pytest.raises(UsageError) as raised:
        plain({}, MLPIPE_PLAIN_HTTP="maybe")
    assert str(raised.value) == (
        "MLPIPE_PLAIN_HTTP='maybe': expected true (plain HTTP) or false (HTTPS, also to loopback hosts); "
        "unset, plain HTTP goes to loopback hosts only"
    )
