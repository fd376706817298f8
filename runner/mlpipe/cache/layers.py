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
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mlpipe.digest import Entry

RAW_THRESHOLD = 1 << 20
CHUNK_MAX_BYTES = 16 << 20
CHUNK_MAX_FILES = 1024
CUT_MASK = 0xFF
"""A chunk ends after an object whose sha256 has these bits zero: about 256 files per chunk."""

TAR_MEDIA_TYPE = "application/vnd.mlpipe.objects.v1.tar"
RAW_MEDIA_TYPE = "application/vnd.mlpipe.object.v1"
_KEY = re.compile(r"[0-9a-f]{64}(\.x)?")


@dataclass(frozen=True, order=True)
class ObjectKey:
    sha256: str
    executable: bool

    @property
    def name(self) -> str:
        return self.sha256 + (".x" if self.executable else "")

    @staticmethod
    def parse(name: str) -> ObjectKey:
        if not _KEY.fullmatch(name):
            raise ValueError(f"not an object name: {name!r}")
        return ObjectKey(name[:64], name.endswith(".x"))


@dataclass(frozen=True)
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


class _HashingWriter:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.out.write(data)


def write_tar(objects: Iterable[tuple[ObjectKey, Path]], out: IO[bytes]) -> tuple[str, int]:
    """Write a reproducible tar of these object files to `out`; return its digest and size."""
    writer = _HashingWriter(out)
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.USTAR_FORMAT) as tar:  # type: ignore[call-overload]
        for key, path in objects:
            info = tarfile.TarInfo(key.name)
            info.size = os.path.getsize(path)
            info.mtime = 0
            info.mode = 0o555 if key.executable else 0o444
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            with open(path, "rb") as f:
                tar.addfile(info, f)
    return "sha256:" + writer.hash.hexdigest(), writer.size
