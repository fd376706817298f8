"""`mlpipe data add|push|pull PATH`, `mlpipe data import oci://... PATH`: data sets recorded in a committed file, their content in the store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlpipe.cli.options import (
    cache_option,
    cache_read_options,
    cache_settings_options,
    cli_settings,
    file_option,
)
from mlpipe.errors import UsageError
from mlpipe.report.traffic import traffic_display
from mlpipe.run.session import pipeline_path
from mlpipe.text import human_size

if TYPE_CHECKING:
    from mlpipe.cache.base import ResultStore


@click.group("data")
def command() -> None:
    """Record data sets kept out of git (`PATH.mlpipe-data.json`) and move them to and from the store."""


def _workspace(file: str | None) -> Path:
    """The pipeline file's directory when there is one (its store is the one ci-run uses), else here."""
    try:
        return pipeline_path(file).resolve().parent
    except UsageError:  # no pipeline file: the data commands work without one
        if file is not None:
            raise
        return Path.cwd()


def _store(file: str | None, cache: str | None) -> ResultStore:
    from mlpipe.cli.options import given_settings
    from mlpipe.config import load_settings
    from mlpipe.run.session import open_store

    root = _workspace(file)
    return open_store(root, load_settings(root, cli=given_settings(cache)))[1]


@command.command("add", short_help="Record PATH in PATH.mlpipe-data.json and git-ignore it.")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def add_command(path: Path) -> None:
    """Write PATH.mlpipe-data.json (commit it) and add PATH to .gitignore when it is in the repository."""
    from mlpipe.digest import FileHasher
    from mlpipe.git.commands import find_repo
    from mlpipe.inputs.datasets import add

    repo = find_repo(path.absolute())
    added = add(path, FileHasher(), repo.root if repo else None)
    record = added.record
    click.echo(f"{added.record_file.name}: {record.digest} ({record.files} files, {human_size(record.size)})")
    if added.gitignored:
        click.echo(f"added {added.gitignored} to {path.absolute().parent / '.gitignore'}")
    click.echo(f"commit {added.record_file.name}; `mlpipe data push {path}` stores the data")


@command.command("import", short_help="Record an OCI artifact (as `oras push` makes them) as a data set.")
@click.argument("ref")
@click.argument("path", type=click.Path(path_type=Path))
@file_option
@cache_option
@cache_settings_options
def import_command(ref: str, path: Path, file: str | None, cache: str | None) -> None:
    """Fetch the OCI artifact REF (oci://HOST/REPO@sha256:..., as `oras push` makes them) into PATH and record
    it as a data set (PATH.mlpipe-data.json; commit it)."""
    from mlpipe.cli.options import given_settings
    from mlpipe.config import load_settings
    from mlpipe.git.commands import find_repo
    from mlpipe.inputs.base import RegistryAccess
    from mlpipe.inputs.datasets import import_oci

    settings = load_settings(_workspace(file), cli=given_settings(cache))
    access = RegistryAccess(plain_http=settings.plain_http, environ=settings.environ)
    parent = next(p for p in path.absolute().parents if p.exists())
    repo = find_repo(parent)
    added = import_oci(ref, path, _store(file, cache), access, repo.root if repo else None)
    record = added.record
    click.echo(f"{added.record_file.name}: {record.digest} ({record.files} files, {human_size(record.size)})")
    if added.gitignored:
        click.echo(f"added {added.gitignored} to {path.absolute().parent / '.gitignore'}")
    click.echo(f"commit {added.record_file.name}; `mlpipe data push {path}` stores the data in the registry")


@command.command("push", short_help="Store PATH's content locally, and in a registry with --cache oci://.")
@click.argument("path", type=click.Path(path_type=Path))
@file_option
@cache_option
@cache_settings_options
def push_command(path: Path, file: str | None, cache: str | None) -> None:
    """Store PATH's content (checked against its data file) locally, and in the registry with --cache oci://."""
    from mlpipe.inputs.datasets import push

    store = _store(file, cache)
    with traffic_display(cli_settings(cache).environ):
        result = push(path, store)
    click.echo(f"pushed {path} ({result.parts['data']})")


@command.command("pull", short_help="Restore PATH from the store or the registry, verified.")
@click.argument("path", type=click.Path(path_type=Path))
@file_option
@cache_option
@cache_read_options
def pull_command(path: Path, file: str | None, cache: str | None) -> None:
    """Restore PATH from the store (or the registry with --cache oci://), verified against its data file."""
    from mlpipe.inputs.datasets import pull

    store = _store(file, cache)
    with traffic_display(cli_settings(cache).environ):
        pulled = pull(path, store)
    click.echo(f"pulled {pulled}")
