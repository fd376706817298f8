"""Deterministic OCI layers for a step result's objects: the same content gives the same digests anywhere.

Small objects go into uncompressed tar chunks whose members are named by object key (sha256, `.x` when
executable) with zeroed times and owners; a chunk ends after an object whose hash has its low bits zero
(content-defined, so one changed file changes one chunk, not every later one) or when it is full. Objects
above `RAW_THRESHOLD` are layers of their own whose digest is the object's sha256, shared by every result
holding that file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from mlpipe.digest import Entry
from mlpipe.errors import present
from mlpipe.frozen import frozen
from mlpipe.records import OBJECT_NAME

RAW_THRESHOLD = 1 << 20
CHUNK_MAX_BYTES = 16 << 20
CHUNK_MAX_FILES = 1024
CUT_MASK = 0xFF
"""A chunk ends after an object whose sha256 has these bits zero: about 256 files per chunk."""

TAR_MEDIA_TYPE = "application/vnd.mlpipe.objects.v1.tar"
RAW_MEDIA_TYPE = "application/vnd.mlpipe.object.v1"


@dataclass(frozen=True, order=True, slots=True)
class ObjectKey:
    sha256: str
    executable: bool

    @property
    def name(self) -> str:
        return self.sha256 + (".x" if self.executable else "")

    @staticmethod
    def parse(name: str) -> ObjectKey:
        if not OBJECT_NAME.fullmatch(name):
            raise ValueError(f"not an object name: {name!r}")
        return ObjectKey(name[:64], name.endswith(".x"))


@frozen
class LayerPlan:
    kind: str  # "tar" | "raw"
    objects: tuple[ObjectKey, ...]
    size: int
    """Bytes of content (a tar adds headers)."""


def plan_layers(entries: Iterable[Entry]) -> list[LayerPlan]:
    """Layers for these entries, each object once, in the order the entries come (sorted by path)."""
    seen: set[ObjectKey] = set()
    raw: dict[str, LayerPlan] = {}
    chunks: list[LayerPlan] = []
    current: list[ObjectKey] = []
    current_size = 0
    for entry in entries:
        key = ObjectKey(entry.sha256, entry.executable)
        if key in seen:
            continue
        seen.add(key)
        if entry.size > RAW_THRESHOLD:
            # The content is the layer; the exec bit is in the config's file index.
            raw.setdefault(entry.sha256, LayerPlan("raw", (key,), entry.size))
            continue
        current.append(key)
        current_size += entry.size
        cut = int(entry.sha256[-8:], 16) & CUT_MASK == 0
        if cut or current_size >= CHUNK_MAX_BYTES or len(current) >= CHUNK_MAX_FILES:
            chunks.append(LayerPlan("tar", tuple(current), current_size))
            current, current_size = [], 0
    if current:
        chunks.append(LayerPlan("tar", tuple(current), current_size))
    return chunks + list(raw.values())


_RECORD = 20 * 512
"""tarfile pads an archive to whole records of 20 blocks."""
_BLOCK_BYTES = 256 << 10
"""What TarStream hands out at a time: small members packed together, large ones in pieces (so 8 upload
threads hold about 4 MiB)."""


_OWNERS = b"0000000\0" * 2  # uid, gid
_MTIME = b"00000000000\0"
_TAIL = b"0" + bytes(100) + b"ustar\x0000" + bytes(64 + 16 + 155 + 12)
"""Type (regular file), linkname, magic, then uname, gname, devmajor, devminor (none: not a device), prefix
and the padding to 512."""
_FIXED_SUM = sum(_OWNERS) + sum(_MTIME) + sum(_TAIL) + 8 * ord(" ")  # the checksum counts itself as spaces


def _header(key: ObjectKey, size: int) -> bytes:
    """The USTAR header Python's tarfile writes for this member (mtime, owners zero): chunk digests stay as
    they were when tarfile built the chunks, at a fraction of TarInfo's cost per file."""
    name = key.name.encode().ljust(100, b"\0")
    mode = b"%07o\0" % (0o555 if key.executable else 0o444)
    length = b"%011o\0" % size
    checksum = b"%06o\0 " % (_FIXED_SUM + sum(name) + sum(mode) + sum(length))
    return b"".join((name, mode, _OWNERS, length, _MTIME, checksum, _TAIL))


def tar_size(sizes: Iterable[int]) -> int:
    """The size of the tar TarStream makes of objects of these sizes: what a layer's descriptor must declare."""
    body = sum(512 + size + -size % 512 for size in sizes) + 1024
    return body + -body % _RECORD


class TarStream:
    """The reproducible tar of these object files, made on demand and never stored: iterated once to learn
    its digest, then again as the body of its upload (and of every retry).

    Iterating yields blocks of about 256 KiB; `len()` is the tar's size, so an HTTP client sends it with a
    Content-Length.
    """

    def __init__(self, objects: Iterable[tuple[ObjectKey, str | Path]]) -> None:
        self.objects = [(key, path, os.stat(path).st_size) for key, path in objects]
        self.size = tar_size(size for _, _, size in self.objects)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytearray]:
        block = bytearray()
        written = 0
        for key, path, size in self.objects:
            block += _header(key, size)
            fd = os.open(path, os.O_RDONLY)
            try:
                left = size
                while left > 0 and (data := os.read(fd, min(left, _BLOCK_BYTES))):
                    block += data
                    left -= len(data)
                    if len(block) >= _BLOCK_BYTES:
                        written += len(block)
                        yield block
                        block = bytearray()
                if left or os.read(fd, 1):
                    raise LayerError(f"object {key.sha256[:12]} changed size while it was read")
            finally:
                os.close(fd)
            block += bytes(-size % 512)
        block += bytes(self.size - written - len(block))
        yield block

    def digest(self) -> str:
        hasher = hashlib.sha256()
        for block in self:
            hasher.update(block)
        return "sha256:" + hasher.hexdigest()


