"""A step result's layers as ORAS lays them out, so `oras pull` recreates its outputs by name.

Each layer carries `org.opencontainers.image.title`. A file over `RAW_THRESHOLD`, and every file output, is a
layer of its own whose content is the file (its digest is the file's sha256: shared by every result, and every
path, holding that content). The other files of directory outputs go into one *tree* layer per top-level name
(`out` for outputs at `out/model` and `out/data`): a gzip of a tar whose members are named by path, marked
`io.deis.oras.content.unpack` as `oras push DIR` marks directories. ORAS clients refuse two layers with one
title and extract a directory layer under its title, so a tree layer cannot be cut into content-defined chunks.

Everything is reproducible, so the same content gives the same digests anywhere: tar headers are written here
(owners and times zero), and the gzip is made of stored deflate blocks (no compressor whose output could change
between zlib versions). A puller recomputes the layout from the result record and checks every byte of a
layer against it but the files' content, which is checked against the record's sha256s.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import itertools
import os
import struct
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from mlpipe.cache.layers import RAW_THRESHOLD, LayerError, NewObject, ObjectKey
from mlpipe.digest import Entries, Entry, Manifest
from mlpipe.errors import present
from mlpipe.frozen import frozen
from mlpipe.records import MAX_LINK_BYTES
from mlpipe.treepaths import UnsafeTree, check_name, check_tree

TREE_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
"""What `oras push DIR` writes; oras-py unpacks a layer by this media type, oras-go by the annotation."""
FILE_MEDIA_TYPE = "application/vnd.mlpipe.object.v1"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
"""The OCI 1.1 empty descriptor (`{}`): the layer of a result without files."""
TITLE = "org.opencontainers.image.title"
UNPACK = "io.deis.oras.content.unpack"
CONTENT_DIGEST = "io.deis.oras.content.digest"
"""The digest of a directory layer's tar, before gzip (oras-go checks it)."""


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a tree layer: its path from the pull directory, and what it is."""

    path: str
    kind: Literal["dir", "file", "link"]
    key: ObjectKey | None = None
    size: int = 0
    index: int = -1
    """A file or link's place among the result's entries (`entry_bases`); -1 for a directory."""


@dataclass(frozen=True, slots=True)
class _Part:
    """A directory output in a tree layer: its title, its entries and where they start among the result's."""

    title: str
    entries: Sequence[Entry]
    base: int
    order: Sequence[int] | None
    """The entries' indexes in walk order when they are not in it (a record mlpipe did not write)."""


class TreeMembers:
    """A tree layer's members in walk order, made from the outputs' packed entries each time they are iterated:
    no Member, path or key per file is held (issue 18: a 100,000-file tree held about 400 bytes a file)."""

    def __init__(self, parts: Sequence[_Part]) -> None:
        self._parts = tuple(sorted(parts, key=lambda p: p.title.replace("/", "\0")))

    def __iter__(self) -> Iterator[Member]:
        opened: list[str] = []  # the directories above the current member, outermost first
        for part in self._parts:
            yield from _enter(opened, part.title)
            title, entries, base = part.title, part.entries, part.base
            for j in range(len(entries)) if part.order is None else part.order:
                e = entries[j]
                path = f"{title}/{e.path}"
                yield from _enter(opened, path.rpartition("/")[0])
                if e.kind == "file" and e.size > RAW_THRESHOLD:
                    continue  # a layer of its own; its directories are members all the same
                kind: Literal["file", "link"] = "link" if e.kind == "link" else "file"
                yield Member(path, kind, ObjectKey(e.sha256, e.executable), e.size, base + j)

    def objects(self) -> Iterator[tuple[int, str, bool]]:
        """Each file and link member's (index, sha256, exec bit), in no set order: no path or Member made."""
        for part in self._parts:
            for j, e in enumerate(part.entries):
                if e.kind == "link" or e.size <= RAW_THRESHOLD:
                    yield part.base + j, e.sha256, e.executable


def _enter(opened: list[str], directory: str) -> Iterator[Member]:
    """The members for `directory` and those above it not yet given. In walk order a directory comes right
    before what it holds, and what it holds comes together, so the directories open are a stack."""
    while opened and not (directory == opened[-1] or directory.startswith(opened[-1] + "/")):
        opened.pop()
    start = len(opened[-1]) + 1 if opened else 0
    while len(directory) >= start and directory:
        end = directory.find("/", start)
        end = len(directory) if end < 0 else end
        opened.append(directory[:end])
        yield Member(directory[:end], "dir")
        start = end + 1


