"""The OCI distribution API over requests: auth, timeouts, retries within a per-run budget, streamed blobs.

oras-py reads whole blobs into memory, sets no timeouts and ignores Retry-After, so transfers are ours (oras-py
is only a test client, for interoperability). Credentials are found by mlpipe.cache.logins and live only in
`Credentials` (whose repr hides the secret) and in request headers, never in messages; which certificate
authorities are trusted is mlpipe.cache.tls's business.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import ipaddress
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import urlsplit

import requests
import urllib3

from mlpipe.cache.logins import Credentials, fix_hint
from mlpipe.cache.tls import Trust, new_session, trust_from, untrusted
from mlpipe.errors import CacheError
from mlpipe.events import TRAFFIC

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
USER_AGENT = "mlpipe"
_CHUNK = 256 << 10
"""Read size of streamed blobs: 1 MiB chunks in 8 download threads cost about 17 MiB of peak RSS."""
MAX_MANIFEST = 4 << 20
"""The distribution spec asks registries to accept manifests up to 4 MiB; a larger one is not read."""
MIN_ATTEMPT_S = 1.0
"""The shortest connect or read timeout of an attempt, however little of the retry budget is left."""


class RegistryUnavailable(CacheError):
    """The registry stopped answering within the retry budget; the run goes on without it."""


class RegistryAuthError(CacheError):
    """The registry refused the credentials (or their absence)."""


class BlobCorrupt(CacheError):
    """A downloaded blob does not match its digest."""


@dataclass
class RetryBudget:
    """Seconds of retrying (waits and failed attempts) allowed per run, shared by every request."""

    total_s: float = 30.0
    spent_s: float = 0.0
    unavailable: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def left_s(self) -> float:
        with self._lock:
            return self.total_s - self.spent_s

    def spend(self, seconds: float) -> bool:
        with self._lock:
            self.spent_s += seconds
            if self.spent_s >= self.total_s:
                self.unavailable = True
            return not self.unavailable


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


_HASH_APART = 8 << 20
"""A blob at least this large is hashed on a thread of its own as it streams in: its sink (a tree layer checked
and cut into files) is what a pull waits for, and on two cores the hash can run beside it."""


class _HashApart:
    """sha256 of the chunks given to `update`, computed on its own thread, at most 4 chunks (1 MiB) behind."""

    def __init__(self) -> None:
        import queue

        self._hash = hashlib.sha256()
        self._chunks: queue.Queue[bytes | None] = queue.Queue(4)
        self._thread = threading.Thread(target=self._run, name="mlpipe-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            self._hash.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._chunks.put(chunk)

    def hexdigest(self) -> str:
        self._chunks.put(None)
        self._thread.join()
        return self._hash.hexdigest()


def _retry_after(response: requests.Response | None) -> float | None:
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed is not None else None


class RegistryClient:
    """One registry host; every method takes the repository it works on."""

    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None = None,
        plain_http: bool | None = None,
        environ: Mapping[str, str] | None = None,
        budget: RetryBudget | None = None,
        timeout: tuple[float, float] = (5.0, 60.0),
        warn: Callable[[str], None] | None = None,
    ) -> None:
        """`plain_http`: True for plain HTTP, False for HTTPS, None for plain HTTP to loopback hosts only.
        `environ`: where the certificate authorities to trust are named (mlpipe.cache.tls)."""
        self.host = host
        self.plain_http = is_loopback(host) if plain_http is None else plain_http
        self.base = f"{'http' if self.plain_http else 'https'}://{host}"
        self.credentials = credentials
        self.environ: Mapping[str, str] = environ or {}
        self._trust: Trust | None = None
        self.budget = budget or RetryBudget()
        self.timeout = timeout
        self.warn = warn or (lambda message: None)
        self._local = threading.local()
        self._tokens: dict[str, str] = {}
        self._basic = False
        self._lock = threading.Lock()
        self._token_lock = threading.Lock()
        """Held while fetching a token: requests refused together share one new token."""
        self._warned = False

    @property
    def _session(self) -> requests.Session:
        # One session per thread: pushes run in background threads while lookups run in the scheduler.
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = new_session(self.trust)
            session.headers["User-Agent"] = USER_AGENT
        return session

    @property
    def trust(self) -> Trust:
        """The certificate authorities this client trusts; a CA variable naming no file raises CacheError."""
        if self._trust is None:
            self._trust = trust_from(self.environ)
        return self._trust

    # -- requests --------------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        repo: str,
        push: bool = False,
        ok: tuple[int, ...] = (200,),
        body: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One API call, retried on connection errors, 5xx and 429 while the run's budget lasts.

        Statuses in `ok` (and 404) are returned; others raise CacheError. `body` makes a fresh request body
        per attempt (a file opened again), so a retried upload streams from the start.
        """
        url = path if path.startswith(("http://", "https://")) else f"{self.base}{path}"
        attempt = 0
        authed_once = False
        while True:
            if self.budget.unavailable:
                raise RegistryUnavailable(f"registry {self.host} is unavailable for the rest of this run")
            headers = dict(kwargs.pop("headers", None) or {})
            auth = self._auth_header(repo, push)
            if auth:
                headers["Authorization"] = auth
            started = time.monotonic()
            response: requests.Response | None = None
            error: str
            opened = body() if body is not None else None
            try:
                response = self._session.request(
                    method,
                    url,
                    headers=headers,
                    data=opened,
                    timeout=self._attempt_timeout(),
                    allow_redirects=True,
                    **kwargs,
                )
            except requests.exceptions.SSLError as exc:
                problem = untrusted(exc, self.host, self.trust)
                if problem is not None:
                    raise problem from None
                error = type(exc).__name__
            except requests.RequestException as exc:
                error = type(exc).__name__
            finally:
                if opened is not None and hasattr(opened, "close"):
                    opened.close()
            kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
            if response is not None:
                if response.status_code == 401 and not authed_once:
                    authed_once = True
                    response.close()
                    self._authenticate(response, repo, push, auth)
                    continue
                if response.status_code == 401 or response.status_code == 403:
                    response.close()
                    error = _challenge(response.headers.get("WWW-Authenticate", "")).get("error", "")
                    raise RegistryAuthError(self._auth_message(response.status_code, repo, push, error))
                if response.status_code in ok or response.status_code == 404:
                    return response
                if response.status_code < 500 and response.status_code != 429:
                    detail = response.text[:300]
                    response.close()
                    raise CacheError(
                        f"registry {self.host}: {method} {path.split('?')[0]} answered "
                        f"{response.status_code}: {detail}"
                    )
                error = f"HTTP {response.status_code}"
                response.close()
            attempt += 1
            self._back_off(error, started, attempt, _retry_after(response))

    def _attempt_timeout(self) -> tuple[float, float]:
        """(connect, read) timeouts of the next attempt: never more than what is left of the retry budget (at
        least MIN_ATTEMPT_S), so a registry that stalls is given up on with the budget, not after 60 s a read."""
        left = max(MIN_ATTEMPT_S, self.budget.left_s)
        return min(self.timeout[0], left), min(self.timeout[1], left)

    def _back_off(self, error: str, started: float, attempt: int, retry_after: float | None) -> None:
        """Charge a failed attempt and the wait before the next to the run's budget, then wait; once the budget
        is spent, give up (RegistryUnavailable)."""
        wait = retry_after
        if wait is None:
            wait = min(8.0, 0.25 * 2**attempt) * (0.5 + random.random() / 2)
        if not self.budget.spend(time.monotonic() - started + wait):
            self._give_up(error)
        time.sleep(wait)

    def _give_up(self, error: str) -> None:
        message = (
            f"registry {self.host} is not answering ({error}); retry budget of {self.budget.total_s:g}s spent"
        )
        with self._lock:
            first = not self._warned
            self._warned = True
        if first:
            self.warn(f"{message}, going on without it for the rest of this run")
        raise RegistryUnavailable(message)

    def _auth_message(self, status: int, repo: str, push: bool, error: str = "") -> str:
        action = "push to" if push else "pull from"
        if self.credentials is None:
            how = (
                "no credentials were found (set MLPIPE_REGISTRY_USERNAME and MLPIPE_REGISTRY_PASSWORD, "
                "GITHUB_TOKEN for ghcr.io, or log in with docker, podman, skopeo or buildah login)"
            )
        elif error == "insufficient_scope":  # accepted, but the token service granted less than asked
            how = (
                f"the credentials from {self.credentials.source} may not {action.split()[0]} there "
                f"(the registry's token grants less); {fix_hint(self.credentials)}"
                + (", or read only with --cache-mode read" if push else "")
            )
        else:
            how = f"the credentials from {self.credentials.source} were refused; {fix_hint(self.credentials)}"
        return f"registry {self.host} answered {status}: cannot {action} {repo}: {how}"

    def _auth_header(self, repo: str, push: bool) -> str | None:
        with self._lock:
            token = self._tokens.get(_scope(repo, push)) or (self._tokens.get(_scope(repo, True)))
        if token:
            return f"Bearer {token}"
        if self._basic and self.credentials is not None:
            raw = f"{self.credentials.username}:{self.credentials.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        return None

    def _authenticate(self, response: requests.Response, repo: str, push: bool, used: str | None) -> None:
        """Answer a 401: basic credentials from now on, or a bearer token from the challenge's realm.

        The token is asked for the scopes the challenge names as well as our own (a cross-repository mount
        needs pull on the source repository too), and kept for every later request on this repository.
        """
        header = response.headers.get("WWW-Authenticate", "")
        if header.lower().startswith("basic"):
            if self.credentials is None:
                raise RegistryAuthError(self._auth_message(401, repo, push))
            self._basic = True
            return
        challenge = _challenge(header)
        realm = challenge.get("realm", "")
        if not header.lower().startswith("bearer") or not realm.startswith(("https://", "http://")):
            raise RegistryAuthError(
                f"registry {self.host} sent an authentication challenge mlpipe cannot use"
            )
        if realm.startswith("http://") and not (self.plain_http or is_loopback(urlsplit(realm).netloc)):
            raise RegistryAuthError(
                f"registry {self.host} asks for credentials to be sent to {realm.split('?')[0]} over plain "
                "HTTP; mlpipe sends them only over HTTPS, to loopback hosts, or with --plain-http"
            )
        key = _scope(repo, push)
        scopes = [key, *(s for s in challenge.get("scope", "").split() if s != key)]
        with self._token_lock:
            with self._lock:
                current = self._tokens.get(key)
            if current is not None and f"Bearer {current}" != used:
                return  # another thread fetched a new token while this request was refused
            token = self._fetch_token(realm, challenge.get("service", ""), scopes, repo, push)
            with self._lock:
                self._tokens[key] = token

    def _fetch_token(self, realm: str, service: str, scopes: list[str], repo: str, push: bool) -> str:
        params = {"service": service, "scope": scopes}
        auth = (self.credentials.username, self.credentials.password) if self.credentials else None
        try:
            answer = self._session.get(realm, params=params, auth=auth, timeout=self._attempt_timeout())
        except requests.exceptions.SSLError as exc:
            problem = untrusted(exc, urlsplit(realm).netloc, self.trust)
            raise problem or RegistryUnavailable(f"token service of {self.host}: SSLError") from None
        except requests.RequestException as exc:
            raise RegistryUnavailable(f"token service of {self.host}: {type(exc).__name__}") from None
        with answer:
            if answer.status_code in {401, 403}:
                raise RegistryAuthError(self._auth_message(answer.status_code, repo, push))
            try:
                data = answer.json()
                token = data.get("token") or data.get("access_token")
            except (ValueError, AttributeError):
                token = None
        if not isinstance(token, str) or not token:
            raise RegistryAuthError(
                f"registry {self.host}: its token service answered {answer.status_code} without a token"
            )
        return token

    # -- blobs -----------------------------------------------------------------------------------------
    def has_blob(self, repo: str, digest: str) -> bool:
        response = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", repo=repo)
        response.close()
        return response.status_code == 200

    def ensure_blob(
        self,
        repo: str,
        digest: str,
        size: int,
        open_body: Callable[[], IO[bytes] | Iterable[bytes | bytearray]],
        mount_from: Sequence[str] = (),
    ) -> None:
        """Upload a blob unless the repository has it, or another repository it reads can lend it (a mount)."""
        if self.has_blob(repo, digest):
            return
        for other in mount_from:
            if other != repo and self.has_blob(other, digest) and self.mount_blob(repo, digest, other):
                return
        self.upload_blob(repo, digest, size, open_body)

    def upload_blob(
        self,
        repo: str,
        digest: str,
        size: int,
        open_body: Callable[[], IO[bytes] | Iterable[bytes | bytearray]],
    ) -> None:
        """POST for an upload URL, then one streamed PUT (monolithic upload).

        `open_body` gives a file object or a sized iterable of blocks (sent as they come, with Content-Length),
        fresh for each attempt."""
        started = self.request("POST", f"/v2/{repo}/blobs/uploads/", repo=repo, push=True, ok=(202,))
        started.close()
        location = started.headers.get("Location", "")
        if started.status_code != 202 or not location:
            raise CacheError(f"registry {self.host} did not start an upload to {repo}")
        if location.startswith("/"):
            location = self.base + location
        separator = "&" if "?" in location else "?"
        put = self.request(
            "PUT",
            f"{location}{separator}digest={digest}",
            repo=repo,
            push=True,
            ok=(201,),
            body=lambda: _Counted(open_body(), size),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        put.close()
        if put.status_code != 201:
            raise CacheError(f"registry {self.host} did not accept blob {digest[:19]} in {repo}")

    def upload_bytes(self, repo: str, digest: str, data: bytes) -> None:
        import io

        self.upload_blob(repo, digest, len(data), lambda: io.BytesIO(data))

    def download_blob(self, repo: str, digest: str, out: IO[bytes], *, max_size: int | None = None) -> int:
        """Stream a blob into `out` (a file, rewound for a retry), verifying its sha256; returns its size."""

        def rewound() -> Callable[[bytes], object]:
            out.seek(0)
            out.truncate()
            return out.write

        return self.download_blob_to(repo, digest, rewound, max_size=max_size)

    def download_blob_to(
        self,
        repo: str,
        digest: str,
        new_sink: Callable[[], Callable[[bytes], object]],
        *,
        max_size: int | None,
    ) -> int:
        """Stream a blob into the write function `new_sink()` gives, verifying its sha256; returns its size.

        A body that breaks off (a dropped connection, a stall past the attempt's timeout, a truncated response)
        or arrives corrupt is fetched again, into a fresh sink, while the run's retry budget lasts: nothing of a
        broken attempt is kept. Raises BlobCorrupt for a blob that is missing, larger than `max_size`, or corrupt
        twice in a row (the registry holds it so); RegistryUnavailable once the budget is spent.
        """
        attempt = corrupt = 0
        while True:
            started = time.monotonic()
            got = self._stream(f"/v2/{repo}/blobs/{digest}", repo, new_sink, max_size, f"blob {digest[:19]}")
            if got is None:
                raise BlobCorrupt(f"blob {digest[:19]} is missing from {repo}")
            size, actual, error = got
            if error is None:
                if actual == digest:
                    return size
                corrupt += 1
                if corrupt >= 2:
                    raise BlobCorrupt(f"blob {digest[:19]} in {repo} does not match its digest")
                error = f"blob {digest[:19]} arrived corrupt ({size} bytes)"
            else:
                corrupt = 0
            attempt += 1
            self._back_off(error, started, attempt, None)

    def _stream(
        self,
        path: str,
        repo: str,
        new_sink: Callable[[], Callable[[bytes], object]],
        max_size: int | None,
        what: str,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, str, str | None] | None:
        """One GET streamed into a fresh sink: (size, sha256 digest, why it broke off or None); None on 404."""
        response = self.request("GET", path, repo=repo, stream=True, headers=dict(headers or {}))
        with response:
            if response.status_code == 404:
                return None
            declared = response.headers.get("Content-Length", "")
            if max_size is not None and declared.isdigit() and int(declared) > max_size:
                raise BlobCorrupt(f"{what} in {repo} is {declared} bytes, more than the {max_size} expected")
            write = new_sink()
            large = declared.isdigit() and int(declared) >= _HASH_APART
            hasher: Any = _HashApart() if large else hashlib.sha256()
            size = 0
            try:
                for chunk in response.iter_content(_CHUNK):
                    size += len(chunk)
                    if max_size is not None and size > max_size:
                        raise BlobCorrupt(f"{what} in {repo} is larger than {max_size} bytes")
                    hasher.update(chunk)
                    write(chunk)
                    TRAFFIC.add(received=len(chunk))
            except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                return size, "", f"{what} broke off after {size} bytes: {type(exc).__name__}"
            finally:
                digest = hasher.hexdigest()
        return size, "sha256:" + digest, None

    def blob_bytes(self, repo: str, digest: str, *, max_size: int = 256 << 20) -> bytes:
        import io

        buffer = io.BytesIO()
        self.download_blob(repo, digest, buffer, max_size=max_size)
        return buffer.getvalue()

    # -- manifests and tags ----------------------------------------------------------------------------
    def get_manifest(
        self, repo: str, reference: str, *, accept: str = MANIFEST_TYPE
    ) -> tuple[bytes, str] | None:
        """A manifest's bytes and digest; None when absent. A body that breaks off is fetched again within the
        retry budget; one larger than MAX_MANIFEST raises BlobCorrupt unread."""
        buffer = bytearray()

        def fresh() -> Callable[[bytes], object]:
            buffer.clear()
            return buffer.extend

        attempt = 0
        while True:
            started = time.monotonic()
            what = f"manifest {repo}:{reference[:80]}"
            got = self._stream(
                f"/v2/{repo}/manifests/{reference}",
                repo,
                fresh,
                MAX_MANIFEST,
                what,
                {"Accept": accept},
            )
            if got is None:
                return None
            _, digest, error = got
            if error is None:
                return bytes(buffer), digest
            attempt += 1
            self._back_off(error, started, attempt, None)

    def has_manifest(self, repo: str, reference: str, *, push: bool = False) -> bool:
        response = self.request(
            "HEAD",
            f"/v2/{repo}/manifests/{reference}",
            repo=repo,
            push=push,
            headers={"Accept": MANIFEST_TYPE},
        )
        response.close()
        return response.status_code == 200

    def put_manifest(self, repo: str, reference: str, data: bytes) -> None:
        response = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            repo=repo,
            push=True,
            ok=(201,),
            body=lambda: data,
            headers={"Content-Type": MANIFEST_TYPE},
        )
        response.close()
        if response.status_code != 201:
            raise CacheError(f"registry {self.host} did not accept the manifest {repo}:{reference}")

    def tags(self, repo: str) -> Iterator[str]:
        path: str | None = f"/v2/{repo}/tags/list?n=1000"
        while path:
            response = self.request("GET", path, repo=repo)
            with response:
                if response.status_code == 404:
                    return
                try:
                    data = response.json()
                except ValueError:
                    raise CacheError(
                        f"registry {self.host} answered a tag list of {repo} that is not JSON"
                    ) from None
                link = response.headers.get("Link", "")
            tags = data.get("tags") if isinstance(data, dict) else None
            yield from (t for t in tags or [] if isinstance(t, str)) if isinstance(tags, list) else ()
            path = link[link.find("<") + 1 : link.find(">")] if link.startswith("<") else None

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount: the registry links a blob it already holds; no bytes travel."""
        response = self.request(
            "POST",
            f"/v2/{repo}/blobs/uploads/?mount={digest}&from={from_repo}",
            repo=repo,
            push=True,
            ok=(201, 202),
        )
        response.close()
        return response.status_code == 201

    def delete_manifest(self, repo: str, digest: str) -> bool:
        response = self.request(
            "DELETE", f"/v2/{repo}/manifests/{digest}", repo=repo, push=True, ok=(202, 200)
        )
        response.close()
        return response.status_code in {200, 202}


class _Counted:
    """An upload body that counts its bytes into TRAFFIC as requests sends them: a sized iterable of blocks
    (so requests sends it with our Content-Length, not chunked) that closes what it was made from."""

    def __init__(self, body: IO[bytes] | Iterable[bytes | bytearray], size: int) -> None:
        self._body = body
        self._size = size

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes | bytearray]:
        body = self._body
        blocks = iter(lambda: body.read(_CHUNK), b"") if hasattr(body, "read") else iter(body)
        for block in blocks:
            TRAFFIC.add(sent=len(block))
            yield block

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


def _scope(repo: str, push: bool) -> str:
    return f"repository:{repo}:{'pull,push' if push else 'pull'}"


def _challenge(header: str) -> dict[str, str]:
    """The quoted parameters of a WWW-Authenticate header: realm, service, scope, error."""
    return dict(re.findall(r'([A-Za-z_]+)="([^"]*)"', header))
