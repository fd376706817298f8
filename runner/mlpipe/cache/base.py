"""What every result store does (`ResultStore`: look up by fingerprint, publish from staged outputs, materialize
outputs), and the local verbs behind every store (`LocalObjects`: its objects, temp paths and hasher on disk).

Callers hold a `ResultStore`; what only a store on this machine can do (a path of an object, a new object for a
pull, a temp path on the store's file system, the hasher) they reach through `store.local`.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from mlpipe.core.results import StepResult
from mlpipe.digest import Entry, FileHasher, Manifest
from mlpipe.frozen import frozen


@frozen(kw_only=True)
class Published:
    """What publishing a step's result left in the store."""

    result: StepResult
    """The entry now stored under the fingerprint (an earlier one wins over ours)."""
    already_stored: bool
    nondeterministic: bool
    """An entry existed with the same fingerprint but other output digests."""


FIELDS = 5
"""A file's stat data in a farm's table: inode, size, mtime_ns, ctime_ns, mode (content can change only if one of
them does); all zero for a file not found, or whose stat data is not trusted."""


@frozen(eq=False, repr=False)
class Handed:
    """A materialization as handed to a step: what it must hold, and its files' stat data at that moment, FIELDS
    int64s per entry of its manifest, in the manifest's order (40 bytes a file; a dict of lists held about 330)."""

    manifest: Manifest
    top: Path
    content: Path
    seen: array[int]

    def racy_bytes(self, since_ns: int) -> int:
        """The size of the files whose ctime is `since_ns` or later: a change within the same clock tick could
        leave their stat data as seen (git's racy-clean case), so their content is compared after the step."""
        seen = self.seen
        return sum(
            size for size, ctime in zip(seen[1::FIELDS], seen[3::FIELDS], strict=True) if ctime >= since_ns
        )

    def distrusting_racy(self, since_ns: int) -> Handed:
        """The same farm, with the stat data of the files `racy_bytes` counts forgotten: their content is compared
        after the step."""
        seen = array("q", self.seen)
        for i in range(3, len(seen), FIELDS):
            if seen[i] >= since_ns:
                seen[i - 3 : i + 2] = _UNKNOWN
        return replace(self, seen=seen)


_UNKNOWN = array("q", bytes(8 * FIELDS))


class LocalObjects(Protocol):
    """The store on this machine behind a `ResultStore` (cache/local.py): what a pull, a data set, an input
    fetcher or the runner's checks of handed-out farms need beyond the result verbs."""

    @property
    def root(self) -> Path: ...

    @property
    def hasher(self) -> FileHasher: ...

    def lookup(self, fingerprint: str) -> StepResult | None:
        """An entry stored here; never asks a registry."""
        ...

    def commit_result(self, result: StepResult) -> Published:
        """Write the entry of a result whose objects are all stored here; the first complete entry wins."""
        ...

    def object_path(self, entry: Entry) -> Path: ...

    def has_object(self, entry: Entry) -> bool: ...

    def temp_path(self, hint: str = "") -> Path:
        """A fresh path on the store's file system, so a rename into it is atomic."""
        ...

    def handed(self, path: Path) -> Handed | None:
        """What `materialize` handed out as `path`, and its files' stat data then."""
        ...

    def check_handed(self, handed: Handed) -> str | None:
        """After a step: None if the farm is as handed out, else the first damaged path."""
        ...

    def save_listing(self, tree: str, files: list[list[Any]]) -> None: ...

    def listing(self, tree: str) -> list[list[Any]] | None: ...


class ResultStore(Protocol):
    @property
    def local(self) -> LocalObjects:
        """The store on this machine (the store itself, or the one in front of a registry)."""
        ...

    def lookup(self, fingerprint: str) -> StepResult | None: ...

    def lookup_ahead(self, fingerprint: str) -> StepResult | None:
        """As `lookup`, for a plan a runner carries out: the result's objects may still be arriving, and the
        runner's `lookup` of the fingerprint waits for them (a miss if they cannot be had)."""
        ...

    def publish(self, result: StepResult, staged: Mapping[str, Path]) -> Published:
        """Store the staged outputs' content, then the result entry, atomically and last."""
        ...

    def materialize(self, manifest: Manifest, name: str) -> Path:
        """A read-only path holding the output's content, shared by every reader."""
        ...

    def checkout(self, manifest: Manifest, dest: Path) -> None:
        """A writable copy of the output at `dest`, replacing what was there."""
        ...

    def latest(self, pipeline: str, step: str) -> StepResult | None:
        """The most recently produced or reused result of this step, for `plan` to compare against."""
        ...

    def set_latest(self, pipeline: str, step: str, fingerprint: str) -> None: ...

    def sync(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """Wait for background work (pushes to a registry) and say what it did, for the run record."""
        ...
