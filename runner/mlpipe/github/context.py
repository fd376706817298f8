"""The GitHub Actions job a run happens in, read once from the environment and the event payload."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PR_EVENTS = frozenset({"pull_request", "pull_request_target", "pull_request_review"})


@dataclass(frozen=True, kw_only=True)
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

    @property
    def run_url(self) -> str:
        if not self.run_id:
            return ""
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"


def from_env(environ: Mapping[str, str]) -> GitHubContext | None:
    """The context of the current GitHub Actions job step, or None outside one."""
    if environ.get("GITHUB_ACTIONS") != "true":
        return None
    payload = _payload(environ.get("GITHUB_EVENT_PATH"))
    event = environ.get("GITHUB_EVENT_NAME", "")
    repository = environ.get("GITHUB_REPOSITORY") or _dict(payload.get("repository")).get("full_name") or ""
    pr = _dict(payload.get("pull_request")) if event in PR_EVENTS else {}
    head = _dict(pr.get("head"))
    number = pr.get("number")
    head_repo = _dict(head.get("repo")).get("full_name")
    base_repo = _dict(_dict(pr.get("base")).get("repo")).get("full_name") or repository
    sha = head.get("sha") if isinstance(head.get("sha"), str) else None
    return GitHubContext(
        repository=str(repository),
        sha=sha or environ.get("GITHUB_SHA", ""),
        ref=environ.get("GITHUB_REF", ""),
        event=event,
        pr_number=number if isinstance(number, int) else None,
        # A deleted fork has no head repo: still not this repository.
        fork=bool(pr) and head_repo != base_repo,
        token=environ.get("MLPIPE_GITHUB_TOKEN") or environ.get("GITHUB_TOKEN") or "",
        api_url=(environ.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/"),
        server_url=(environ.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/"),
        run_id=environ.get("GITHUB_RUN_ID", ""),
        step_summary=_path(environ.get("GITHUB_STEP_SUMMARY")),
        output=_path(environ.get("GITHUB_OUTPUT")),
        temp=_path(environ.get("RUNNER_TEMP")),
        default_branch=_dict(payload.get("repository")).get("default_branch") or None,
        ref_protected=environ.get("GITHUB_REF_PROTECTED") == "true",
        base_sha=_dict(pr.get("base")).get("sha") or None,
    )


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _payload(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
