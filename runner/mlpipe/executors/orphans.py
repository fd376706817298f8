"""Step containers and host step process groups whose mlpipe process is gone (kill -9, a crash, a lost runner)
are found and removed.

Each step container is labelled with the process that created it: where its pid means something (hostname,
boot id and pid namespace) and the pid with the process's start time from /proc/<pid>/stat, so a reused pid
is not taken for the owner. Only containers whose place is this one and whose owner is not running are
removed: a container of another host, pid namespace or boot may belong to a live mlpipe we cannot see.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlpipe.frozen import frozen

OWNER_PLACE = "io.mlpipe.owner.place"
OWNER_PID = "io.mlpipe.owner.pid"
OWNER_STARTED = "io.mlpipe.owner.started"

_PROC = Path("/proc")


def this_place() -> str | None:
    """Where a pid names one process: this host, since its last boot, in this pid namespace (None off Linux)."""
    if not (_PROC / "self/ns/pid").exists():
        return None
    boot = (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    return f"{socket.gethostname()}/{boot}/{os.readlink(_PROC / 'self/ns/pid')}"


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot; None when it is not running (gone, or a zombie)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: the fields after its last ')' are plain.
    state, *rest = stat[stat.rindex(")") + 2 :].split()
    return None if state in {"Z", "X"} else rest[18]


@frozen(kw_only=True)
class Owner:
    place: str
    pid: int
    started: str

    @staticmethod
    def current() -> Owner | None:
        """This process; None where there is no /proc to tell later whether it still runs."""
        place, started = this_place(), start_time(os.getpid())
        return (
            None if place is None or started is None else Owner(place=place, pid=os.getpid(), started=started)
        )

    @staticmethod
    def from_labels(labels: Mapping[str, str]) -> Owner | None:
        try:
            return Owner(place=labels[OWNER_PLACE], pid=int(labels[OWNER_PID]), started=labels[OWNER_STARTED])
        except (KeyError, ValueError):
            return None

    def labels(self) -> dict[str, str]:
        return {OWNER_PLACE: self.place, OWNER_PID: str(self.pid), OWNER_STARTED: self.started}

    def is_gone(self) -> bool:
        """True only when this process is known to have ended: it ran here, and that pid is not it any more."""
        return self.place == this_place() and start_time(self.pid) != self.started


def owner_labels() -> dict[str, str]:
    owner = Owner.current()
    return owner.labels() if owner is not None else {}


def remove_orphans(engine: Any) -> list[tuple[Any, Owner]]:
    """Remove (force) the step containers of mlpipe processes that ended here; those removed, with their owner."""
    import docker

    removed = []
    for container in engine.containers.list(all=True, filters={"label": [OWNER_PID]}, ignore_removed=True):
        owner = Owner.from_labels(container.labels)
        if owner is None or not owner.is_gone():
            continue
        # NotFound: removed meanwhile by another mlpipe; any other refusal: left for the next run to retry.
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
            removed.append((container, owner))
    return removed


# -- host steps: a file per running step's process group, removed when the step ends --------------------------
def record_host_step(directory: Path, pgid: int) -> Path | None:
    """Note that this mlpipe runs the process group `pgid` (its leader's start time tells a reused pid)."""
    owner, started = Owner.current(), start_time(pgid)
    if owner is None or started is None:
        return None
    path = directory / f"{pgid}.json"
    with contextlib.suppress(OSError):  # unrecorded, the guardian still stops it with mlpipe
        directory.mkdir(parents=True, exist_ok=True)
        temp = directory / f".{pgid}.{os.getpid()}.tmp"
        temp.write_text(json.dumps({"owner": owner.labels(), "pgid": pgid, "started": started}))
        os.replace(temp, path)
        return path
    return None


def forget_host_step(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def reap_host_steps(directory: Path) -> list[int]:
    """Kill (SIGKILL) the recorded step groups whose mlpipe ended here and whose leader still runs; the ids.

    A record whose mlpipe still runs is left alone; one whose group is gone is removed.
    """
    reaped = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            data = json.loads(path.read_bytes())
            owner, pgid, started = Owner.from_labels(data["owner"]), int(data["pgid"]), str(data["started"])
        except (OSError, ValueError, KeyError, TypeError):
            forget_host_step(path)  # half-written by a killed mlpipe: it names nothing we could check
            continue
        if owner is None or not owner.is_gone():
            continue
        if start_time(pgid) == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
                reaped.append(pgid)
        forget_host_step(path)
    for temp in directory.glob(".*.tmp") if directory.is_dir() else []:
        pid = temp.name.split(".")[2]
        if not pid.isdigit() or start_time(int(pid)) is None:
            forget_host_step(temp)
    return reaped
