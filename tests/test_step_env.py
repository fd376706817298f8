"""A step's environment starts from the caller's, less mlpipe's own registry settings and credentials; the
settings come from flags, the environment and config files, and nothing writes the environment."""

from __future__ import annotations

import os

from mlpipe.config import settings
from mlpipe.ownvars import MLPIPE_PRIVATE_ENV, step_environment


def test_step_environment_drops_mlpipe_registry_settings_and_credentials():
    env = dict.fromkeys(MLPIPE_PRIVATE_ENV, "x")
    env.update(PATH="/bin", MLPIPE_KILL_GRACE_S="3", TOKEN="user's own")
    assert step_environment(env) == {"PATH": "/bin", "MLPIPE_KILL_GRACE_S": "3", "TOKEN": "user's own"}
    assert {"MLPIPE_REGISTRY_PASSWORD", "MLPIPE_REGISTRY_USERNAME", "MLPIPE_CACHE"} <= MLPIPE_PRIVATE_ENV


def test_flags_beat_the_environment_and_leave_it_alone():
    before = dict(os.environ)
    environ = {"MLPIPE_CACHE": "oci://127.0.0.1:5000/env", "MLPIPE_CACHE_MODE": "read"}
    got = settings(cli={"cache-mode": "off", "insecure": True}, environ=environ)
    assert (got.cache, got.cache_mode, got.insecure_registry) == ("oci://127.0.0.1:5000/env", "off", True)
    assert got.values["cache-mode"].source == "--cache-mode"
    assert (got.allow_dirty_push, got.cache_required) == (False, False)
    assert dict(os.environ) == before


def test_flag_variables_turn_flags_on():
    got = settings(environ={"MLPIPE_ALLOW_DIRTY_PUSH": "yes", "MLPIPE_CACHE_REQUIRED": "1"})
    assert (got.allow_dirty_push, got.cache_required, got.insecure_registry) == (True, True, False)
    assert got.remote_cache is None
