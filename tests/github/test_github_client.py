"""The REST client's retries and waits, with a fake transport and clock (the real API is in test_github_checks.py)."""

from __future__ import annotations

from typing import Any

import pytest

from mlpipe.github.client import GitHubAPI, GitHubAPIError

TOKEN = "ghs_topsecret"


class Response:
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self._body = body if body is not None else {}
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}
        self.content = b"x"
        self.text = ""
        self.reason = ""

    def json(self) -> Any:
        return self._body


def client(responses: list[Any], **kwargs: Any) -> tuple[GitHubAPI, list[float]]:
    waits: list[float] = []
    api = GitHubAPI("https://api.example/", TOKEN, sleep=waits.append, clock=lambda: 1000.0, **kwargs)
    queue = list(responses)

    def request(method: str, url: str, json: Any = None, timeout: Any = None) -> Any:
        assert url.startswith("https://api.example/repos/") and timeout == (10.0, 30.0)
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    api.session.request = request  # type: ignore[method-assign]
    return api, waits


def test_headers() -> None:
    api, _ = client([])
    assert api.session.headers["Authorization"] == f"Bearer {TOKEN}"
    assert api.session.headers["X-GitHub-Api-Version"] == "2022-11-28"


def test_secondary_rate_limits_wait_as_github_says() -> None:
    api, waits = client(
        [
            Response(403, {"message": "You have exceeded a secondary rate limit"}, {"Retry-After": "7"}),
            Response(
                429, {"message": "slow down"}, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1030"}
            ),
            Response(403, {"message": "You have exceeded a secondary rate limit"}),
            Response(201, {"id": 5}),
        ]
    )
    assert api.request("POST", "/repos/o/r/check-runs", {}) == {"id": 5}
    assert waits == [7.0, 31.0, 60.0]


def test_server_errors_and_connection_errors_back_off() -> None:
    import requests

    api, waits = client(
        [Response(502), requests.ConnectionError("boom"), Response(503), Response(200, {"ok": 1})]
    )
    assert api.request("GET", "/repos/o/r") == {"ok": 1}
    assert waits == [1.0, 2.0, 4.0]


def test_a_plain_403_is_not_retried_and_is_a_permission_problem() -> None:
    api, waits = client([Response(403, {"message": "Resource not accessible by integration"})])
    with pytest.raises(GitHubAPIError) as caught:
        api.request("POST", "/repos/o/r/check-runs", {})
    assert waits == [] and caught.value.forbidden
    assert str(caught.value) == "POST /repos/o/r/check-runs: HTTP 403: Resource not accessible by integration"


def test_gives_up_after_its_attempts_or_on_a_long_wait() -> None:
    api, waits = client([Response(500)] * 3, attempts=3)
    with pytest.raises(GitHubAPIError, match="HTTP 500"):
        api.request("GET", "/repos/o/r")
    assert waits == [1.0, 2.0]
    api, waits = client([Response(429, {}, {"Retry-After": "3600"})])
    with pytest.raises(GitHubAPIError, match="asked to wait 3600s, more than 90s"):
        api.request("GET", "/repos/o/r")
    assert waits == []


def test_the_token_never_reaches_a_message() -> None:
    api, _ = client([Response(422, {"message": f"bad token {TOKEN}"})])
    with pytest.raises(GitHubAPIError) as caught:
        api.request("GET", "/repos/o/r")
    assert TOKEN not in str(caught.value) and "***" in str(caught.value)
