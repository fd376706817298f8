"""Which pipeline a library call works on, and which of its steps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import TYPE_CHECKING, Any

from mlpipe.events import Sink, to_stderr
from mlpipe.frozen import frozen
from mlpipe.run.prepare import Prepared, Selected, prepare
from mlpipe.run.session import Session, open_session

if TYPE_CHECKING:
    from mlpipe.cache.tiered import RemoteSettings
    from mlpipe.release.baseline import Baseline
    from mlpipe.runs import RunRecord

__all__ = ["Selected", "Source", "find_baseline", "open_source", "prepare_steps"]


@frozen(kw_only=True, eq=False, repr=False)
class Source:
    """Where the pipeline comes from: its file, param overrides and the settings given as flags."""

    file: str | None = None
    """The pipeline file (default: ./mlpipe.yaml)."""
    params: tuple[str, ...] = ()
    """`NAME=VALUE` overrides of params' defaults."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Settings given as flags, by their `mlpipe.config` name (`cache`, `cache-mode`, `plain-http`, ...): they beat
    the environment and the config files."""


def open_source(source: Source, *, sink: Sink = to_stderr) -> Session:
    """The pipeline loaded, its settings read once, its workspace and result store opened; `sink` hears what the
    store says on the side."""
    return open_session(source.file, source.params, source.settings, sink=sink)


def prepare_steps(
    session: Session,
    selection: Selected,
    *,
    build: bool = True,
    sink: Sink = to_stderr,
    base: RunRecord | None = None,
    registry: RemoteSettings | None = None,
    ahead: bool = False,
) -> Prepared:
    """Snapshots, facts and the plan of the selected steps (`build=False`: no image is built or loaded); reasons
    compare with the base commit's run `base` first, and look for run records in `registry`. `ahead`: a runner
    carries the plan out (`prepare`)."""
    return prepare(
        session.pipeline,
        session.workspace,
        session.store,
        selection,
        hasher=session.hasher,
        environ=session.settings.environ,
        build=build,
        sink=sink,
        base=base,
        registry=registry,
        ahead=ahead,
    )


def find_baseline(session: Session, *, since: str | None, registry: RemoteSettings | None) -> Baseline | None:
    """The run a new run or plan is compared with (`release.baseline.baseline_for`): `since`'s, else a pull
    request's base commit's. Without `since` outside GitHub Actions there is none, and the comparison's modules
    are not loaded (a no-op `ci-run` or `plan` pays for none of them)."""
    if since is None and session.settings.environ.get("GITHUB_ACTIONS") != "true":
        return None
    from mlpipe.release.baseline import baseline_for

    return baseline_for(session.workspace, since=since, environ=session.settings.environ, registry=registry)
