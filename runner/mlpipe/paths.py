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


CACHE_IGNORE = "# made by mlpipe: its result store stays out of git\n*\n"


def _ignore_itself(directory: Path, rules: str) -> None:
    temp = directory / f".gitignore.{os.getpid()}.tmp"
    temp.write_text(rules, encoding="utf-8")
    os.replace(temp, directory / ".gitignore")


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
        if not (state / ".gitignore").is_file():
            state.mkdir(parents=True, exist_ok=True)
            _ignore_itself(state, STATE_IGNORE)
        return state

    def make_cache(self) -> Path:
        """The local store's directory. One that `--cache` names is made ignoring itself as the state directory
        does, when mlpipe makes it (or finds it empty): a store inside the repository then never shows as
        untracked, never makes a run dirty and never enters a snapshot. A directory that already holds
        something is left as it is: it may be the user's own."""
        cache = self.cache
        if self.cache_override is not None and (not cache.is_dir() or not any(cache.iterdir())):
            cache.mkdir(parents=True, exist_ok=True)
            _ignore_itself(cache, CACHE_IGNORE)
        return cache

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
