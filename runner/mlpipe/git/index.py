"""Reading git's index file and hashing tree objects, on the path every command takes.

dulwich does both, but importing `dulwich.index` costs about 20 ms, a tenth of a no-op run's budget; this
module is the small part of it that the snapshot needs (index versions 2-4, SHA-1 repositories). Anything it
cannot parse reads as an empty index, which only means hashing files instead of trusting their stat data.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from typing import NamedTuple

_HEADER = struct.Struct(">4sII")
_ENTRY = struct.Struct(">IIIIIIIIII20sH")
_FLAG_EXTENDED = 0x4000
_FLAG_STAGE = 0x3000
_FLAG_NAME_LENGTH = 0x0FFF
_EXTENDED_SKIP_WORKTREE = 0x4000
_EXTENDED_INTENT_TO_ADD = 0x2000


class IndexEntry(NamedTuple):
    name: bytes
    ctime: tuple[int, int]
    mtime: tuple[int, int]
    ino: int
    mode: int
    size: int
    sha: bytes
    """Hex, as bytes."""


def read_index(data: bytes) -> dict[bytes, IndexEntry]:
    """Stage-0 entries that are in the working tree (no skip-worktree or intent-to-add), by path."""
    signature, version, count = _HEADER.unpack_from(data, 0)
    if signature != b"DIRC" or version not in (2, 3, 4):
        raise ValueError(f"not a git index of version 2-4: {signature!r} version {version}")
    entries: dict[bytes, IndexEntry] = {}
    offset = _HEADER.size
    previous = b""
    for _ in range(count):
        start = offset
        ctime_s, ctime_ns, mtime_s, mtime_ns, _dev, ino, mode, _uid, _gid, size, sha, flags = (
            _ENTRY.unpack_from(data, offset)
        )
        offset += _ENTRY.size
        extended = 0
        if flags & _FLAG_EXTENDED:
            (extended,) = struct.unpack_from(">H", data, offset)
            offset += 2
        if version == 4:
            strip, offset = _varint(data, offset)
            end = data.index(b"\0", offset)
            name = previous[: len(previous) - strip] + data[offset:end]
            offset = end + 1
        else:
            length = flags & _FLAG_NAME_LENGTH
            end = data.index(b"\0", offset) if length == _FLAG_NAME_LENGTH else offset + length
            name = data[offset:end]
            offset = start + ((end - start) // 8 + 1) * 8  # NUL padding to a multiple of 8, at least one
        previous = name
        if flags & _FLAG_STAGE or extended & (_EXTENDED_SKIP_WORKTREE | _EXTENDED_INTENT_TO_ADD):
            continue
        entries[name] = IndexEntry(
            name, (ctime_s, ctime_ns), (mtime_s, mtime_ns), ino, mode, size, sha.hex().encode()
        )
    return entries


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    """Git's offset encoding (varint.c): each continuation adds one before shifting."""
    byte = data[offset]
    offset += 1
    value = byte & 0x7F
    while byte & 0x80:
        byte = data[offset]
        offset += 1
        value = ((value + 1) << 7) | (byte & 0x7F)
    return value, offset


MODE_TREE = 0o040000


def tree_id(entries: Iterable[tuple[bytes, int, str]]) -> str:
    """The id git gives a tree object holding (name, mode, hex id) entries, in git's order.

    Git sorts entries by name, a subtree's name compared as if it ended in '/'.
    """
    ordered = sorted(entries, key=lambda e: e[0] + b"/" if e[1] == MODE_TREE else e[0])
    body = b"".join(b"%o %s\0%s" % (mode, name, bytes.fromhex(sha)) for name, mode, sha in ordered)
    return hashlib.sha1(b"tree %d\0%s" % (len(body), body)).hexdigest()
