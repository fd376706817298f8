"""The parsed-pipeline cache: a pipeline file that loaded without a problem is kept, parsed and checked, in
`.mlpipe/pipelines/<id>.json`, so that a command on an unchanged file neither imports YAML nor parses and checks
the file again (issue 18: the no-op `ci-run` and `plan`).

An entry is used only while everything the loaded pipeline depends on is as it was: the file's stat data and
the sha256 of its bytes (read every time: a file edited within one mtime tick differs in content), where it is
and the name messages give it, this mlpipe's version and spec sources, Python's version, and every answer the
loader had from the disk (spec/facts.py: code directories, input paths, data files' records, links on output
paths). `-p` overrides are applied after (spec/params.py), so they do not enter the key.

The file is untrusted: it must hold byte for byte the key this load expects and the sha256 of its body, and
the body must pass spec/stored.py's checks; anything else is a miss, and the file is parsed as usual. The body
is sealed with the pipeline file's bytes (`_seal`): a token written in the file (an env value) is no more
readable in `.mlpipe/` than in the run records. It is written whole to a temporary file and renamed over the
entry, so concurrent runs and a kill leave either the old entry or the new one. A file with problems is never
kept: errors always come from a real parse.
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import json
import os
import stat
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import mlpipe
from mlpipe.paths import Workspace
from mlpipe.records import BadRecord
from mlpipe.spec import stored
from mlpipe.spec.facts import Facts, display_path, still_true
from mlpipe.spec.model import Pipeline
from mlpipe.spec.params import with_overrides

FORMAT = "mlpipe.pipeline-cache/1"
MAX_FILE = 1 << 20
"""What spec/load.py reads of a pipeline file at most; a larger one is parsed (and refused) as usual."""
MAX_ENTRY = 64 << 20
"""A stored pipeline is about ten times its file's size."""
SPEC = Path(stored.__file__).parent
STALE_S = 600
"""A temporary entry this old was left by a writer that was killed."""


def load(path: Path, overrides: Mapping[str, str] = {}, *, make_state: bool = False) -> Pipeline:
    """The pipeline file at `path`, loaded and checked (spec/load.py `load_pipeline`), from the cache when it
    holds this file as it is now. A miss is stored when the workspace has a `.mlpipe/` (`make_state`: make it)."""
    read = _read(path)
    if read is None:  # unreadable or too large: the loader says so
        return _parse(path, overrides, None, Facts())
    raw, signature = read
    file = path.resolve()
    workspace = Workspace(file.parent)
    display = display_path(path)
    key = _key(file, display, signature, raw)
    entry = workspace.pipelines / f"{hashlib.sha256(os.fsencode(file)).hexdigest()[:32]}.json"
    cached = _lookup(entry, key, raw, file, display)
    found = None if cached is None else with_overrides(cached, overrides)
    if found is not None:
        return found
    facts = Facts()
    pipeline = _parse(path, overrides, raw, facts)  # raises SpecError: nothing is stored
    if cached is None and (make_state or workspace.state.is_dir()):
        _store(workspace, entry, key, _seal(raw, stored.to_json(pipeline, facts.listed())))
    return pipeline


def _parse(path: Path, overrides: Mapping[str, str], raw: bytes | None, facts: Facts) -> Pipeline:
    from mlpipe.spec.load import load_pipeline  # PyYAML and the checks: only when the cache cannot answer

    return load_pipeline(path, overrides=overrides, raw=raw, facts=facts)


