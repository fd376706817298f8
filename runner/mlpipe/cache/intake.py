"""Taking a step's staged output into the store's temp dir: the output is untrusted input.

Nothing here follows a link: each directory is opened relative to its parent with O_NOFOLLOW (the outputs
directory included, so a step that replaces it by a link to ~ is not walked), and each file is linked or
opened relative to its directory, never by a path that a link could redirect. A file is hard-linked into the
store only when, checked on the linked inode after linking, that link is its second (the output's own name
and ours): anything linked elsewhere is copied, so no stored object shares an inode with a file that
something else can write, and no file outside the output is ever chmodded. What cannot be stored is refused
before anything gets a name in objects/: FIFOs, sockets and devices, names that are not UTF-8 or hold control
characters, links that lead outside the output (treepaths follows them as the kernel does).
"""

from __future__ import annotations

import os
import shutil
import stat
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlpipe.copies import copy_fd
from mlpipe.digest import Entries, EntriesPacker
from mlpipe.treepaths import UnsafeTree, check_name, check_tree

OBJECT_MTIME_NS = 1_000_000_000
"""Every stored object's mtime, 1 s after the epoch (as the Nix store sets its files'): a write through any
link to an object changes it, so an object whose mtime differs is hashed before it is linked for a step."""

RULE = "outputs may hold regular files, directories and symbolic links inside the output"
NAMES = "named in UTF-8 without control characters"

_SPECIAL = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO swapped in


class UnstorableOutput(ValueError):
    """An output the store refuses; the message completes "the step's output 'NAME' ..."."""

    output = ""
    """The output's name, where the caller knows it (LocalStore.publish)."""


class Taken:
    """Every file and link of an output, in walk order, each one's content in the temp file `temp(i)` of one temp
    directory: packed (paths in one string, sizes and flags in arrays), not an object and a temp path per file,
    so taking 100,000 files holds a few MB (issue 18). `close` removes what is left of the temp files."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._packer = EntriesPacker()
        self._links: dict[str, str] = {}
        """Each link's target, for the check that links stay inside (outputs hold few)."""

    @property
    def sizes(self) -> array[int]:
        """Each file's size when it was taken."""
        return self._packer.sizes

    def temp(self, index: int) -> str:
        return f"{self.directory}/{index}"

    def next_temp(self) -> str:
        return self.temp(len(self._packer))

    def add(self, path: str, kind: str, executable: bool, size: int, target: str = "") -> None:
        self._packer.add(path, kind, executable, size, _UNHASHED)
        if kind == "link":
            self._links[path] = target

    def __len__(self) -> int:
        return len(self._packer)

    def entries(self, shas: bytes, sizes: array[int]) -> Entries:
        """The entries, with each one's sha256 (32 bytes each) and size as hashed from its temp file."""
        return self._packer.entries(shas, sizes)

    def check(self) -> None:
        """Links lead nowhere outside (names were checked as they were walked); raises UnsafeTree."""
        if self._links:
            files = self._packer.files()
            check_tree({rel: self._links.get(rel) if link else None for rel, link in files if rel})

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


_UNHASHED = "0" * 64


def kind_of(mode: int) -> str:
    return _SPECIAL.get(stat.S_IFMT(mode), "a special file")


def check_top(path: Path, where: str = "") -> None:
    """Refuse an output that is itself a link or a special file (`where` says where the step writes it)."""
    st = os.lstat(path)
    target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
    _check_top(st, target, "directory" if os.path.isdir(path) else "file", where)


def _check_top(st: os.stat_result, target: str, what: str, where: str) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise UnstorableOutput(
            f"is a symbolic link (to {target!r}); write the {what} itself{where}, not a link to it"
        )
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise UnstorableOutput(f"is {kind_of(st.st_mode)}: {RULE}")


