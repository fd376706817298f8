"""Every executor gets its environment from StepRequest, which drops mlpipe's own registry settings."""

from __future__ import annotations

from pathlib import Path

from mlpipe.executors.base import MLPIPE_PRIVATE_ENV, StepRequest


def test_step_request_drops_mlpipe_registry_settings_and_credentials():
    env = dict.fromkeys(MLPIPE_PRIVATE_ENV, "x")
    env.update(PATH="/bin", MLPIPE_STEP="s", MLPIPE_RUN_ID="r", MLPIPE_OUTPUT_O="/o", TOKEN="user's own")
    request = StepRequest(step="s", command="true", cwd=Path("."), env=env, log_path=Path("log"))
    assert request.env == {
        "PATH": "/bin",
        "MLPIPE_STEP": "s",
        "MLPIPE_RUN_ID": "r",
        "MLPIPE_OUTPUT_O": "/o",
        "TOKEN": "user's own",
    }
    assert {"MLPIPE_REGISTRY_PASSWORD", "MLPIPE_REGISTRY_USERNAME", "MLPIPE_CACHE"} <= MLPIPE_PRIVATE_ENV
