"""`mlpipe snapshot [DIR] [--json]`: a directory's code snapshot, as a step would see it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mlpipe.git.snapshot import take_snapshot

JSON_VERSION = 1


@click.command("snapshot")
@click.argument("directory", default=".", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object with the tree id and the files.")
def command(directory: Path, as_json: bool) -> None:
    """Print DIR's code snapshot: its git tree id, then its files (ignore rules applied)."""
    snapshot = take_snapshot(directory)
    files = [f.path for f in snapshot.files]
    if as_json:
        click.echo(json.dumps({"version": JSON_VERSION, "tree": snapshot.tree, "files": files}, indent=2))
        return
    click.echo(snapshot.tree)
    for path in files:
        click.echo(path)
