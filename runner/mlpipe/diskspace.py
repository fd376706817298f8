"""What a full disk looks like to a user: which file system, how much is free, what to do."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def mount_point(path: Path) -> Path:
    """The top of the file system holding `path` (its nearest existing ancestor's)."""
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    device = path.stat().st_dev
    while path != path.parent and path.parent.stat().st_dev == device:
        path = path.parent
    return path


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def is_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in {errno.ENOSPC, errno.EDQUOT}


def _reason(error: OSError) -> str:
    return "the disk quota is exceeded" if error.errno == errno.EDQUOT else "no space left on device"


def _free(path: Path) -> str:
    try:
        top = mount_point(path)
        fs = os.statvfs(top)
    except OSError:
        return ""
    return (
        f" (file system {top}: {_mib(fs.f_bavail * fs.f_frsize)} free of {_mib(fs.f_blocks * fs.f_frsize)})"
    )


def full_disk(store: Path, error: OSError, what: str) -> str:
    return (
        f"{_reason(error)} writing {what} into the store {store}{_free(store)}; its temp files were removed. "
        "Free space there (mlpipe gc --keep-last N) or give --cache a larger disk, then rerun"
    )


def full_disk_anywhere(error: OSError) -> str:
    """For a full disk met outside a store write: the file, if the error names one, and its file system."""
    if not error.filename:
        return f"{_reason(error)}; free space and rerun"
    path = Path(os.fsdecode(error.filename))
    return f"{_reason(error)} writing {path}{_free(path.parent)}; free space there and rerun"