def take(path: Path, directory: str) -> Taken:
    """Every file and link of the output at `path`, in walk_files order, each in a temp file in `directory` (made
    here; read-only files, their mtime OBJECT_MTIME_NS); on a refusal or error `directory` is removed."""
    os.mkdir(directory)
    taken = Taken(directory)
    try:
        try:
            parent = os.open(path.parent, _OPEN_DIR)
        except OSError as error:
            raise UnstorableOutput(
                f"cannot be read: {path.parent} is not a directory ({error.strerror})"
            ) from None
        try:
            st = os.stat(path.name, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                top = os.open(path.name, _OPEN_DIR, dir_fd=parent)
                try:
                    _walk(top, taken)
                finally:
                    os.close(top)
            elif stat.S_ISREG(st.st_mode):
                executable, size = _take_file(parent, path.name, "", st, taken.next_temp())
                taken.add("", "file", executable, size)
            else:
                target = os.readlink(path.name, dir_fd=parent) if stat.S_ISLNK(st.st_mode) else ""
                _check_top(st, target, "file or directory", "")
        finally:
            os.close(parent)
        try:
            taken.check()
        except UnsafeTree as error:
            raise UnstorableOutput(f"holds a path that cannot be stored: {error}; {RULE}, {NAMES}") from None
    except BaseException:
        taken.close()
        raise
    return taken


def _walk(top: int, taken: Taken) -> None:
    """Depth first, names sorted in each directory (walk_files' order, which manifest digests depend on),
    holding one open directory per level, not one per directory found."""
    stack: list[tuple[int, str, list[str]]] = [(top, "", _names(top, ""))]
    try:
        while stack:
            fd, prefix, names = stack[-1]
            if not names:
                stack.pop()
                if fd != top:
                    os.close(fd)
                continue
            name = names.pop()
            rel = prefix + name
            try:
                check_name(rel)
            except UnsafeTree as error:
                raise UnstorableOutput(
                    f"holds a path that cannot be stored: {error}; {RULE}, {NAMES}"
                ) from None
            st = _source(os.stat, rel, name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                sub = _source(os.open, rel, name, _OPEN_DIR, dir_fd=fd)
                stack.append((sub, rel + "/", _names(sub, rel)))
            elif stat.S_ISLNK(st.st_mode):
                target = _source(os.readlink, rel, name, dir_fd=fd)
                _link_object(target, taken.next_temp())
                taken.add(rel, "link", False, len(os.fsencode(target)), target)
            elif stat.S_ISREG(st.st_mode):
                executable, size = _take_file(fd, name, rel, st, taken.next_temp())
                taken.add(rel, "file", executable, size)
            else:
                raise UnstorableOutput(f"holds {kind_of(st.st_mode)} at {rel!r}: {RULE}")
    finally:
        for fd, _prefix, _names_left in stack:
            if fd != top:
                os.close(fd)


def _source(call: Callable[..., Any], rel: str, *args: Any, **kwargs: Any) -> Any:
    """A call reading the output: its failure (a directory the step made unreadable) is the output's fault."""
    try:
        return call(*args, **kwargs)
    except OSError as error:
        raise UnstorableOutput(f"cannot be read at {rel!r}: {error.strerror}") from None


def _names(fd: int, rel: str) -> list[str]:
    """A directory's names, last first (popped in sorted order)."""
    try:
        with os.scandir(fd) as it:
            return sorted((e.name for e in it), reverse=True)
    except OSError as error:
        raise UnstorableOutput(f"cannot be read at {rel!r}: {error.strerror}") from None


def _link_object(target: str, temp: str) -> str:
    """A link's object holds its target; one that is not UTF-8 is refused later, by check_tree."""
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    try:
        os.write(fd, target.encode("utf-8", "surrogateescape"))
        _seal(fd, 0o444)
    finally:
        os.close(fd)
    return temp


def _take_file(dir_fd: int, name: str, rel: str, st: os.stat_result, temp: str) -> tuple[bool, int]:
    """The file's content in `temp`: (executable, size)."""
    executable = bool(st.st_mode & stat.S_IXUSR)
    mode = 0o555 if executable else 0o444
    if st.st_nlink == 1 and _link_alone(dir_fd, name, st, temp, mode):
        return executable, st.st_size
    src = _source(os.open, rel, name, _OPEN_FILE, dir_fd=dir_fd)
    try:
        found = os.fstat(src)
        if not stat.S_ISREG(found.st_mode):  # replaced since it was listed
            raise UnstorableOutput(f"holds {kind_of(found.st_mode)} at {rel!r}: {RULE}")
        dst = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            copy_fd(src, dst)
            _seal(dst, mode)
        except BaseException:
            os.unlink(temp)
            raise
        finally:
            os.close(dst)
    finally:
        os.close(src)
    return executable, found.st_size


def _link_alone(dir_fd: int, name: str, st: os.stat_result, temp: str, mode: int) -> bool:
    """Hard-link the file as `temp` and seal it, if that link is its second; else leave no `temp`."""
    try:
        os.link(name, temp, src_dir_fd=dir_fd, follow_symlinks=False)  # same file system: no copy
    except OSError:
        return False
    try:
        linked = os.lstat(temp)
        # Checked on the linked inode, after linking: the output's name and ours, nothing else. Only then
        # may it be sealed (chmod, mtime), which reaches every name of the inode.
        if stat.S_ISREG(linked.st_mode) and linked.st_ino == st.st_ino and linked.st_nlink == 2:
            fd = os.open(temp, _OPEN_FILE)
            try:
                _seal(fd, mode)
                return True
            except PermissionError:  # another user's file (a container step's): copied, so the copy is ours
                pass
            finally:
                os.close(fd)
    except BaseException:
        os.unlink(temp)
        raise
    os.unlink(temp)
    return False


def _seal(fd: int, mode: int) -> None:
    os.fchmod(fd, mode)
    os.utime(fd, ns=(OBJECT_MTIME_NS, OBJECT_MTIME_NS))
