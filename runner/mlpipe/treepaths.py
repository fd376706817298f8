"""Which relative paths and symbolic links a stored tree may hold: names that can be written and printed, and
links that stay inside the tree however they chain.

Pure: it sees the tree as data (path -> link target, or None for a regular file), so the same rules apply to a
step's outputs before they are stored and to an entry read from a registry or a shared store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
_CONTROL = re.compile("[\x00-\x1f\x7f]")
MAX_LINK_HOPS = 40
"""Linux gives up (ELOOP) after 40 links in one resolution."""


class UnsafeTree(ValueError):
    """A tree that must not be written: a name that cannot be stored or a link that leads outside."""


def check_name(path: str) -> None:
    """A '/'-separated relative path of a file in a tree: no empty, '.' or '..' part, valid UTF-8, no control
    characters (they would break log lines and annotations), within the file system's limits."""
    if not path:
        raise UnsafeTree("an empty path")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeTree(f"{path!r} is not valid UTF-8") from None
    if len(encoded) > MAX_PATH_BYTES:
        raise UnsafeTree(f"{path[:60]!r}... is longer than {MAX_PATH_BYTES} bytes")
    if _CONTROL.search(path):
        raise UnsafeTree(f"{path!r} holds a control character (a newline, tab or other)")
    for part in path.split("/"):
        if part in {"", ".", ".."}:
            raise UnsafeTree(f"{path!r} is not a plain relative path (empty, '.' or '..' part)")
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            raise UnsafeTree(f"{path!r} has a name longer than {MAX_NAME_BYTES} bytes")


def check_link_target(path: str, target: str) -> None:
    if not target or "\0" in target:
        raise UnsafeTree(f"link {path!r} has an empty or NUL-holding target")
    try:
        encoded = target.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeTree(f"link {path!r} has a target that is not valid UTF-8") from None
    if len(encoded) >= MAX_PATH_BYTES:
        raise UnsafeTree(f"link {path!r} has a target longer than {MAX_PATH_BYTES - 1} bytes")
    if target.startswith("/"):
        raise UnsafeTree(f"link {path!r} -> {target!r} is absolute: it points outside the tree")


def check_tree(files: Mapping[str, str | None]) -> None:
    """Every path is a plain name, no file lies under a file or a link, and every link, followed as the
    kernel would (each component, `..` after following), stays inside the tree.

    `files` maps each path to its link target, or to None for a regular file.
    """
    for path, target in files.items():
        check_name(path)
        if target is not None:
            check_link_target(path, target)
    dirs: set[str] = set()
    for path in files:
        end = path.find("/")
        while end != -1:  # every proper prefix, without a split and join per level
            prefix = path[:end]
            end = path.find("/", end + 1)
            if prefix in files:
                kind = "a link" if files[prefix] is not None else "a file"
                raise UnsafeTree(f"{path!r} lies under {prefix!r}, which is {kind}")
            dirs.add(prefix)
    for path, target in files.items():
        if target is not None:
            _resolve(path, files, dirs)


def check_in_order(files: Iterable[tuple[str, bool]]) -> bool:
    """`check_tree` of files and links whose targets are already checked to stay inside (or not yet known), given
    as (path, is a link) in walk order (each directory's names sorted, depth first): every path a plain name,
    none listed twice, none under a file or a link. One pass holding one path, where `check_tree` holds them
    all (issue 18: a 100,000-file manifest). False, with nothing decided, when the paths are not in that
    order: the caller checks them with `check_tree`. Raises UnsafeTree."""
    previous, previous_key, previous_link = "", "", False
    for index, (path, link) in enumerate(files):
        check_name(path)
        key = path.replace("/", "\0")  # walk order is the order of these keys: "a/b" < "a-b", as "a" < "a-b"
        if index and key <= previous_key:
            if key != previous_key:
                return False
            raise UnsafeTree(f"{path!r} is listed twice")
        if index and path.startswith(previous) and path[len(previous)] == "/":
            # In walk order, what lies under a path comes right after it.
            kind = "a link" if previous_link else "a file"
            raise UnsafeTree(f"{path!r} lies under {previous!r}, which is {kind}")
        previous, previous_key, previous_link = path, key, link
    return True


def _resolve(link: str, files: Mapping[str, str | None], dirs: set[str]) -> None:
    """Follow `link` inside the tree; raise if any step of it climbs above the top."""
    hops = 0
    # Work list of components still to walk, from the directory holding the link.
    stack: list[str] = link.split("/")[:-1]
    pending: list[str] = list(reversed(_parts(files[link] or "")))
    while pending:
        part = pending.pop()
        if part in {"", "."}:
            continue
        if part == "..":
            if not stack:
                raise UnsafeTree(f"link {link!r} -> {files[link]!r} points outside the tree")
            stack.pop()
            continue
        here = "/".join([*stack, part])
        target = files.get(here)
        if here in files and target is not None:
            hops += 1
            if hops > MAX_LINK_HOPS:
                raise UnsafeTree(f"link {link!r} starts a loop of links")
            pending.extend(reversed(_parts(target)))  # relative to the link's own directory: stack as is
            continue
        if here in dirs:
            stack.append(part)
            continue
        return  # a file (nothing can be below it) or nothing at all: resolution stops inside the tree


def _parts(target: str) -> list[str]:
    return target.split("/")