@frozen
class NamedLayer:
    kind: Literal["file", "tree"]
    title: str
    key: ObjectKey | None = None
    """A file layer's object."""
    size: int = 0
    """A file layer's size."""
    members: Iterable[Member] = ()
    """A tree layer's members, in walk order (TreeMembers: made each time they are iterated)."""
    index: int = -1
    """A file layer's entry among the result's entries (`entry_bases`)."""


def titles_for(outputs: Mapping[str, Manifest], paths: Mapping[str, str]) -> dict[str, str]:
    """Each output's name in the artifact: its repository-relative path when the step declares one, else its
    output name. Falls back to the names when the paths would clash (a record from elsewhere)."""
    titles = {name: paths.get(name, name) for name in outputs}
    try:
        check_tree(dict.fromkeys(titles.values()))
        if len(set(titles.values())) != len(titles):
            raise UnsafeTree("two outputs at one path")
    except UnsafeTree:
        return {name: name for name in outputs}
    return titles


def entry_bases(outputs: Mapping[str, Manifest]) -> dict[str, int]:
    """Where each output's entries start when all of a result's are numbered, outputs in name order."""
    bases, at = {}, 0
    for name in sorted(outputs):
        bases[name] = at
        at += len(outputs[name].entries)
    return bases


def plan_named(outputs: Mapping[str, Manifest], titles: Mapping[str, str]) -> list[NamedLayer]:
    """The layers of a result, in a fixed order: tree layers by title, then file layers by title."""
    files: dict[str, NamedLayer] = {}
    trees: dict[str, list[_Part]] = {}
    bases = entry_bases(outputs)
    for name in sorted(outputs):
        manifest, title, base = outputs[name], titles[name], bases[name]
        if manifest.type == "file":
            (entry,) = manifest.entries
            key = ObjectKey(entry.sha256, entry.executable)
            files[title] = NamedLayer("file", title, key, entry.size, index=base)
            continue
        entries = manifest.entries
        order = None if _in_walk_order(entries) else _walk_order(entries)
        trees.setdefault(title.split("/", 1)[0], []).append(_Part(title, entries, base, order))
        for j, e in enumerate(entries):
            if e.kind == "file" and e.size > RAW_THRESHOLD:
                path = f"{title}/{e.path}"
                files[path] = NamedLayer(
                    "file", path, ObjectKey(e.sha256, e.executable), e.size, index=base + j
                )
    layers = [NamedLayer("tree", top, members=TreeMembers(parts)) for top, parts in sorted(trees.items())]
    return layers + [files[t] for t in sorted(files)]


def first_of_each(outputs: Mapping[str, Manifest]) -> bytearray:
    """A byte per entry of the result (`entry_bases`): 1 for the first entry holding its object (sha256 and exec
    bit), 0 for each later one, which a pull does not write again. Raises LayerError when one sha256 is declared
    with two sizes. Found by sorting an int per entry (its sha256's first 64 bits and its index), not a dict of
    keys: about 50 bytes a file while it runs, none after."""
    bases = entry_bases(outputs)
    ordered: list[int] = []
    for name, base in bases.items():
        ordered.extend(
            int(sha[:16], 16) << 32 | base + j for j, sha in enumerate(_shas(outputs[name].entries))
        )
    ordered.sort()
    first = bytearray(b"\1") * len(ordered)
    starts = sorted((base, name) for name, base in bases.items() if len(outputs[name].entries))
    previous = -1
    group: list[int] = []
    for item in ordered:
        prefix = item >> 32
        if prefix != previous:
            if len(group) > 1:
                _later_copies(group, outputs, starts, first)
            group.clear()
            previous = prefix
        group.append(item & 0xFFFFFFFF)
    if len(group) > 1:
        _later_copies(group, outputs, starts, first)
    return first


def _later_copies(
    group: list[int], outputs: Mapping[str, Manifest], starts: list[tuple[int, str]], first: bytearray
) -> None:
    """Entries whose sha256s start alike, in index order (`starts`: each output holding entries, by its base):
    every size of one sha256 the same, and each object after its first marked 0 in `first`."""
    seen: dict[tuple[str, bool], int] = {}
    sizes: dict[str, int] = {}
    for g in group:
        base, name = starts[bisect.bisect_right(starts, (g, "\uffff")) - 1]
        e = outputs[name].entries[g - base]
        if sizes.setdefault(e.sha256, e.size) != e.size:
            raise LayerError(f"object {e.sha256[:12]} is declared with two sizes")
        if seen.setdefault((e.sha256, e.executable), g) != g:
            first[g] = 0


