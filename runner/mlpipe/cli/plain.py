"""A plain `mlpipe ci-run` or `mlpipe plan`, parsed without click.

What CI runs on every push is `mlpipe ci-run` with no option, and a no-op is then ~150 ms, of which importing
click and the command's options is ~8 ms (issue 18). With no option on the command line and no variable that
one of its options reads, every option has its default: `plain_command` runs the command with those (the
values click would pass, pinned by tests/cli/test_plain.py), and answers None for anything else, which click
parses (`--help`, `--version`, a typo, any option).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

OPTION_VARIABLES = ("MLPIPE_SNAPSHOT_MAX_FILE_SIZE", "MLPIPE_PUBLISH_CHECKS")
"""The environment variables the options of `ci-run` and `plan` read (click's `envvar=`): set, click parses."""

DEFAULT_SETTINGS: dict[str, Any] = {"cache": None}
"""`mlpipe.cli.options.given_settings()` when no option is given: no registry flag, no `--cache`."""


def plain_command(args: list[str], environ: Mapping[str, str]) -> Callable[[], None] | None:
    """`ci-run` or `plan` with every option at its default, if `args` is just that command's name (and
    `environ`, the process's environment, sets no variable an option reads)."""
    if len(args) != 1 or any(name in environ for name in OPTION_VARIABLES):
        return None
    if args[0] == "ci-run":
        from mlpipe.api.source import Selected, Source
        from mlpipe.cli.ci_run_body import run_ci

        return lambda: run_ci(Source(settings=dict(DEFAULT_SETTINGS)), Selected())
    if args[0] == "plan":
        from mlpipe.api.source import Selected, Source
        from mlpipe.cli.plan_body import run_plan

        return lambda: run_plan(Source(settings=dict(DEFAULT_SETTINGS)), Selected())
    return None
