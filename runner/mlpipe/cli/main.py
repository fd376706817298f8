"""The `mlpipe` command group and the one place user errors become messages and exit codes."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from mlpipe import __version__
from mlpipe.errors import MlpipeError, SpecError

# Subcommands are imported only when invoked, so `mlpipe --help` stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "ci-run": ("mlpipe.cli.ci_run", "Plan, run or reuse every step, record the run, print a summary."),
    "plan": ("mlpipe.cli.plan", "Say for each step whether it would run or be reused, and why."),
    "report": (
        "mlpipe.cli.report",
        "Merge a fan-out run's jobs into one run record; complete its check run.",
    ),
    "validate": ("mlpipe.cli.validate", "Check the pipeline file and report every problem."),
    "snapshot": ("mlpipe.cli.snapshot", "Print a directory's code snapshot: its git tree hash and files."),
    "runs": ("mlpipe.cli.runs", "List recorded runs, newest first."),
    "show": ("mlpipe.cli.show", "Show one run record."),
    "diff": ("mlpipe.cli.diff", "Which steps differ between two runs or commits, and the metrics diff."),
    "verify": ("mlpipe.cli.verify", "Check every artifact a release manifest names is stored and intact."),
    "reproduce": (
        "mlpipe.cli.reproduce",
        "Rerun a release or run from scratch in a temporary worktree; compare.",
    ),
    "checkout": (
        "mlpipe.cli.checkout",
        "Bring back the exact code a run ran on (fetched from the registry if needed).",
    ),
    "pull": ("mlpipe.cli.pull", "Check a step's stored outputs out into the workspace."),
    "fsck": (
        "mlpipe.cli.fsck",
        "Check the local store: every object, result and materialized output is whole.",
    ),
    "gc": ("mlpipe.cli.gc", "Remove cache entries no kept run points to, locally and in a registry."),
    "config": ("mlpipe.cli.config", "Show each setting and where its value came from."),
    "export": ("mlpipe.cli.export", "Print the resolved pipeline as canonical JSON."),
    "schema": ("mlpipe.cli.schema", "Print the JSON Schema of the pipeline file."),
    "data": (
        "mlpipe.cli.data",
        "Record data sets kept out of git; push them to and pull them from the store.",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[cmd_name][0])
        command: click.Command = module.command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlpipe")
def cli() -> None:
    """mlpipe runs the ML pipeline in mlpipe.yaml, reusing every step whose inputs did not change."""


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="mlpipe", standalone_mode=False)
    except MlpipeError as error:
        if isinstance(error, SpecError) and os.environ.get("GITHUB_ACTIONS") == "true":
            _annotate(error)
        else:
            # Spec problems already start with file:line:col, like a compiler's.
            click.echo(str(error) if isinstance(error, SpecError) else f"error: {error}", err=True)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except BrokenPipeError:
        # The reader of our output left (`| head`): nothing more to say to it, and no second error at exit.
        from mlpipe.report.terminal import stdout_closed

        stdout_closed(sys.stdout)
        sys.exit(141)  # as a shell reports a process ended by SIGPIPE
    except OSError as error:
        from mlpipe.diskspace import full_disk_anywhere, is_full

        if not is_full(error):
            raise
        click.echo(f"error: {full_disk_anywhere(error)}", err=True)
        sys.exit(1)


def _annotate(error: SpecError) -> None:
    """In GitHub Actions: each problem once, as an annotation at its line (the runner prints its text)."""
    from mlpipe.github.workflow import problem_commands

    for command in problem_commands(error.problems, _repository_path):
        click.echo(command, err=True)


def _repository_path(file: str) -> str:
    """`file` relative to the root of the git repository holding it (where GitHub's annotations point), else
    as given."""
    path = Path(os.path.abspath(file))
    for parent in path.parents:
        if (parent / ".git").exists():
            return path.relative_to(parent).as_posix()
    return file