def _shas(entries: Sequence[Entry]) -> Iterator[str]:
    return entries.sha256s() if isinstance(entries, Entries) else (e.sha256 for e in entries)


def _paths(entries: Sequence[Entry]) -> Iterator[str]:
    return entries.paths() if isinstance(entries, Entries) else (e.path for e in entries)


def _in_walk_order(entries: Sequence[Entry]) -> bool:
    """Whether the paths come as a walk gives them ('/' below every character a name holds), as mlpipe
    writes every manifest."""
    previous = None
    for path in _paths(entries):
        key = path.replace("/", "\0")
        if previous is not None and key <= previous:
            return False
        previous = key
    return True


def _walk_order(entries: Sequence[Entry]) -> array[int]:
    """The entries' indexes sorted as walk order sorts their paths (a record written elsewhere)."""
    keys = [path.replace("/", "\0") for path in _paths(entries)]
    return array("Q", sorted(range(len(keys)), key=keys.__getitem__))


# -- tar headers ----------------------------------------------------------------------------------------------
_ZEROS = b"0000000\0" * 2 + b"00000000000\0"  # uid, gid, mtime
_MAGIC = b"ustar\x0000" + bytes(32 + 32) + b"0000000\0" * 2 + bytes(155 + 12)
"""magic, version, uname, gname, devmajor, devminor, prefix and the padding to 512."""
_TYPES = {"file": b"0", "link": b"2", "dir": b"5", "pax": b"x"}


def _ustar(name: bytes, mode: int, size: int, kind: str, link: bytes = b"") -> bytes:
    head = name.ljust(100, b"\0") + b"%07o\0" % mode + _ZEROS[:16] + b"%011o\0" % size + _ZEROS[16:]
    tail = _TYPES[kind] + link.ljust(100, b"\0") + _MAGIC
    checksum = b"%06o\0 " % (sum(head) + sum(tail) + 8 * ord(" "))
    return head + checksum + tail


def _fits(value: bytes) -> bool:
    return len(value) <= 100 and value.isascii()


def header(member: Member, link: bytes = b"") -> bytes:
    """The member's header: USTAR, with a PAX header before it when its path or link target does not fit."""
    name = member.path.encode() + (b"/" if member.kind == "dir" else b"")
    executable = member.key is not None and member.key.executable
    mode = 0o777 if member.kind == "link" else 0o755 if member.kind == "dir" or executable else 0o644
    size = member.size if member.kind == "file" else 0
    if _fits(name) and _fits(link):
        return _ustar(name, mode, size, member.kind, link)
    records = b""
    if not _fits(link):
        records += _pax_record(b"linkpath", link)
    if not _fits(name):
        records += _pax_record(b"path", name)
    pax = _ustar(b"PaxHeader", 0o644, len(records), "pax") + records + bytes(-len(records) % 512)
    short = name[:100].decode("ascii", "replace").encode("ascii", "replace")
    return pax + _ustar(short, mode, size, member.kind, link[:100] if _fits(link) else b"")


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length).encode()) + len(body) != length:
        length += 1
    return str(length).encode() + body


_END = bytes(1024)
_BLOCK_BYTES = 256 << 10


_AHEAD_FILES = 64
_AHEAD_BYTES = 4 << 20
"""How far small files are read ahead of the tar being made: at most 8 trees are made at once, so 32 MiB."""


