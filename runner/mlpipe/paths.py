"""Every on-disk location mlpipe uses, in one place."""

from __future__ import annotations

import os
from pathlib import Path

from mlpipe.frozen import frozen

STATE_DIR = ".mlpipe"
"""Per-workspace state directory; never part of a snapshot or of the dirty paths."""

STATE_IGNORE = "# made by mlpipe: its state (runs, logs, the store) stays out of git\n*\n"
"""`.mlpipe/.gitignore`: the directory ignores itself, as a virtual environment does, so `git add -A` never
commits the store or the records (and a workspace needs no line in its own .gitignore)."""


@frozen(eq=False, repr=False)
class Workspace:
    """Locations under one workspace (the repository root, or the pipeline file's dir outside git)."""

    root: Path
    cache_override: Path | None = None

    @property
    def state(self) -> Path:
        return self.root / STATE_DIR

    def make_state(self) -> Path:
        """The state directory, made (with its `.gitignore`) if it is not there yet; every command that writes
        state calls this first."""
        state = self.state
        ignore = state / ".gitignore"
        if not ignore.is_file():
            state.mkdir(parents=True, exist_ok=True)
            temp = state / f".gitignore.{os.getpid()}.tmp"
            temp.write_text(STATE_IGNORE, encoding="utf-8")
            os.replace(temp, ignore)
        return state

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
    def pipelines(self) -> Path:
        """The parsed-pipeline cache: one checked, parsed pipeline file per pipeline file (run/pipecache.py)."""
        return self.state / "pipelines"

    @property
    def snapshots(self) -> Path:
        """Materialized read-only copies of code snapshots, one per tree hash."""
        return self.state / "snapshots"

    @property
    def cache(self) -> Path:
        """The local store: `cache_override` (from the settings: `run/session.py` `cache_dir`), else in `state`."""
        return self.cache_override if self.cache_override is not None else self.state / "cache"
