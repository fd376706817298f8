"""Opening a pipeline for a command: the file, its workspace, and the result store the command uses."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlpipe.cache.local import LocalStore
from mlpipe.digest import FileHasher
from mlpipe.errors import UsageError
from mlpipe.paths import Workspace
from mlpipe.spec.load import load_pipeline, parse_overrides
from mlpipe.spec.model import Pipeline

DEFAULT_FILE = "mlpipe.yaml"


@dataclass(frozen=True)
class Session:
    pipeline: Pipeline
    workspace: Workspace
    store: LocalStore
    hasher: FileHasher


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
    if "://" in value:
        scheme = value.split("://", 1)[0]
        raise UsageError(f"cache {value!r}: {scheme}:// caches are not supported yet; give a local directory")
    return Path(value).expanduser().resolve()


def open_session(file: str | None, params: Sequence[str] = (), cache: str | None = None) -> Session:
    path = pipeline_path(file).resolve()
    # Paths in the file are relative to its directory (as in dvc.yaml), so a pipeline can live in a subdir.
    pipeline = load_pipeline(path, overrides=parse_overrides(list(params)), root=path.parent)
    workspace = Workspace(pipeline.root, cache_override=cache_dir(pipeline.root, cache))
    hasher = FileHasher()
    return Session(pipeline, workspace, LocalStore(workspace.cache, hasher=hasher), hasher)