def tar_blocks(members: Iterable[Member], open_object: Callable[[ObjectKey], str | Path]) -> Iterator[bytes]:
    """The tar of these members, in blocks of about 256 KiB, file contents read from `open_object(key)`.

    Files of at most 256 KiB are read ahead on 4 threads (a tree holds thousands: opening and reading them
    one after the other, not hashing their bytes, was most of the time it took to make one)."""
    # One pass over the members (a TreeMembers makes each as it goes), two cursors: the read-ahead runs at most
    # 64 small files ahead of the tar, so tee holds few.
    members, ahead_of = itertools.tee(members)
    small = (m for m in ahead_of if m.kind == "file" and 0 < m.size <= _BLOCK_BYTES)
    ahead: deque[tuple[Future[bytes], int]] = deque()
    ahead_bytes = 0
    block = bytearray()
    with ThreadPoolExecutor(4, thread_name_prefix="mlpipe-tar") as pool:
        try:
            for member in members:
                while len(ahead) < _AHEAD_FILES and ahead_bytes < _AHEAD_BYTES and (m := next(small, None)):
                    path = open_object(present(m.key, "a file member without its object"))
                    ahead.append((pool.submit(_read_small, path, m.size), m.size))
                    ahead_bytes += m.size
                if member.kind == "link":
                    key = present(member.key, "a link member without its object")
                    block += header(member, Path(open_object(key)).read_bytes())
                    continue
                block += header(member)
                if member.kind != "file" or not member.size:
                    continue
                if member.size <= _BLOCK_BYTES:
                    future, size = ahead.popleft()
                    ahead_bytes -= size
                    data = future.result()
                    if len(data) != member.size:
                        raise LayerError(f"{member.path!r} changed size while it was read")
                    block += data
                else:
                    for data in _read_large(open_object(present(member.key, "no object")), member):
                        block += data
                        if len(block) >= _BLOCK_BYTES:
                            yield bytes(block)
                            block.clear()
                block += bytes(-member.size % 512)
                if len(block) >= _BLOCK_BYTES:
                    yield bytes(block)
                    block.clear()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    block += _END
    yield bytes(block)


def _read_small(path: str | Path, size: int) -> bytes:
    """The whole file, and one byte more when it has grown (the caller checks the size)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, size + 1)
        while len(data) <= size and (more := os.read(fd, size + 1 - len(data))):
            data += more
        return data
    finally:
        os.close(fd)


def _read_large(path: str | Path, member: Member) -> Iterator[bytes]:
    fd = os.open(path, os.O_RDONLY)
    try:
        left = member.size
        while left > 0 and (data := os.read(fd, min(left, _BLOCK_BYTES))):
            yield data
            left -= len(data)
        if left or os.read(fd, 1):
            raise LayerError(f"{member.path!r} changed size while it was read")
    finally:
        os.close(fd)


# -- gzip of stored deflate blocks ---------------------------------------------------------------------------
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no flags, mtime 0, OS unknown
_STORED_MAX = 65535
_FINAL = b"\x01\x00\x00\xff\xff"


def gzip_size(tar_size: int) -> int:
    return len(_GZIP_HEADER) + tar_size + 5 * -(-tar_size // _STORED_MAX) + len(_FINAL) + 8


def stored_gzip(blocks: Iterable[bytes], tar_hash: hashlib._Hash | None = None) -> Iterator[bytes]:
    """`blocks` as a gzip stream of stored (uncompressed) deflate blocks of 65535 bytes: reproducible."""
    yield _GZIP_HEADER
    crc, total, pending = 0, 0, b""
    for block in blocks:
        if tar_hash is not None:
            tar_hash.update(block)
        crc = zlib.crc32(block, crc)
        total += len(block)
        data = pending + block if pending else block
        view, out, at = memoryview(data), bytearray(), 0
        while len(data) - at >= _STORED_MAX:
            out += b"\x00\xff\xff\x00\x00"
            out += view[at : at + _STORED_MAX]
            at += _STORED_MAX
        pending = bytes(view[at:])
        if out:
            yield bytes(out)
    if pending:
        n = len(pending)
        yield struct.pack("<BHH", 0, n, n ^ 0xFFFF) + pending
    yield _FINAL + struct.pack("<II", crc, total & 0xFFFFFFFF)


@frozen
class WrittenTree:
    digest: str
    """The layer's digest."""
    tar_digest: str
    """Its tar's digest, before gzip (`io.deis.oras.content.digest`)."""
    size: int


def write_tree(
    members: Iterable[Member], open_object: Callable[[ObjectKey], str | Path], out: BinaryIO
) -> WrittenTree:
    """Make a tree layer once, into `out` (a temp file: the upload body), hashing it on the way. Every file is
    opened and every header made once: the layer was made twice before, once into sha256 for its digest (the
    HEAD that skips a blob the registry has) and again as the body, which cost a push as much CPU as the upload."""
    layer, tar = hashlib.sha256(), hashlib.sha256()
    size = 0
    for block in stored_gzip(tar_blocks(members, open_object), tar):
        layer.update(block)
        out.write(block)
        size += len(block)
    return WrittenTree("sha256:" + layer.hexdigest(), "sha256:" + tar.hexdigest(), size)


def _padded(member: Member) -> int:
    return member.size + -member.size % 512 if member.kind == "file" else 0


def max_tree_size(members: Iterable[Member]) -> int:
    """An upper bound of a tree layer's size (link targets unknown): what a puller accepts at most."""
    tar = sum(1024 + 2 * MAX_LINK_BYTES + 512 + _padded(m) for m in members) + len(_END)
    return gzip_size(tar)


