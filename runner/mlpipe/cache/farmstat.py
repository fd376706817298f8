"""A farm's stat data, one row of base.FIELDS int64s per entry of its manifest, in the manifest's order: as found
by a walk of the farm, and as last seen (the sidecar `materialized/<digest>-@stat.json`).

The sidecar is the table's bytes after a format line (`mlpipe.farm-stat/2`), little-endian; a sidecar of another
format or size (one written as JSON by earlier versions) is ignored, so every file's content is compared once and
the sidecar written anew. Earlier versions ignore this one as well (it does not parse as JSON).
"""

from __future__ import annotations

import os
import sys
from array import array
from collections.abc import Iterator
from pathlib import Path

from mlpipe.cache.base import FIELDS
from mlpipe.digest import Entries, Manifest, walk_files

FORMAT = b"mlpipe.farm-stat/2\n"
_ROW = 8 * FIELDS


def empty(count: int) -> array[int]:
    return array("q", bytes(_ROW * count))


def found(manifest: Manifest, content: Path) -> tuple[array[int], list[str]]:
    """Each entry's stat data in the farm at `content` (zeros where it has no such file), and the paths it holds
    that the manifest does not list. The walk and the manifest are read side by side when the manifest is in
    walk order (as mlpipe writes them), so nothing per file is held but the table."""
    entries = manifest.entries
    seen = empty(len(entries))
    if manifest.type != "dir":
        _put(seen, 0, os.lstat(content))
        return seen, []
    paths = entries.paths() if isinstance(entries, Entries) else (e.path for e in entries)
    extra: list[str] = []
    if not isinstance(entries, Entries) or not _in_order(entries.paths()):
        index = {path: i for i, path in enumerate(paths)}
        for rel, st in walk_files(content, specials=True):
            i = index.get(rel)
            if i is None:
                extra.append(rel)
            else:
                _put(seen, i, st)
        return seen, extra
    walk = walk_files(content, specials=True)
    here = next(walk, None)
    for i, path in enumerate(paths):
        key = path.replace("/", "\0")
        while here is not None and here[0].replace("/", "\0") < key:
            extra.append(here[0])
            here = next(walk, None)
        if here is not None and here[0] == path:
            _put(seen, i, here[1])
            here = next(walk, None)
    while here is not None:
        extra.append(here[0])
        here = next(walk, None)
    return seen, extra


def _in_order(paths: Iterator[str]) -> bool:
    """Whether the paths come in walk order (treepaths.check_in_order), each once."""
    previous = None
    for path in paths:
        key = path.replace("/", "\0")
        if previous is not None and key <= previous:
            return False
        previous = key
    return True


def _put(seen: array[int], i: int, st: os.stat_result) -> None:
    ino = st.st_ino
    seen[i * FIELDS : i * FIELDS + FIELDS] = array(
        "q",
        (ino - (1 << 64) if ino >= 1 << 63 else ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode),
    )


def row(seen: array[int], i: int) -> array[int]:
    return seen[i * FIELDS : i * FIELDS + FIELDS]


def read(path: Path, count: int) -> array[int] | None:
    """The table last written for a farm of `count` entries; None when absent, unreadable or of another format."""
    try:
        with open(path, "rb") as f:
            data = f.read(len(FORMAT) + _ROW * count + 1)
    except OSError:
        return None
    if not data.startswith(FORMAT) or len(data) != len(FORMAT) + _ROW * count:
        return None
    table = array("q")
    table.frombytes(memoryview(data)[len(FORMAT) :])
    if sys.byteorder == "big":
        table.byteswap()
    return table


def write(path: Path, seen: array[int], temp: Path) -> None:
    """Replace the table at `path` (atomically, through `temp`)."""
    table = seen
    if sys.byteorder == "big":
        table = array("q", seen)
        table.byteswap()
    try:
        with open(temp, "wb") as f:
            f.write(FORMAT)
            table.tofile(f)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
