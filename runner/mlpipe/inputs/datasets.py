"""Data sets kept out of git: a small committed data file records their content, the store holds it.

`mlpipe data add data/raw` writes `data/raw.mlpipe-data.json` (format `mlpipe.data/1`):

    {"format": "mlpipe.data/1", "path": "raw", "digest": "sha256:...", "type": "dir", "size": 123, "files": 4}

`path` is relative to the data file's directory; `digest` is the manifest digest (digest.Manifest), the data
set's identity. In the store a data set is a result entry keyed by `data_key(digest)` with one output, `data`,
so it travels to and from a registry (`--cache oci://...`) like a step result.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from mlpipe.cache.base import ResultStore
from mlpipe.core.results import StepResult
from mlpipe.digest import FileHasher, Manifest, bytes_sha256, canonical_json
from mlpipe.errors import UsageError
from mlpipe.frozen import frozen
from mlpipe.inputs.base import InputUnavailable, RegistryAccess
from mlpipe.spec.datafiles import DATA_SUFFIX, FORMAT, DataRecord, data_path, read_record, record_path


class DataError(InputUnavailable):
    """A data set is missing, changed since it was recorded, or not in the store."""


def data_key(digest: str) -> str:
    """The store key of a data set: not a step fingerprint, so the two can never collide."""
    return bytes_sha256(canonical_json({"format": FORMAT, "digest": digest}))


# -- commands --------------------------------------------------------------------------------------------
@frozen(kw_only=True)
class Added:
    record_file: Path
    record: DataRecord
    gitignored: str | None
    """The .gitignore entry added, if any."""


def add(data: Path, hasher: FileHasher, repo_root: Path | None) -> Added:
    """Record a data set's content digest beside it, and keep the data out of git."""
    data = data.absolute()
    if not data.exists():
        raise UsageError(f"{data} does not exist")
    if data.name.endswith(DATA_SUFFIX):
        raise UsageError(f"{data} is a data file; give the data it records")
    manifest = hasher.manifest(data)
    record = DataRecord(
        path=data.name,
        digest=manifest.digest,
        type=manifest.type,
        size=manifest.size,
        files=len(manifest.entries),
    )
    target = record_path(data)
    temp = target.parent / f".{target.name}.tmp"
    temp.write_text(json.dumps(record.to_json(), indent=2) + "\n")
    os.replace(temp, target)
    ignored = _gitignore(data, repo_root) if repo_root is not None else None
    return Added(record_file=target, record=record, gitignored=ignored)


def _gitignore(data: Path, repo_root: Path) -> str | None:
    """Add `/name` to the .gitignore beside the data when the data is inside the repository."""
    try:
        data.relative_to(repo_root.absolute())
    except ValueError:
        return None
    ignore = data.parent / ".gitignore"
    line = f"/{data.name}"
    text = ignore.read_text() if ignore.exists() else ""
    if line in text.splitlines():
        return None
    ignore.write_text(text + ("" if not text or text.endswith("\n") else "\n") + line + "\n")
    return line


def push(path: Path, store: ResultStore) -> StepResult:
    """Copy the data into the store (and the registry behind it), after checking it is what was recorded."""
    record, data = _read(path)
    if not data.exists():
        raise DataError(f"{data} is missing; `mlpipe data pull` restores it from the store")
    manifest = store.local.hasher.manifest(data)
    if manifest.digest != record.digest:
        raise DataError(
            f"{data} changed since it was recorded (recorded {record.digest}, found {manifest.digest}); "
            f"run `mlpipe data add {data}` to record the new content"
        )
    for entry in manifest.entries:
        if not store.local.has_object(entry):
            _copy_object(store, data / entry.path if entry.path else data, entry)
    result = StepResult(
        fingerprint=data_key(record.digest),
        parts={"data": record.digest},
        outputs={"data": manifest},
        provenance={"data": record.path},
    )
    published = store.local.commit_result(result).result
    _push_remote(store, published)
    return published


