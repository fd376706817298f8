"""A small GitHub REST client: timeouts, retries on 5xx and on rate limits, the token never in a message.

GitHub's advice for secondary rate limits (403 or 429): wait `retry-after` seconds when given; else, when
`x-ratelimit-remaining` is 0, until `x-ratelimit-reset`; else at least a minute. Waits longer than
`max_wait_s` are not worth holding a CI job for: the request fails and the caller falls back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mlpipe import __version__

API_VERSION = "2022-11-28"


class GitHubAPIError(Exception):
    def __init__(self, method: str, path: str, status: int | None, message: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        super().__init__(str(self))

    @property
    def forbidden(self) -> bool:
        """The token may not do this (fork PRs, read-only tokens): fall back, do not retry."""
        return self.status in {401, 403, 404}

    def __str__(self) -> str:
        status = f"HTTP {self.status}" if self.status else "no response"
        return f"{self.method} {self.path}: {status}: {self.message}"


class GitHubAPI:
    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        timeout: tuple[float, float] = (10.0, 30.0),
        attempts: int = 5,
        backoff_s: float = 1.0,
        max_wait_s: float = 90.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        import requests  # only when GitHub is talked to: `mlpipe --help` stays fast

        self.api_url = api_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        self.clock = clock
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": f"mlpipe/{__version__}",
            }
        )
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.retries = 0
        """Requests repeated so far (for tests and the run's output)."""

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import requests

        url = self.api_url + path
        for attempt in range(1, self.attempts + 1):
            last = attempt == self.attempts
            try:
                response = self.session.request(method, url, json=body, timeout=self.timeout)
            except requests.RequestException as error:
                if last:
                    raise GitHubAPIError(method, path, None, self.redact(type(error).__name__)) from None
                self._wait(self.backoff_s * 2 ** (attempt - 1))
                continue
            if response.status_code < 300:
                data = response.json() if response.content else {}
                return data if isinstance(data, dict) else {"items": data}
            message = self.redact(_message(response))
            wait = self._rate_limit_wait(response, message)
            if wait is None and response.status_code >= 500:
                wait = self.backoff_s * 2 ** (attempt - 1)
            if wait is None or last or wait > self.max_wait_s:
                if wait is not None and wait > self.max_wait_s:
                    message += f" (asked to wait {wait:.0f}s, more than {self.max_wait_s:.0f}s)"
                raise GitHubAPIError(method, path, response.status_code, message)
            self._wait(wait)
        raise AssertionError("unreachable")

    def _wait(self, seconds: float) -> None:
        self.retries += 1
        self.sleep(max(0.0, seconds))

    def _rate_limit_wait(self, response: Any, message: str) -> float | None:
        if response.status_code not in {403, 429}:
            return None
        headers = response.headers
        retry_after = headers.get("retry-after")
        if retry_after is not None:
            try:
                return float(retry_after)
            except ValueError:
                return 60.0
        if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
            try:
                return max(0.0, float(headers["x-ratelimit-reset"]) - self.clock()) + 1
            except ValueError:
                return 60.0
        if response.status_code == 429 or "rate limit" in message.lower():
            return 60.0
        return None  # a plain 403: the token may not do this

    def redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text


def _message(response: Any) -> str:
    try:
        data = response.json()
    except ValueError:
        return (response.text or response.reason or "")[:300]
    if isinstance(data, dict):
        text = str(data.get("message") or "")
        errors = data.get("errors")
        return f"{text} {errors}" if errors else text
    return str(data)[:300]