def check_member_paths(layers: Iterable[NamedLayer]) -> dict[str, int]:
    """Every title and member path is a plain relative name (titles come from records others wrote). Returns
    each tree layer's `max_tree_size`, found on the same pass over its members (each made as it comes)."""
    bounds = {}
    for layer in layers:
        check_name(layer.title)
        if layer.kind == "tree":
            bounds[layer.title] = max_tree_size(_checked(layer.members))
    return bounds


def _checked(members: Iterable[Member]) -> Iterator[Member]:
    for m in members:
        check_name(m.path)
        yield m


# -- pull: a tree layer streamed into the store -------------------------------------------------------------
_WRITERS = 8
_BATCH_FILES = 32
_BATCH_BYTES = 1 << 20
_MAX_BATCHES = 32
"""Batches handed to the writers and not yet reaped (with the 16 MiB bound: about 1,024 files waiting)."""


class TreeSink:
    """Extract a tree layer as it streams through `write`, checking every byte but file contents against the
    layout the result record gives. Each wanted file (and link) is checked against its sha256, then written to
    its object file, on `_WRITERS` threads: the stream's own thread, which a tree's pull waits for, only parses
    (a tree holds files of at most 1 MiB: creating and renaming them is most of the time). Files are handed over
    `_BATCH_FILES` at a time (a future and a thread hand-off per file cost more CPU than the file's own
    syscalls), at most 16 MiB of them waiting."""

    def __init__(
        self, members: Iterable[Member], wanted: bytearray, open_object: Callable[[ObjectKey], NewObject]
    ) -> None:
        self.wanted = wanted
        """A byte per entry of the result (`Member.index`), 1 while it is still to be committed (cleared then,
        so a retried download starts a fresh sink on the same bytes); a byte, not a set of keys (issue 18)."""
        self._members = iter(members)
        self._open = open_object
        self._gunzip = zlib.decompressobj(wbits=31)
        self._buffer = bytearray()
        self._member: Member | None = None
        self._expect = b""  # header bytes still to match
        self._left = 0
        self._pad = 0
        self._out: bytearray | None = None
        self._ended = False
        self._pool: ThreadPoolExecutor | None = None
        self._jobs: deque[tuple[Future[None], list[int], int]] = deque()
        self._queued = 0
        self._batch: list[tuple[Member, bytes | bytearray]] = []
        self._batch_bytes = 0
        self._next()

    def write(self, data: bytes) -> int:
        pending = data
        while pending:  # at most 256 KiB decompressed at a time: a gzip bomb never fills memory
            if self._gunzip.eof:
                raise LayerError("bytes after the end of the layer's gzip stream")
            try:
                self._feed(self._gunzip.decompress(pending, _BLOCK_BYTES))
            except zlib.error as error:
                raise LayerError(f"the layer is not a gzip stream ({error})") from None
            pending = self._gunzip.unconsumed_tail
        return len(data)

    def _next(self) -> None:
        member = next(self._members, None)
        self._member = member
        if member is None:
            self._expect = _END
        elif member.kind != "link":
            self._expect = header(member)

    def _feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._left:
                n = min(self._left, len(view))
                if self._out is not None:
                    self._out += view[:n]
                self._left -= n
                view = view[n:]
                if not self._left:
                    self._finish_file()
            elif self._pad:
                n = min(self._pad, len(view))
                if any(view[:n]):
                    raise LayerError("a tar member's padding is not zero")
                self._pad -= n
                view = view[n:]
                if not self._pad:
                    self._next()
            elif self._ended:
                raise LayerError("bytes after the end of the layer's tar")
            elif self._member is not None and self._member.kind == "link" and not self._expect:
                view = self._read_link(view)
            else:
                n = min(len(self._expect) - len(self._buffer), len(view))
                self._buffer += view[:n]
                view = view[n:]
                if not self._expect.startswith(self._buffer):
                    where = self._member.path if self._member else "the end of the tar"
                    raise LayerError(f"the layer's tar differs from its record at {where[:200]!r}")
                if len(self._buffer) == len(self._expect):
                    self._buffer.clear()
                    self._header_done()

    def _read_link(self, view: memoryview) -> memoryview:
        """A link's header holds its target: read it (a PAX header first when long), then check it as a whole."""
        need = 512
        while True:
            take = min(need - len(self._buffer), len(view))
            self._buffer += view[:take]
            view = view[take:]
            if len(self._buffer) < need:
                return view
            if self._buffer[156:157] == b"x" and need == 512:
                pax = _octal(bytes(self._buffer[124:136]))
                if pax > 64 << 10:
                    raise LayerError("a PAX header longer than 64 KiB")
                need = 512 + pax + -pax % 512 + 512
                continue
            break
        raw = bytes(self._buffer)
        self._buffer.clear()
        link = _link_of(raw)
        member = present(self._member, "a link header without its member")
        if header(member, link) != raw:
            raise LayerError(f"the layer's tar differs from its record at {member.path[:200]!r}")
        key = present(member.key, "a link member without its object")
        if hashlib.sha256(link).hexdigest() != key.sha256:
            raise LayerError(f"link {member.path[:200]!r} does not match its digest")
        if self.wanted[member.index]:
            self._submit(member, link)
        self._next()
        return view

    def _header_done(self) -> None:
        member = self._member
        if member is None:
            self._ended = True
            return
        self._expect = b""
        if member.kind != "file" or not member.size:
            if member.kind == "file":
                self._start_file(member)
                self._finish_file()
                return
            self._next()
            return
        self._start_file(member)
        self._left, self._pad = member.size, -member.size % 512

    def _start_file(self, member: Member) -> None:
        if self.wanted[member.index]:  # a later path with this content is not (first_of_each)
            self._out = bytearray()

    def _finish_file(self) -> None:
        out = self._out
        member = present(self._member, "file content without its member")
        if out is not None:
            self._out = None
            self._submit(member, out)  # the bytearray itself: it is this file's alone
        if not self._pad:
            self._next()

    def _submit(self, member: Member, data: bytes | bytearray) -> None:
        self._batch.append((member, data))
        self._batch_bytes += len(data)
        if len(self._batch) >= _BATCH_FILES or self._batch_bytes >= _BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self._batch:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(_WRITERS, thread_name_prefix="mlpipe-tree")
        batch, size = self._batch, self._batch_bytes
        self._batch, self._batch_bytes = [], 0
        indexes = [m.index for m, _ in batch]
        self._jobs.append((self._pool.submit(self._commit, batch), indexes, size))
        self._queued += size
        while len(self._jobs) > _MAX_BATCHES or self._queued > 16 << 20:
            self._reap()

    def _commit(self, batch: list[tuple[Member, bytes | bytearray]]) -> None:
        """Check each file against its sha256 (here, on the writers: the stream's own thread is what a tree's
        pull waits for), then write it to its object."""
        for member, data in batch:
            key = present(member.key, "a member without its object")
            if hashlib.sha256(data).hexdigest() != key.sha256:
                raise LayerError(f"{member.path[:200]!r} in a layer does not match its digest")
            out = self._open(key)
            try:
                out.write(data)
                out.commit()
            except FileNotFoundError:  # its temp file went under it: a concurrent `mlpipe gc` of the store
                out.discard()
                raise LayerError(f"object {key.sha256[:12]} was removed while it was written") from None
            except BaseException:
                out.discard()
                raise

    def _reap(self) -> None:
        job, indexes, size = self._jobs.popleft()
        self._queued -= size
        job.result()
        for index in indexes:
            self.wanted[index] = 0

    def close(self) -> None:
        """Wait for the writes under way (after an error: what was checked may still be committed)."""
        self._out = None
        self._batch.clear()
        while self._jobs:
            with contextlib.suppress(Exception):
                self._reap()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def finish(self) -> None:
        self._flush()
        while self._jobs:
            self._reap()
        self.close()
        if not (self._ended and self._gunzip.eof) or self._gunzip.unused_data:
            raise LayerError("the layer ends before its tar does, or has bytes after its gzip stream")


def _octal(field: bytes) -> int:
    digits = field.split(b"\0", 1)[0].strip()
    if not digits or not all(48 <= c <= 55 for c in digits):
        raise LayerError("a tar header's size is not an octal number")
    return int(digits, 8)


def _link_of(raw: bytes) -> bytes:
    """A link member's target: the PAX `linkpath` when there is a PAX header, else the USTAR field."""
    if raw[156:157] == b"x":
        records = raw[512 : 512 + _octal(raw[124:136])]
        for line in records.split(b"\n"):
            _, _, record = line.partition(b" ")
            key, _, value = record.partition(b"=")
            if key == b"linkpath":
                return value
        raw = raw[-512:]
    return raw[157:257].split(b"\0", 1)[0]