def _read(path: Path) -> tuple[bytes, list[int]] | None:
    """The file's bytes and its stat data, read from one open file."""
    try:
        with path.open("rb") as stream:
            st = os.fstat(stream.fileno())
            raw = stream.read(MAX_FILE + 1)
    except OSError:
        return None
    if len(raw) > MAX_FILE:
        return None
    return raw, [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _key(file: Path, display: str, signature: list[int], raw: bytes) -> bytes:
    """Line 1 of the entry: everything the parsed pipeline depends on but the disk's answers, which the entry
    lists (spec/facts.py) and `_lookup` asks again."""
    key = {
        "format": FORMAT,
        "mlpipe": mlpipe.__version__,
        "python": sys.hexversion,
        "spec": _spec_sources(),
        "file": os.fsdecode(file),
        "display": display,
        "stat": signature,
        "sha256": hashlib.sha256(raw).hexdigest(),
    }
    return json.dumps(key, sort_keys=True, separators=(",", ":")).encode()


def _spec_sources() -> list[list[object]]:
    """The loader's sources by name, size and mtime: an edited checkout (an editable install keeps its version
    number) is not answered from entries its old code wrote."""
    try:
        with os.scandir(SPEC) as entries:
            found = [[e.name, *_stat_of(e)] for e in entries if e.name.endswith(".py")]
    except OSError:
        return []
    return sorted(found)


def _stat_of(entry: os.DirEntry[str]) -> list[int]:
    st = entry.stat()
    return [st.st_size, st.st_mtime_ns]


def _lookup(entry: Path, key: bytes, raw: bytes, file: Path, display: str) -> Pipeline | None:
    """The pipeline the entry holds for `key`, if its file is whole, it passes every check and the disk still
    answers the loader's questions as it did."""
    content = _read_entry(entry)
    body = None if content is None else _unpack(content, key)
    if body is None:
        return None
    try:
        data = json.loads(_unseal(raw, body))
        pipeline, facts = stored.from_json(data, file=file, root=file.parent, display=display)
        return pipeline if still_true(facts) else None
    except (BadRecord, ValueError, RecursionError, OSError):
        return None  # a foreign, damaged or hostile entry: parse the file


def _read_entry(entry: Path) -> bytes | None:
    """At most MAX_ENTRY bytes of a regular file; never follows a link, never waits on a FIFO."""
    try:
        fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as stream:
            data = stream.read(MAX_ENTRY + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) <= MAX_ENTRY else None


def _pack(key: bytes, body: bytes) -> bytes:
    """The entry: one JSON object, `{"key":KEY,"sha256":HEX,"sealed":BASE64}`, with the key as `_key` writes it
    and the sha256 of the base64 text."""
    sealed = binascii.b2a_base64(body, newline=False)
    return b'{"key":%s,"sha256":"%s","sealed":"%s"}' % (
        key,
        hashlib.sha256(sealed).hexdigest().encode(),
        sealed,
    )


def _unpack(content: bytes, key: bytes) -> bytes | None:
    """The sealed body of an entry written by `_pack` for this very key, whole; else None."""
    head = b'{"key":%s,"sha256":"' % key
    if not content.startswith(head) or not content.endswith(b'"}'):
        return None
    checksum, sep, sealed = content[len(head) : -2].partition(b'","sealed":"')
    if not sep or checksum != hashlib.sha256(sealed).hexdigest().encode():
        return None
    try:
        return binascii.a2b_base64(sealed, strict_mode=True)
    except binascii.Error:
        return None


def _keystream(raw: bytes, size: int) -> bytes:
    """Bytes only the pipeline file's content gives (the key line holds another hash of it)."""
    return hashlib.shake_256(FORMAT.encode() + b"\0" + raw).digest(size)


def _seal(raw: bytes, data: object) -> bytes:
    """The body, XORed with a keystream of the pipeline file's bytes: what a file holds in plain text (an env
    value that is a token) is kept out of `.mlpipe/` like out of run records; the file itself unseals it."""
    plain = json.dumps(data, separators=(",", ":")).encode()
    return (int.from_bytes(plain) ^ int.from_bytes(_keystream(raw, len(plain)))).to_bytes(len(plain))


def _unseal(raw: bytes, body: bytes) -> bytes:
    return (int.from_bytes(body) ^ int.from_bytes(_keystream(raw, len(body)))).to_bytes(len(body))


def _store(workspace: Workspace, entry: Path, key: bytes, body: bytes) -> None:
    """Written whole beside the entry, then renamed over it; a store that fails (a read-only workspace, a
    `.mlpipe` that is no directory: the command that needs it says so) leaves the cache as it was."""
    content = _pack(key, body)
    temp = entry.with_name(f".{entry.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        workspace.make_state()
        entry.parent.mkdir(exist_ok=True)
        temp.write_bytes(content)
        os.replace(temp, entry)
    except OSError:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        return
    _sweep(entry.parent)


def _sweep(folder: Path) -> None:
    """Remove the temporary files of writers killed between write and rename (a write takes microseconds, so
    one older than STALE_S is nobody's)."""
    stale = time.time() - STALE_S
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for found in entries:
            if found.name.startswith(".") and found.name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    if found.stat(follow_symlinks=False).st_mtime < stale:
                        os.unlink(found.path)
