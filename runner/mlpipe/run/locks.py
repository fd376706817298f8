"""Who may use a workspace and a store at the same time.

A workspace runs one `ci-run` at a time: it holds `.mlpipe/run.lock` exclusively, with its run id and pid written
inside, so a second one can say whom it waits for. A store (local, possibly shared by several clones) is used by
any number of runs at once, each holding `<store>/lock` shared; `gc` takes it exclusively, so it never removes
what a run is writing or about to reuse, and `fsck` knows that temp files found while it holds it are strays.
Each holder also keeps `<store>/users/<run id>.json` locked, naming itself to a `gc` that waits.

flock locks go with the process: a run killed with -9 holds nothing, and its files are only stale.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mlpipe.errors import MlpipeError
from mlpipe.frozen import frozen

STORE_LOCK = "lock"
STORE_USERS = "users"
WORKSPACE_LOCK = "run.lock"
POLL_S = 0.2


class Busy(MlpipeError):
    """A workspace or store stayed in use by another mlpipe for longer than the caller would wait."""

    exit_code = 75  # EX_TEMPFAIL: try again later


@frozen(kw_only=True, eq=False, repr=False)
class Holder:
    """The run that holds a lock."""

    run_id: str
    pid: int
    workspace: str = ""

    def __str__(self) -> str:
        where = f" in {self.workspace}" if self.workspace else ""
        return f"run {self.run_id} (pid {self.pid}){where}"

    @staticmethod
    def read(path: Path) -> Holder | None:
        try:
            data = json.loads(path.read_bytes())
            return Holder(
                run_id=str(data["run_id"]), pid=int(data["pid"]), workspace=str(data.get("workspace", ""))
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None  # not written yet, or being written


def _open(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "a+b")  # the caller keeps it open as long as it holds the lock


def _try(lock: IO[bytes], mode: int) -> bool:
    try:
        fcntl.flock(lock, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _wait(
    lock: IO[bytes], mode: int, timeout_s: float, waiting: Callable[[], str], say: Callable[[str], None]
) -> None:
    """Take the lock, saying once whom we wait for; Busy (naming them) after `timeout_s`."""
    if _try(lock, mode):
        return
    deadline = time.monotonic() + timeout_s
    said = False
    while True:
        who = waiting()
        if time.monotonic() >= deadline:
            lock.close()
            raise Busy(who)
        if not said:
            say(f"waiting up to {timeout_s:g}s: {who}")
            said = True
        time.sleep(POLL_S)
        if _try(lock, mode):
            return


def _write_holder(lock: IO[bytes], holder: Holder) -> None:
    lock.seek(0)
    lock.truncate()
    lock.write(
        json.dumps({"run_id": holder.run_id, "pid": holder.pid, "workspace": holder.workspace}).encode()
    )
    lock.flush()


@dataclass(eq=False, repr=False)
class RunLocks:
    """The locks a run holds from before it plans until the process ends (or `release`)."""

    files: list[IO[bytes]]
    users_file: Path | None = None

    def release(self) -> None:
        if self.users_file is not None:
            self.users_file.unlink(missing_ok=True)
        for lock in self.files:
            lock.close()
        self.files.clear()


def hold_for_run(
    state_dir: Path,
    store_root: Path,
    run_id: str,
    *,
    timeout_s: float,
    say: Callable[[str], None],
    when_idle: Callable[[], None] = lambda: None,
) -> RunLocks:
    """The workspace's run lock (exclusive), then the store's (shared); Busy naming the holder on timeout.

    `when_idle` runs first if no other run uses the store (holding it exclusively): to clear what killed runs left.
    """
    me = Holder(run_id=run_id, pid=os.getpid(), workspace=str(state_dir.parent))
    path = state_dir / WORKSPACE_LOCK
    workspace = _open(path)

    def other_run() -> str:
        holder = Holder.read(path)
        who = f"run {holder.run_id} (pid {holder.pid})" if holder else "another run"
        return (
            f"{who} is running in this workspace ({state_dir.parent}); "
            "runs in one workspace take turns (set MLPIPE_LOCK_TIMEOUT=SECONDS to wait longer)"
        )

    _wait(workspace, fcntl.LOCK_EX, timeout_s, other_run, say)
    _write_holder(workspace, me)
    try:
        store = _open(store_root / STORE_LOCK)
        if _try(store, fcntl.LOCK_EX):
            try:
                when_idle()
            finally:
                fcntl.flock(store, fcntl.LOCK_SH)  # not atomic: a gc slipping in meanwhile is waited for
        else:
            _wait(
                store, fcntl.LOCK_SH, timeout_s, lambda: f"mlpipe gc is cleaning the store {store_root}", say
            )
    except BaseException:
        workspace.close()
        raise
    users = store_root / STORE_USERS / f"{run_id}.json"
    mine = _open(users)
    fcntl.flock(mine, fcntl.LOCK_EX)
    _write_holder(mine, me)
    return RunLocks(files=[workspace, store, mine], users_file=users)


def store_users(store_root: Path) -> list[Holder]:
    """The runs using the store now (their registration is locked); stale registrations are removed."""
    found = []
    directory = store_root / STORE_USERS
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as probe:
            if _try(probe, fcntl.LOCK_EX):
                path.unlink(missing_ok=True)  # its run ended without removing it (killed)
                continue
            holder = Holder.read(path)
            if holder is not None:
                found.append(holder)
    return found


@contextlib.contextmanager
def store_exclusive(store_root: Path, *, timeout_s: float, say: Callable[[str], None]) -> Iterator[None]:
    """No run uses the store while this is held (gc); Busy naming the runs that do after `timeout_s`."""
    lock = _open(store_root / STORE_LOCK)

    def users() -> str:
        named = "; ".join(str(h) for h in store_users(store_root)) or "another mlpipe"
        return f"the store {store_root} is in use by {named}"

    _wait(lock, fcntl.LOCK_EX, timeout_s, users, say)
    try:
        yield
    finally:
        lock.close()


def store_idle(store_root: Path) -> contextlib.AbstractContextManager[bool]:
    """Whether no run uses the store (held exclusively meanwhile, without waiting); False when unknown."""
    return _idle(store_root / STORE_LOCK)


def workspace_idle(state_dir: Path) -> contextlib.AbstractContextManager[bool]:
    """Whether no run runs in the workspace (held exclusively meanwhile, without waiting)."""
    return _idle(state_dir / WORKSPACE_LOCK)


@contextlib.contextmanager
def _idle(path: Path) -> Iterator[bool]:
    try:
        lock: Any = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        lock = None  # no run ever locked it: none uses it (an mlpipe that predates the lock aside)
    except OSError:
        yield False
        return
    try:
        yield lock is None or _try(lock, fcntl.LOCK_EX)
    finally:
        if lock is not None:
            lock.close()
