"""Which pipeline a library call works on, and which of its steps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlpipe.run.prepare import Selected
from mlpipe.run.session import Session, open_session

__all__ = ["Selected", "Source", "open_source"]


@dataclass(frozen=True, kw_only=True)
class Source:
    file: str | None = None
    """The pipeline file (default: ./mlpipe.yaml)."""
    params: tuple[str, ...] = ()
    """`NAME=VALUE` overrides of params' defaults."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Settings given as flags, by their `mlpipe.config` name (`cache`, `cache-mode`, `insecure`, ...): they beat
    the environment and the config files."""


def open_source(source: Source) -> Session:
    """The pipeline loaded, its settings read once, its workspace and result store opened."""
    return open_session(source.file, source.params, source.settings)