def write_tar(objects: Iterable[tuple[ObjectKey, str | Path]], out: IO[bytes]) -> tuple[str, int]:
    """Write a reproducible tar of these object files to `out`; return its digest and size."""
    stream, hasher = TarStream(objects), hashlib.sha256()
    for block in stream:
        hasher.update(block)
        out.write(block)
    return "sha256:" + hasher.hexdigest(), len(stream)


def take(view: memoryview, left: int, out: NewObject | None, hasher: Any) -> int:
    """Hand up to `left` bytes of a member's content to its object file (None: not wanted) and its hash;
    returns how many were taken."""
    n = min(left, len(view))
    if out is not None:
        hasher.update(view[:n])
        out.write(view[:n])
    return n


class LayerError(ValueError):
    """A layer tar that is malformed or holds something other than the objects it should."""


class NewObject(Protocol):
    """An object file being written (LocalStore.new_object): invisible until `commit`."""

    def write(self, data: bytes | bytearray | memoryview) -> int: ...

    def commit(self) -> None: ...

    def discard(self) -> None: ...


class TarObjectSink:
    """Extract a layer tar as it streams through `write`: each wanted member goes straight into its object file.

    No tarfile objects and no temp copy of the layer: one header parse, one temp file and its rename per
    member. Every member's content is checked against its name (the object's sha256) before it is committed,
    so a store object is never wrong even if the layer turns out corrupt later.
    """

    def __init__(
        self,
        wanted: Iterable[ObjectKey],
        open_object: Callable[[ObjectKey], NewObject],
        sizes: Mapping[ObjectKey, int] | None = None,
    ):
        """`sizes`, when given, is every object the layer may hold and its size: any other member, or a member
        of another size, is a LayerError before a byte of it is written."""
        self.wanted = set(wanted)
        self.sizes = sizes
        self._open = open_object
        self._buffer = bytearray()
        self._left = 0  # bytes of the current member still to come
        self._pad = 0  # padding after it
        self._key: ObjectKey | None = None
        self._out: NewObject | None = None
        self._hash = hashlib.sha256()
        self._ended = False

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            if self._left:
                n = take(view, self._left, self._out, self._hash)
                self._left -= n
                view = view[n:]
                if not self._left:
                    self._finish_member()
            elif self._pad:
                n = min(self._pad, len(view))
                self._pad -= n
                view = view[n:]
            elif self._ended:
                break  # trailing zero blocks
            else:
                need = 512 - len(self._buffer)
                self._buffer += view[:need]
                view = view[need:]
                if len(self._buffer) == 512:
                    header = bytes(self._buffer)
                    self._buffer.clear()
                    self._start_member(header)
        return len(data)

    def _start_member(self, header: bytes) -> None:
        if header == bytes(512):
            self._ended = True
            return
        if sum(header[:148]) + 256 + sum(header[156:]) != _octal(header[148:156], "checksum"):
            raise LayerError("a tar header's checksum does not match")
        name = header[:100].split(b"\0", 1)[0].decode("ascii", "backslashreplace")
        if header[345:346] not in (b"", b"\0") or not OBJECT_NAME.fullmatch(name):
            raise LayerError(f"unexpected tar member {name[:80]!r}")
        key = ObjectKey.parse(name)
        if header[156:157] not in (b"0", b"\0"):
            raise LayerError(f"tar member {name!r} is not a regular file")
        size = _octal(header[124:136], "size")
        if self.sizes is not None and self.sizes.get(key) != size:
            expected = self.sizes.get(key)
            raise LayerError(
                f"unexpected tar member {name[:12]} of {size} bytes"
                + ("" if expected is None else f" (the index says {expected})")
            )
        self._left, self._pad, self._key = size, -size % 512, key
        if key in self.wanted:
            self._out = self._open(key)
            self._hash = hashlib.sha256()
        if not size:
            self._finish_member()

    def _finish_member(self) -> None:
        out, key = self._out, self._key
        if out is None:
            return
        key = present(key, "a tar member written without its object key")
        self._out = None
        if self._hash.hexdigest() != key.sha256:
            out.discard()
            raise LayerError(f"object {key.sha256[:12]} in a layer does not match its digest")
        try:
            out.commit()
        except FileNotFoundError:  # its temp file went under it: a concurrent `mlpipe gc` of the store
            raise LayerError(f"object {key.sha256[:12]} was removed while it was written") from None
        self.wanted.discard(key)

    def close(self) -> None:
        """Drop a half-written member (after an error)."""
        if self._out is not None:
            self._out.discard()
            self._out = None

    def finish(self) -> None:
        """Check the layer was whole and held every wanted object."""
        self.close()
        if self._left or self._buffer or not self._ended:
            raise LayerError("the layer tar ends inside a member or before its end blocks")
        if self.wanted:
            raise LayerError(f"{len(self.wanted)} object(s) missing from their layer")


def _octal(field: bytes, what: str) -> int:
    """A tar header's number: octal digits, NUL- or space-terminated (no base-256: mlpipe never writes it)."""
    digits = field.split(b"\0", 1)[0].strip()
    if not digits:
        return 0
    if not all(48 <= c <= 55 for c in digits):
        raise LayerError(f"a tar header's {what} is not an octal number")
    return int(digits, 8)
