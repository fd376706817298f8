"""Copying a file's content between open files: a reflink where the file system shares extents (btrfs, XFS),
else an in-kernel copy, else read and write."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os

FICLONE = 0x40049409
"""ioctl(dst, FICLONE, src): dst shares src's extents, copied on write (linux/fs.h)."""

_CHUNK = 1 << 20
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM}


def copy_fd(src: int, dst: int) -> None:
    """The whole content of `src` into the empty `dst`, from both files' start."""
    with contextlib.suppress(OSError):
        fcntl.ioctl(dst, FICLONE, src)
        return
    os.lseek(src, 0, os.SEEK_SET)
    try:
        while os.copy_file_range(src, dst, 1 << 30):
            pass
        return
    except OSError as error:
        if error.errno not in _NO_KERNEL_COPY:
            raise
    os.lseek(src, 0, os.SEEK_SET)
    os.lseek(dst, 0, os.SEEK_SET)
    os.ftruncate(dst, 0)
    while chunk := os.read(src, _CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view) :]
