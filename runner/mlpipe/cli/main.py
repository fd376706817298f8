"""The `mlpipe` command and the one place user errors become messages and exit codes.

A plain `mlpipe ci-run` or `mlpipe plan` (no option, no option's variable set: what a no-op in CI runs) runs
without importing click, ~8 ms of a ~150 ms no-op (issue 18); everything else goes through the click group in
`mlpipe.cli.group`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mlpipe.cli.commands import COMMANDS
from mlpipe.cli.echo import echo
from mlpipe.cli.plain import plain_command
from mlpipe.errors import MlpipeError, SpecError

__all__ = ["COMMANDS", "main"]


def __getattr__(name: str) -> Any:
    """`cli`, the click group, imported on first use (tests drive it with click's CliRunner)."""
    if name == "cli":
        from mlpipe.cli.group import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> Any:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        plain = plain_command(args, os.environ)
        return plain() if plain is not None else _with_click(args)
    except MlpipeError as error:
        if isinstance(error, SpecError) and os.environ.get("GITHUB_ACTIONS") == "true":
            _annotate(error)
        else:
            # Spec problems already start with file:line:col, like a compiler's.
            echo(str(error) if isinstance(error, SpecError) else f"error: {error}", err=True)
        sys.exit(error.exit_code)
    except BrokenPipeError:
        # The reader of our output left (`| head`): nothing more to say to it, and no second error at exit.
        from mlpipe.report.terminal import stdout_closed

        stdout_closed(sys.stdout)
        sys.exit(141)  # as a shell reports a process ended by SIGPIPE
    except OSError as error:
        from mlpipe.diskspace import full_disk_anywhere, is_full

        if not is_full(error):
            raise
        echo(f"error: {full_disk_anywhere(error)}", err=True)
        sys.exit(1)


def _with_click(args: list[str]) -> Any:
    """The command line parsed by click; click's own errors (usage, abort) become its messages and exit codes."""
    import click

    from mlpipe.cli.group import cli

    try:
        return cli.main(args=args, prog_name="mlpipe", standalone_mode=False)
    except click.exceptions.Abort:
        echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)


def _annotate(error: SpecError) -> None:
    """In GitHub Actions: each problem once, as an annotation at its line (the runner prints its text)."""
    from mlpipe.github.workflow import problem_commands

    for command in problem_commands(error.problems, _repository_path):
        echo(command, err=True)


def _repository_path(file: str) -> str:
    """`file` relative to the root of the git repository holding it (where GitHub's annotations point), else
    as given."""
    path = Path(os.path.abspath(file))
    for parent in path.parents:
        if (parent / ".git").exists():
            return path.relative_to(parent).as_posix()
    return file
