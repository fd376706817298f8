"""What a killed or crashed run leaves behind, found and removed by the next run or by `mlpipe gc`.

Only what belongs to no live run goes: a workspace's `.mlpipe/tmp/<run>` whose run holds no lock, checkout
temps (`.NAME.mlpipe-XXXXXXXX`, `.NAME.mlpipe-old-XXXXXXXX` beside an output's path) while this process holds
the workspace's run lock, the store's tmp/ and objects' temp files while no run uses the store, and the step
process groups of an mlpipe that is gone (executors/orphans.py).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from mlpipe.cache.local import _rmtree
from mlpipe.paths import Workspace
from mlpipe.run.locks import RunLocks, hold_for_run, workspace_idle
from mlpipe.runs import RunHistory
from mlpipe.spec.model import Pipeline

_CHECKOUT_TEMP = re.compile(r"\.(?P<name>.+)\.mlpipe-(old-)?[0-9a-f]{8}")
_RECORD_TEMP = re.compile(r"\..+\.json\.(?P<pid>[0-9]+)\.tmp")


def host_step_records(workspace: Workspace) -> Path:
    return workspace.state / "steps"


def start_run(
    workspace: Workspace,
    pipeline: Pipeline,
    run_id: str,
    *,
    timeout_s: float,
    say: Callable[[str], None],
) -> RunLocks:
    """Take the run's locks, then clear what earlier runs left: the caller is now alone in this workspace."""
    store = workspace.cache
    locks = hold_for_run(
        workspace.make_state(),
        store,
        run_id,
        timeout_s=timeout_s,
        say=say,
        when_idle=lambda: clear_store_tmp(store),
    )
    if _entries(host_step_records(workspace)):  # a step's record outlives it only when its mlpipe was killed
        from mlpipe.executors.orphans import reap_host_steps

        reaped = reap_host_steps(host_step_records(workspace))
        if reaped:
            say(f"stopped {len(reaped)} step process group(s) left running by a killed mlpipe: {reaped}")
    history = RunHistory(workspace.runs)
    clear_run_dirs(workspace, history, keep=run_id)
    clear_record_temps(workspace)
    clear_checkout_temps(output_paths(pipeline))
    return locks


def clear_workspace(workspace: Workspace, pipeline: Pipeline | None) -> int:
    """What `mlpipe gc` removes from a workspace: stale run dirs and record temps, and the checkout temps
    beside the outputs of `pipeline` if no run runs in the workspace now. How many were removed."""
    removed = len(clear_run_dirs(workspace, RunHistory(workspace.runs)))
    with workspace_idle(workspace.make_state()) as idle:
        if idle:
            clear_record_temps(workspace)
            if pipeline is not None:
                removed += len(clear_checkout_temps(output_paths(pipeline)))
    return removed


def output_paths(pipeline: Pipeline) -> list[Path]:
    """Where the pipeline's outputs are checked out in the workspace (`path:`)."""
    return [pipeline.root / o.path for s in pipeline.steps.values() for o in s.outputs.values() if o.path]


def clear_run_dirs(workspace: Workspace, history: RunHistory, *, keep: str = "") -> list[Path]:
    """Remove `.mlpipe/tmp/<run>` of every run that is not running."""
    removed = []
    for path in _entries(workspace.tmp):
        if path.name != keep and not history.is_active(path.name):
            _rmtree(path)
            removed.append(path)
    return removed


def clear_record_temps(workspace: Workspace) -> None:
    """Run records half-written by a process that is gone (runs.py writes `.RUN.json.PID.tmp`)."""
    for path in _entries(workspace.runs):
        match = _RECORD_TEMP.fullmatch(path.name)
        if match and not _pid_alive(int(match["pid"])):
            path.unlink(missing_ok=True)


def clear_checkout_temps(output_paths: Iterable[Path]) -> list[Path]:
    """Remove checkout temps beside each output path (call only while holding the workspace's run lock)."""
    removed = []
    for dest in output_paths:
        for path in _entries(dest.parent):
            match = _CHECKOUT_TEMP.fullmatch(path.name)
            if match and match["name"] == dest.name:
                _rmtree(path)
                removed.append(path)
    return removed


def clear_store_tmp(store: Path) -> None:
    """Everything in the store's tmp/ (call only while no run uses the store: it holds the store's lock)."""
    for path in _entries(store / "tmp"):
        _rmtree(path)


def _entries(directory: Path) -> list[Path]:
    try:
        return sorted(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 0)
        return True
    return False
