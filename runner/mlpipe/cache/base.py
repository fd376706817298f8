"""What every result store does: look up by fingerprint, publish from staged outputs, materialize outputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mlpipe.core.results import StepResult
from mlpipe.digest import Manifest


@dataclass(frozen=True, kw_only=True)
class Published:
    result: StepResult
    """The entry now stored under the fingerprint (an earlier one wins over ours)."""
    already_stored: bool
    nondeterministic: bool
    """An entry existed with the same fingerprint but other output digests."""


class ResultStore(Protocol):
    def lookup(self, fingerprint: str) -> StepResult | None: ...

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
