"""Digests and paths of inputs whose data does not live in the repository (see spec/datainputs.py).

Digests are taken before planning and need no network: a URL input is its declared sha256, a data file's input
its recorded digest. Paths are made when a step starts: downloaded or pulled into the store first if needed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from mlpipe.cache.base import ResultStore
from mlpipe.digest import FileHasher, bytes_sha256
from mlpipe.inputs.base import RegistryAccess
from mlpipe.spec.model import DataInput, ExternalInput, Input, OciInput, RepoInput, Step, UrlInput

OTHER = (UrlInput, ExternalInput, DataInput, OciInput)


def input_digest(root: Path, item: Input, hasher: FileHasher) -> str:
    """The digest that enters the fingerprint (a step input's is its upstream output's, known later)."""
    if isinstance(item, RepoInput):
        return hasher.digest(root / item.path)
    if isinstance(item, ExternalInput):
        return _external_digest(Path(item.path), hasher)
    if isinstance(item, UrlInput):
        return f"sha256:{item.sha256}"
    if isinstance(item, OciInput):
        return item.digest
    if not isinstance(item, DataInput):
        raise TypeError(f"unknown kind of input: {item!r}")
    _check_workspace_copy(root, item, hasher)
    return item.digest


def _external_digest(path: Path, hasher: FileHasher) -> str:
    """Hashed with a stat cache of its own: the workspace's caches only paths inside the workspace."""
    cache = hasher.stat_cache
    if cache is None or path.parent == path:
        return hasher.digest(path)
    from mlpipe.statcache import StatCache

    where = cache.path.parent / "external"
    where.mkdir(parents=True, exist_ok=True)
    name = bytes_sha256(os.fsencode(path))[:16]
    own = FileHasher(StatCache(where / f"{name}.json", path.parent), workers=hasher.workers)
    digest = own.digest(path)
    own.save()
    hasher.remember(own)  # run/runner.py's before-state of the input, as for workspace inputs
    return digest


def _check_workspace_copy(root: Path, item: DataInput, hasher: FileHasher) -> None:
    from mlpipe.inputs.datasets import DataError

    data = root / item.path
    if not data.exists():
        return  # pulled from the store when a step needs it
    found = hasher.digest(data)
    if found != item.digest:
        raise DataError(
            f"input {item.name!r}: {item.path} changed since {item.file} was written "
            f"(recorded {item.digest}, found {found}); run `mlpipe data add {item.path}` to record it, "
            f"or `mlpipe data pull {item.path}` to restore the recorded data"
        )


def input_path(root: Path, item: Input, store: ResultStore, access: RegistryAccess) -> Path:
    """Where the step reads a repository, external, URL or data-file input."""
    if isinstance(item, RepoInput):
        return root / item.path
    if isinstance(item, ExternalInput):
        return Path(item.path)
    if isinstance(item, UrlInput):
        from mlpipe.inputs import download

        manifest = download.fetch(store, name=item.name, url=item.url, sha256=item.sha256, sink=access.sink)
        return store.materialize(manifest, download.file_name(item.url, item.name))
    if isinstance(item, OciInput):
        from mlpipe.inputs import oci as oci_inputs

        return store.materialize(oci_inputs.fetch(store, item, access), item.name)
    if not isinstance(item, DataInput):
        raise TypeError(f"unknown kind of input: {item!r}")
    data = root / item.path
    if not data.exists():
        from mlpipe.inputs.datasets import restore

        restore(data, item.digest, store)
    return data


def other_digests(root: Path, inputs: Iterable[Input], hasher: FileHasher) -> dict[str, str]:
    """The digests of a step's URL, external and data-file inputs."""
    return {i.name: input_digest(root, i, hasher) for i in inputs if isinstance(i, OTHER)}


def other_paths(root: Path, step: Step, store: ResultStore, access: RegistryAccess) -> dict[str, Path]:
    """The paths of a step's URL, external and data-file inputs, fetched into the store when needed."""
    return {n: input_path(root, i, store, access) for n, i in step.inputs.items() if isinstance(i, OTHER)}
