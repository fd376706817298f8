"""Every on-disk location mlpipe uses, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".mlpipe"
"""Per-workspace state directory; never part of a snapshot or of the dirty paths."""


@dataclass(frozen=True)
class Workspace:
    """Locations under one workspace (the repository root, or the pipeline file's dir outside git)."""

    root: Path
    cache_override: Path | None = None

    @property
    def state(self) -> Path:
        return self.root / STATE_DIR

    @property
    def runs(self) -> Path:
        return self.state / "runs"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def tmp(self) -> Path:
        return self.state / "tmp"

    @property
    def snapshots(self) -> Path:
        """Materialized read-only copies of code snapshots, one per tree hash."""
        return self.state / "snapshots"

    @property
    def cache(self) -> Path:
        """The local store: `cache_override` (from the settings: `run/session.py` `cache_dir`), else in `state`."""
        return self.cache_override if self.cache_override is not None else self.state / "cache"
