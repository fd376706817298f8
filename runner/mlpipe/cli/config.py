"""`mlpipe config --show`: each setting, its value, and where the value came from."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mlpipe.cli.options import file_option, json_option
from mlpipe.config import MODES, effective, load_settings, show_text
from mlpipe.errors import UsageError
from mlpipe.run.session import DEFAULT_FILE

CONFIG_FORMAT = "mlpipe.config/1"


@click.command("config")
@click.option("--show", is_flag=True, help="Print each setting, its value and where it came from.")
@file_option
@click.option("--cache", default=None, metavar="DIR|oci://HOST/REPO", help="As ci-run's --cache.")
@click.option("--cache-mode", type=click.Choice(MODES), default=None, help="As ci-run's --cache-mode.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="As ci-run's --jobs.")
@json_option
def command(
    show: bool, file: str | None, cache: str | None, cache_mode: str | None, jobs: int | None, as_json: bool
) -> None:
    """Settings come from the command line, then MLPIPE_* variables, then mlpipe.toml beside the pipeline
    file, then $XDG_CONFIG_HOME/mlpipe/config.toml."""
    if not show:
        raise UsageError("nothing to do: pass --show")
    root = Path(file or DEFAULT_FILE).resolve().parent
    settings = load_settings(root, cli={"cache": cache, "cache-mode": cache_mode, "jobs": jobs})
    shown = effective(settings, root)
    if as_json:
        values = {s.name: {"value": s.value, "source": s.source} for s in shown}
        click.echo(json.dumps({"format": CONFIG_FORMAT, "settings": values}, indent=1, sort_keys=True))
    else:
        click.echo(show_text(shown))
