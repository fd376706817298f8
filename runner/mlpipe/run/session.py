"""Opening a pipeline for a command: the file, its workspace, and the result store the command uses."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mlpipe.errors import UsageError
from mlpipe.paths import Workspace
from mlpipe.spec.load import load_pipeline, parse_overrides
from mlpipe.spec.model import Pipeline

if TYPE_CHECKING:  # `validate` only loads the file: the store and config stay unimported
    from mlpipe.cache.local import LocalStore
    from mlpipe.config import Setting
    from mlpipe.digest import FileHasher

DEFAULT_FILE = "mlpipe.yaml"


@dataclass(frozen=True)
class Session:
    pipeline: Pipeline
    workspace: Workspace
    store: LocalStore
    hasher: FileHasher
    settings: Mapping[str, Setting] = field(default_factory=dict)
    """From the command line, the environment and the config files (`mlpipe.config`)."""


def pipeline_path(file: str | None) -> Path:
    path = Path(file or DEFAULT_FILE)
    if not path.is_file():
        if file is None:
            raise UsageError(
                f"no {DEFAULT_FILE} in {Path.cwd()}; run mlpipe where the pipeline file is, or pass -f FILE"
            )
        raise UsageError(f"pipeline file {file} does not exist")
    return path


def cache_dir(workspace_root: Path, cache: str | None) -> Path | None:
    """`--cache` beats MLPIPE_CACHE beats the workspace's `.mlpipe/cache`."""
    value = cache or os.environ.get("MLPIPE_CACHE")
    if not value:
        return None
    if value.startswith("oci://"):
        return None  # a registry behind the workspace's local store; see remote_cache
    if "://" in value:
        scheme = value.split("://", 1)[0]
        raise UsageError(
            f"cache {value!r}: {scheme}:// caches are not supported; give a directory or oci://HOST/REPO"
        )
    return Path(value).expanduser().resolve()


def load(file: str | None, params: Sequence[str] = ()) -> Pipeline:
    # Paths in the file are relative to its directory (as in dvc.yaml), so a pipeline can live in a subdir.
    overrides = parse_overrides(list(params))
    return load_pipeline(pipeline_path(file), overrides=overrides)


def workspace_for(file: str | None) -> Workspace:
    """The workspace of a pipeline file, without loading it (history commands work on a broken file)."""
    return Workspace(pipeline_path(file).resolve().parent)


def open_session(file: str | None, params: Sequence[str] = (), cache: str | None = None) -> Session:
    from mlpipe.cache.local import LocalStore
    from mlpipe.config import apply as apply_settings
    from mlpipe.config import load_settings
    from mlpipe.digest import FileHasher
    from mlpipe.statcache import StatCache

    pipeline = load(file, params)
    settings = load_settings(pipeline.root, cli={"cache": cache})
    apply_settings(settings, os.environ)  # config-file values reach the backends as their MLPIPE_* variables
    workspace = Workspace(pipeline.root, cache_override=cache_dir(pipeline.root, cache))
    hasher = FileHasher(
        StatCache(workspace.state / "statcache.json", workspace.root, exclude=workspace.state)
    )
    remote = remote_cache(cache)
    if remote is not None:
        from mlpipe.run.stores import open_tiered  # requests and oras only when a registry is used

        store: LocalStore = open_tiered(workspace.cache, hasher, remote, workspace.root)
    else:
        store = LocalStore(workspace.cache, hasher=hasher)
    return Session(pipeline, workspace, store, hasher, settings)


def remote_cache(cache: str | None) -> str | None:
    """The `oci://` URL from `--cache` or MLPIPE_CACHE, if that is what they name."""
    value = cache or os.environ.get("MLPIPE_CACHE") or ""
    return value if value.startswith("oci://") else None
