"""URL inputs: downloaded once, streamed into the store's temp dir, verified against the declared sha256.

A file whose sha256 is already an object in the store is never downloaded again; nothing unverified is stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mlpipe.cache.base import ResultStore
from mlpipe.digest import Entry, Manifest
from mlpipe.errors import present
from mlpipe.events import TRAFFIC, Sink, cache_note, to_stderr
from mlpipe.inputs.base import InputUnavailable
from mlpipe.text import human_size

TIMEOUT_S = 30.0
"""Per connect and per read: a stalled server fails instead of hanging the run."""
ATTEMPTS = 3
_CHUNK = 1 << 20


class DownloadError(InputUnavailable):
    """A URL input could not be downloaded, or its content is not what the pipeline file declares."""


def redact(url: str) -> str:
    """The URL without user:password, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=f"***@{netloc}"))


def file_name(url: str, fallback: str) -> str:
    """The name the step sees the file under: the URL's last path segment, so extensions survive."""
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    return name if name and name not in {".", ".."} else fallback


def stored_manifest(store: ResultStore, sha256: str) -> Manifest | None:
    entry = Entry(path="", kind="file", executable=False, size=0, sha256=sha256)
    try:
        size = store.local.object_path(entry).stat().st_size
    except FileNotFoundError:
        return None
    return Manifest(
        type="file", entries=(Entry(path="", kind="file", executable=False, size=size, sha256=sha256),)
    )


def fetch(
    store: ResultStore,
    *,
    name: str,
    url: str,
    sha256: str,
    timeout_s: float = TIMEOUT_S,
    attempts: int = ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
    sink: Sink = to_stderr,
) -> Manifest:
    """The stored file's manifest, downloading and verifying it first when the store lacks it (and saying so
    in one line: what, how much, how long)."""
    found = stored_manifest(store, sha256)
    if found is not None:
        return found
    temp = store.local.temp_path(".download")
    started = time.monotonic()
    try:
        got = _download(url, temp, name=name, timeout_s=timeout_s, attempts=attempts, sleep=sleep)
        if got != sha256:
            raise DownloadError(
                f"input {name!r}: {redact(url)} has sha256 {got}, the pipeline file declares {sha256}; "
                "nothing was stored (update the sha256 if the file was meant to change)"
            )
        os.chmod(temp, 0o444)
        target = store.local.object_path(Entry(path="", kind="file", executable=False, size=0, sha256=sha256))
        target.parent.mkdir(parents=True, exist_ok=True)
        size = temp.stat().st_size
        os.replace(temp, target)
        took = time.monotonic() - started
        sink(cache_note(f"downloaded input {name!r} from {redact(url)} ({human_size(size)}) in {took:.1f}s"))
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return present(stored_manifest(store, sha256), "a download stored but not found in the store")


def _download(
    url: str, dest: Path, *, name: str, timeout_s: float, attempts: int, sleep: Callable[[float], None]
) -> str:
    """Stream `url` into `dest`, returning its sha256; transient failures are retried with backoff."""
    last = ""
    for attempt in range(attempts):
        if attempt:
            sleep(min(8.0, 0.5 * 2**attempt))
        try:
            digest = hashlib.sha256()
            request = urllib.request.Request(url, headers={"User-Agent": "mlpipe"})
            with urllib.request.urlopen(request, timeout=timeout_s) as response, open(dest, "wb") as out:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    TRAFFIC.add(received=len(chunk))
            return digest.hexdigest()
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code} {error.reason}"
            if error.code < 500 and error.code not in {408, 429}:
                break  # the server answered: asking again will not change its mind
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            reason = error.reason if isinstance(error, urllib.error.URLError) else error
            text = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
            last = text or type(reason).__name__
    tries = "1 attempt" if attempt == 0 else f"{attempt + 1} attempts"
    raise DownloadError(f"input {name!r}: cannot download {redact(url)} ({last}, {tries})")
