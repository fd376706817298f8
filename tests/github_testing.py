"""The environment a GitHub Actions job step sees, built as GitHub builds it: variables, files, event payloads.

Payloads carry the fields GitHub sends that mlpipe reads (and the usual neighbours), in the real shapes: a
pull_request's `head`/`base` with their `sha`, `ref` and `repo`, a push's `ref`/`before`/`after`, a
workflow_dispatch's `inputs`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipe_testing import Project

REPO = "octo-org/ml-repo"


def repository(full_name: str = REPO) -> dict[str, Any]:
    owner, name = full_name.split("/")
    return {
        "id": 1296269,
        "name": name,
        "full_name": full_name,
        "owner": {"login": owner, "type": "Organization"},
        "private": False,
        "fork": full_name != REPO,
        "default_branch": "main",
        "html_url": f"https://github.com/{full_name}",
    }


def push_payload(sha: str, ref: str = "refs/heads/main", before: str = "0" * 40) -> dict[str, Any]:
    return {
        "ref": ref,
        "before": before,
        "after": sha,
        "created": False,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "head_commit": {"id": sha, "message": "change", "timestamp": "2026-01-01T00:00:00+00:00"},
        "repository": repository(),
        "pusher": {"name": "octocat"},
        "sender": {"login": "octocat"},
    }


def pull_request_payload(
    number: int, head_sha: str, base_sha: str, *, head_ref: str = "feature", head_repo: str | None = REPO
) -> dict[str, Any]:
    """`head_repo` another repository: a PR from a fork; None: the fork was deleted."""
    return {
        "action": "synchronize",
        "number": number,
        "pull_request": {
            "number": number,
            "state": "open",
            "title": "Tune the model",
            "head": {
                "label": f"{(head_repo or 'ghost/x').split('/')[0]}:{head_ref}",
                "ref": head_ref,
                "sha": head_sha,
                "repo": repository(head_repo) if head_repo else None,
            },
            "base": {"label": "octo-org:main", "ref": "main", "sha": base_sha, "repo": repository()},
            "merge_commit_sha": None,
        },
        "repository": repository(),
        "sender": {"login": "contributor"},
    }


def dispatch_payload(inputs: dict[str, str], ref: str = "refs/heads/main") -> dict[str, Any]:
    return {"inputs": inputs, "ref": ref, "repository": repository(), "sender": {"login": "octocat"}}


@dataclass
class ActionsJob:
    """The files of one job step: GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, the event payload, RUNNER_TEMP."""

    root: Path
    env: dict[str, str]

    @property
    def output_file(self) -> Path:
        return Path(self.env["GITHUB_OUTPUT"])

    @property
    def summary_file(self) -> Path:
        return Path(self.env["GITHUB_STEP_SUMMARY"])

    def outputs(self) -> dict[str, str]:
        """GITHUB_OUTPUT parsed as the runner parses it (name=value and name<<DELIM heredocs)."""
        values: dict[str, str] = {}
        lines = self.output_file.read_text().splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
                name, delimiter = line.split("<<", 1)
                end = lines.index(delimiter, i + 1)
                values[name] = "\n".join(lines[i + 1 : end])
                i = end + 1
                continue
            if line:
                name, value = line.split("=", 1)
                values[name] = value
            i += 1
        return values


def actions_job(
    root: Path,
    *,
    event: str,
    payload: dict[str, Any],
    sha: str,
    ref: str,
    token: str = "",
    api_url: str = "",
    workspace: Path | None = None,
) -> ActionsJob:
    root.mkdir(parents=True, exist_ok=True)
    temp = root / "runner-temp"
    temp.mkdir(exist_ok=True)
    event_path = root / "event.json"
    event_path.write_text(json.dumps(payload, indent=2))
    for name in ("output", "step_summary", "env", "path"):
        (root / name).write_text("")
    env = {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_SHA": sha,
        "GITHUB_REF": ref,
        "GITHUB_REF_NAME": ref.rsplit("/", 1)[-1] if not ref.startswith("refs/pull/") else ref[10:],
        "GITHUB_REF_TYPE": "tag" if ref.startswith("refs/tags/") else "branch",
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_REPOSITORY_OWNER": REPO.split("/")[0],
        "GITHUB_RUN_ID": "9876543210",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_ACTOR": "octocat",
        "GITHUB_WORKFLOW": "mlpipe",
        "GITHUB_JOB": "pipeline",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": api_url or "https://api.github.com",
        "GITHUB_OUTPUT": str(root / "output"),
        "GITHUB_STEP_SUMMARY": str(root / "step_summary"),
        "GITHUB_ENV": str(root / "env"),
        "GITHUB_PATH": str(root / "path"),
        "RUNNER_TEMP": str(temp),
        "RUNNER_OS": "Linux",
        "RUNNER_ARCH": "X64",
    }
    if workspace is not None:
        env["GITHUB_WORKSPACE"] = str(workspace)
    if token:
        env["GITHUB_TOKEN"] = token
    if event == "pull_request":
        env["GITHUB_HEAD_REF"] = payload["pull_request"]["head"]["ref"]
        env["GITHUB_BASE_REF"] = payload["pull_request"]["base"]["ref"]
    return ActionsJob(root=root, env=env)


def pull_request_clone(main: Project, dest: Path, files: Mapping[str, str], message: str) -> Project:
    """A fresh clone of `main` (no local runs) on a branch `feature` with one commit changing `files`."""
    subprocess.run(["git", "clone", "-q", str(main.root), str(dest)], check=True)
    pr = Project(dest)
    pr.git("checkout", "-q", "-b", "feature")
    pr.write(files)
    pr.commit(message)
    return pr
