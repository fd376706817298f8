"""Opening a pipeline for a command: the file, its workspace, and the result store the command uses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpipe.errors import UsageError
from mlpipe.events import Sink, to_stderr
from mlpipe.frozen import frozen
from mlpipe.paths import Workspace
from mlpipe.run import pipecache
from mlpipe.spec.model import Pipeline
from mlpipe.spec.params import parse_overrides

if TYPE_CHECKING:  # `validate` only loads the file: the store and config stay unimported
    from mlpipe.cache.base import ResultStore
    from mlpipe.cache.local import LocalStore
    from mlpipe.cache.tiered import RemoteSettings
    from mlpipe.config import Settings
    from mlpipe.digest import FileHasher

DEFAULT_FILE = "mlpipe.yaml"


@frozen(eq=False, repr=False)
class Session:
    """What a command reads once: pipeline, workspace, store, hasher, settings."""

    pipeline: Pipeline
    workspace: Workspace
    store: ResultStore
    hasher: FileHasher
    settings: Settings
    """From the command line, the environment and the config files (`mlpipe.config`), read once."""


def pipeline_path(file: str | None) -> Path:
    path = Path(file or DEFAULT_FILE)
    if not path.is_file():
        if file is None:
            raise UsageError(
                f"no {DEFAULT_FILE} in {Path.cwd()}; run mlpipe where the pipeline file is, or pass -f FILE"
            )
        raise UsageError(f"pipeline file {file} does not exist")
    return path


def cache_dir(settings: Settings) -> Path | None:
    """The local store's directory when the settings name one (`--cache` beats MLPIPE_CACHE beats the config
    files); None: the workspace's `.mlpipe/cache`."""
    value = settings.cache
    if not value:
        return None
    if value.startswith("oci://"):
        return None  # a registry behind the workspace's local store; see Settings.remote_cache
    if "://" in value:
        scheme = value.split("://", 1)[0]
        raise UsageError(
            f"cache {value!r}: {scheme}:// caches are not supported; give a directory or oci://HOST/REPO"
        )
    return Path(value).expanduser().resolve()


def load(file: str | None, params: Sequence[str] = (), *, make_state: bool = False) -> Pipeline:
    """The pipeline file, through the parsed-pipeline cache (`make_state`: make `.mlpipe/` to store it in; a
    command that writes no state leaves a workspace without one as it is)."""
    # Paths in the file are relative to its directory (as in dvc.yaml), so a pipeline can live in a subdir.
    overrides = parse_overrides(list(params))
    return pipecache.load(pipeline_path(file), overrides, make_state=make_state)


def workspace_for(file: str | None, settings: Settings | None = None) -> Workspace:
    """The workspace of a pipeline file, without loading it (history commands work on a broken file); its store
    is where `settings` put it (`--cache DIR`, MLPIPE_CACHE, a config file), by default `.mlpipe/cache`."""
    root = pipeline_path(file).resolve().parent
    return Workspace(root, cache_override=cache_dir(settings) if settings is not None else None)


def open_session(
    file: str | None,
    params: Sequence[str] = (),
    cli: Mapping[str, Any] | None = None,
    *,
    sink: Sink = to_stderr,
) -> Session:
    """`cli`: the command line's settings by name (`cache`, `cache-mode`, `plain-http`, ...); `sink`: hears what
    the store says on the side (a run's reporters, through `events.Relay`)."""
    from mlpipe.config import load_settings

    pipeline = load(file, params, make_state=True)  # the store below makes `.mlpipe/` anyway
    settings = load_settings(pipeline.root, cli=cli or {})
    workspace, store, hasher = open_store(pipeline.root, settings, sink=sink)
    return Session(pipeline, workspace, store, hasher, settings)


def open_store(
    root: Path, settings: Settings, *, sink: Sink = to_stderr
) -> tuple[Workspace, ResultStore, FileHasher]:
    """The workspace at `root`, its result store (with the settings' registry behind it) and file hasher: how
    every command gets its store. `sink` hears the store's warnings and transfer notes."""
    from mlpipe.digest import FileHasher
    from mlpipe.statcache import StatCache

    workspace = Workspace(root, cache_override=cache_dir(settings))
    hasher = FileHasher(
        StatCache(workspace.state / "statcache.json", workspace.root, exclude=workspace.state)
    )
    return workspace, store_of(workspace, settings, hasher, sink=sink), hasher


def store_of(
    workspace: Workspace, settings: Settings, hasher: FileHasher | None = None, *, sink: Sink = to_stderr
) -> ResultStore:
    """The result store of `workspace`: its local store, with the settings' registry behind it if they name one."""
    local = local_store(workspace, hasher, sink=sink)
    if settings.remote_cache is None:
        return local
    from mlpipe.run.stores import remote_settings, tiered  # requests and oras only with a registry

    remote = remote_settings(settings)
    return local if remote is None else tiered(local, remote, workspace.root, sink=sink)


def local_store(
    workspace: Workspace, hasher: FileHasher | None = None, *, sink: Sink = to_stderr
) -> LocalStore:
    """The workspace's local store alone, never a registry (gc and fsck of this machine's store)."""
    from mlpipe.cache.local import LocalStore

    workspace.make_state()
    return LocalStore(workspace.make_cache(), hasher=hasher, sink=sink)


def remote_of(settings: Settings) -> RemoteSettings | None:
    """The registry behind the local store, when the settings name one."""
    if settings.remote_cache is None:
        return None
    from mlpipe.run.stores import remote_settings  # requests and oras only when a registry is used

    return remote_settings(settings)
