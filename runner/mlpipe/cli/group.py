"""The `mlpipe` click group: its subcommands are imported only when invoked, so `mlpipe --help` stays fast."""

from __future__ import annotations

import importlib

import click

from mlpipe import __version__
from mlpipe.cli.commands import COMMANDS


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
