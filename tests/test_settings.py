"""config.Settings: every value from the environment is read once, into Settings, and says where it came from;
nothing else in the package reads mlpipe's settings from the process environment."""

from __future__ import annotations

import pathlib
import re

import pytest

import mlpipe
from mlpipe.config import settings
from mlpipe.errors import UsageError


def test_durations_come_from_the_settings_environment_with_their_defaults() -> None:
    env = {"MLPIPE_KILL_GRACE_S": "3", "MLPIPE_LOCK_TIMEOUT": "-5", "MLPIPE_GITHUB_THROTTLE_S": " 0 "}
    given = settings(environ=env)
    assert (given.kill_grace_s, given.lock_timeout_s, given.github_throttle_s) == (3.0, 0.0, 0.0)
    assert given.retry_budget_s == 30.0
    default = settings(environ={})
    assert (default.kill_grace_s, default.lock_timeout_s, default.github_throttle_s) == (10.0, 600.0, 10.0)


@pytest.mark.parametrize(
    "variable, prop",
    [
        ("MLPIPE_KILL_GRACE_S", "kill_grace_s"),
        ("MLPIPE_LOCK_TIMEOUT", "lock_timeout_s"),
        ("MLPIPE_GITHUB_THROTTLE_S", "github_throttle_s"),
        ("MLPIPE_REGISTRY_RETRY_BUDGET_S", "retry_budget_s"),
    ],
)
@pytest.mark.parametrize("value", ["soon", "nan"])
def test_a_duration_that_is_no_number_names_its_variable(variable: str, prop: str, value: str) -> None:
    with pytest.raises(UsageError) as caught:
        getattr(settings(environ={variable: value}), prop)
    assert str(caught.value) == f"{variable}={value!r}: expected a number of seconds"


def test_each_value_says_where_it_came_from() -> None:
    given = settings(
        cli={"insecure": True, "jobs": 4},
        environ={"MLPIPE_ALLOW_DIRTY_PUSH": "yes", "MLPIPE_CACHE_REQUIRED": "no", "MLPIPE_LOCK_TIMEOUT": "9"},
        files=[("mlpipe.toml", {"cache-mode": "read"})],
    )
    assert {name: given.source(name) for name in ("jobs", "cache-mode", "cache")} == {
        "jobs": "--jobs",
        "cache-mode": "mlpipe.toml",
        "cache": "default",
    }
    assert {name: given.source(name) for name in ("plain-http", "allow-dirty-push", "cache-required")} == {
        "plain-http": "--insecure",
        "allow-dirty-push": "env MLPIPE_ALLOW_DIRTY_PUSH",
        "cache-required": "default",
    }
    assert (given.plain_http, given.allow_dirty_push, given.cache_required) == (True, True, False)
    assert (given.source("MLPIPE_LOCK_TIMEOUT"), given.source("MLPIPE_KILL_GRACE_S")) == (
        "env MLPIPE_LOCK_TIMEOUT",
        "default",
    )


NOT_SETTINGS = {
    "config.py": "the one reader of mlpipe's settings",
    "git/commands.py": "the environment of a git child process",
    "git/snapshot.py": "git's own config variables, read as the git mlpipe runs reads them",
    "executors/docker.py": "DOCKER_HOST named in a message as the docker SDK reads it",
    "cli/main.py": "the error edge: a pipeline-file error in Actions is annotated, whether or not settings were read; "
    "and whether an option of a plain `ci-run`/`plan` is set by a variable (cli/plain.py), before any settings",
}


def test_only_config_reads_the_process_environment() -> None:
    """Everything else gets its values from Settings (resolved once) or an `environ` passed down."""
    package = pathlib.Path(mlpipe.__file__).parent
    reads = re.compile(r"\bos\.environ\b|\bgetenv\(")
    found = {
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if any(reads.search(line) for line in path.read_text().splitlines())
    }
    assert found == set(NOT_SETTINGS)