def import_oci(
    ref: str, data: Path, store: ResultStore, access: RegistryAccess, repo_root: Path | None
) -> Added:
    """Record an OCI artifact (`oras push` of files or directories) as a data set at `data`: its files are
    fetched into the store, checked out at `data`, and recorded beside it as `mlpipe data add` records data."""
    from mlpipe.inputs.oci import OciInputError, fetch
    from mlpipe.spec.datainputs import OCI_REF
    from mlpipe.spec.model import Location, OciInput

    found = OCI_REF.fullmatch(ref)
    if found is None:
        raise UsageError(
            f"{ref!r} is not an OCI artifact by digest; give oci://HOST/REPO@sha256:<64 hex digits> "
            "(`oras resolve HOST/REPO:TAG` prints the digest)"
        )
    data = data.absolute()
    if data.exists() or data.is_symlink():
        raise UsageError(f"{data} exists; give a path that does not, for the artifact's files")
    item = OciInput(
        name=data.name,
        host=found["host"],
        repo=found["repo"],
        digest=found["digest"],
        loc=Location(file="<command line>", line=0, col=0),
    )
    try:
        manifest = fetch(store, item, access)
    except OciInputError as error:
        raise DataError(str(error).replace(f"input {data.name!r}: ", "", 1)) from None
    data.parent.mkdir(parents=True, exist_ok=True)
    store.checkout(manifest, data)
    added = add(data, store.local.hasher, repo_root)
    result = StepResult(
        fingerprint=data_key(manifest.digest),
        parts={"data": manifest.digest},
        outputs={"data": manifest},
        provenance={"data": added.record.path, "oci": ref},
    )
    store.local.commit_result(result)
    return added


def _push_remote(store: ResultStore, result: StepResult) -> None:
    """With `--cache oci://...`: push the entry as tiered.py pushes a step result, and wait for it."""
    from mlpipe.cache.tiered import TieredStore

    if not isinstance(store, TieredStore):
        return
    opened = store.open_registry()
    if opened is None:
        raise DataError(f"the registry {store.settings.url} is off (--cache-mode off)")
    remote, pol = opened
    if pol.write is None:
        raise DataError(f"not pushing to {store.settings.url}: {pol.why}")
    remote.push(pol.write, result, store.trust, mount_from=pol.read)


def _copy_object(store: ResultStore, source: Path, entry: Any) -> None:
    """Store a copy (never a link: the workspace's data stays writable and the object stays intact)."""
    target = store.local.object_path(entry)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = store.local.temp_path()
    if entry.kind == "link":
        temp.write_bytes(os.readlink(source).encode())
    else:
        shutil.copyfile(source, temp)
    os.chmod(temp, 0o555 if entry.executable else 0o444)
    os.replace(temp, target)


def stored_manifest(store: ResultStore, digest: str) -> Manifest | None:
    """The data set's manifest from the store (or the registry behind it); None when neither has it."""
    result = store.lookup(data_key(digest))
    manifest = result.outputs.get("data") if result is not None else None
    return manifest if manifest is not None and manifest.digest == digest else None


def pull(path: Path, store: ResultStore) -> Path:
    """Restore the data a data file records, verified; data already in place is left alone."""
    record, data = _read(path)
    if data.exists() and store.local.hasher.manifest(data).digest == record.digest:
        return data
    restore(data, record.digest, store)
    return data


def restore(data: Path, digest: str, store: ResultStore) -> None:
    manifest = stored_manifest(store, digest)
    if manifest is None:
        raise DataError(
            f"data set {data} ({digest}) is not in the store; "
            f"run `mlpipe data push {data}` where the data is (with the same --cache)"
        )
    store.checkout(manifest, data)
    found = store.local.hasher.manifest(data).digest
    if found != digest:
        with contextlib.suppress(OSError):
            shutil.rmtree(data) if data.is_dir() else data.unlink()
        raise DataError(
            f"data set {data} restored from the store does not match: expected {digest}, found {found}"
        )


def _read(path: Path) -> tuple[DataRecord, Path]:
    """The record and the data path, from either the data's path or its data file's."""
    record_file = path if path.name.endswith(DATA_SUFFIX) else record_path(path)
    try:
        return read_record(record_file), data_path(record_file)
    except FileNotFoundError:
        raise UsageError(
            f"{record_file} does not exist; run `mlpipe data add {data_path(record_file)}` first"
        ) from None
    except ValueError as error:
        raise UsageError(f"{record_file}: {error}") from None
