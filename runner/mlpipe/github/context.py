"""The GitHub Actions job a run happens in, read once from the environment and the event payload."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

from mlpipe.config import env_seconds
from mlpipe.frozen import frozen
from mlpipe.records import run_url

PR_EVENTS = frozenset({"pull_request", "pull_request_target", "pull_request_review"})
MAX_PAYLOAD = 32 << 20
"""GitHub caps webhook payloads at 25 MB; a larger file is not an event payload and is not read."""
SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
BRANCH = re.compile(r"(?!-)[A-Za-z0-9_./-]{1,255}")


@frozen(kw_only=True)
class GitHubContext:
    repository: str
    """owner/name."""
    sha: str
    """The commit to report on: the PR head for pull requests (not the merge commit in GITHUB_SHA)."""
    ref: str
    event: str
    pr_number: int | None = None
    fork: bool = False
    """A pull request from another repository: its token cannot write checks."""
    token: str = field(default="", repr=False)
    api_url: str = "https://api.github.com"
    server_url: str = "https://github.com"
    run_id: str = ""
    """GITHUB_RUN_ID: the workflow run, for links."""
    step_summary: Path | None = None
    output: Path | None = None
    temp: Path | None = None
    default_branch: str | None = None
    """The repository's default branch, from the event payload."""
    ref_protected: bool = False
    """GITHUB_REF_PROTECTED: branch protection rules apply to the ref."""
    base_sha: str | None = None
    """On a pull request: the base branch's commit it is compared with (`pull_request.base.sha`)."""
    base_ref: str | None = None
    """On a pull request: the base branch's name (`pull_request.base.ref`)."""
    backoff_s: float = 1.0
    """The first wait before a failed GitHub request is repeated, doubling on each try (MLPIPE_GITHUB_BACKOFF_S)."""

    @property
    def run_url(self) -> str:
        """This workflow run's page, or "" when GITHUB_SERVER_URL, GITHUB_REPOSITORY or GITHUB_RUN_ID is not
        of the form GitHub gives them (the URL is recorded, and shown as a link)."""
        if not self.run_id:
            return ""
        return run_url(f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}") or ""


def from_env(environ: Mapping[str, str]) -> GitHubContext | None:
    """The context of the current GitHub Actions job step, or None outside one.

    The payload is read defensively: a field of the wrong type or format counts as absent, and a file that
    is not a JSON object (unreadable, too large, nested too deep, not UTF-8) as an empty payload. A pull
    request whose head repository cannot be told counts as from a fork: it gets no write access.
    """
    if environ.get("GITHUB_ACTIONS") != "true":
        return None
    payload = _payload(environ.get("GITHUB_EVENT_PATH"))
    event = environ.get("GITHUB_EVENT_NAME", "")
    payload_repo = _dict(payload.get("repository"))
    repository = environ.get("GITHUB_REPOSITORY") or _text(payload_repo.get("full_name"), REPO) or ""
    pr = _dict(payload.get("pull_request")) if event in PR_EVENTS else {}
    head, base = _dict(pr.get("head")), _dict(pr.get("base"))
    number = pr.get("number")
    head_repo = _text(_dict(head.get("repo")).get("full_name"), REPO)
    base_repo = _text(_dict(base.get("repo")).get("full_name"), REPO) or repository
    return GitHubContext(
        repository=repository,
        sha=_text(head.get("sha"), SHA) or environ.get("GITHUB_SHA", ""),
        ref=environ.get("GITHUB_REF", ""),
        event=event,
        pr_number=number if type(number) is int and 0 < number < 2**63 else None,
        # A deleted fork has no head repo, and a payload without one cannot show it is this repository.
        fork=event in PR_EVENTS and head_repo != base_repo,
        token=environ.get("MLPIPE_GITHUB_TOKEN") or environ.get("GITHUB_TOKEN") or "",
        api_url=(environ.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/"),
        server_url=(environ.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/"),
        run_id=environ.get("GITHUB_RUN_ID", ""),
        step_summary=_path(environ.get("GITHUB_STEP_SUMMARY")),
        output=_path(environ.get("GITHUB_OUTPUT")),
        temp=_path(environ.get("RUNNER_TEMP")),
        default_branch=_text(payload_repo.get("default_branch")),
        ref_protected=environ.get("GITHUB_REF_PROTECTED") == "true",
        base_sha=_text(base.get("sha"), SHA),
        base_ref=_text(base.get("ref"), BRANCH),
        backoff_s=env_seconds(environ, "MLPIPE_GITHUB_BACKOFF_S", 1.0),
    )


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _payload(path: str | None) -> dict[str, Any]:
    """The event payload, or {} when there is none that can be read within bounds."""
    if not path:
        return {}
    try:
        if not stat.S_ISREG(Path(path).stat().st_mode):  # a FIFO or a device would block or never end
            return {}
        with open(path, "rb") as stream:
            raw = stream.read(MAX_PAYLOAD + 1)
        if len(raw) > MAX_PAYLOAD:
            return {}
        data = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, RecursionError):  # RecursionError: arrays or objects nested thousands deep
        return {}
    return data if isinstance(data, dict) else {}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any, pattern: re.Pattern[str] | None = None) -> str | None:
    """A non-empty string (matching `pattern` whole, if given), else None."""
    if not isinstance(value, str) or not value or "\0" in value:
        return None
    return value if pattern is None or pattern.fullmatch(value) else None
