"""A fan-out run driven as the reusable workflow drives it: the plan job, each wave's jobs in a fresh clone (as
actions/checkout makes it), the report job; the real `mlpipe` CLI, the real registry (issue 15)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from github_testing import actions_job, pull_request_payload, push_payload
from mlpipe_testing import Outcome, Project

STEP_LOG = "FANOUT_STEP_LOG"
"""Steps append their name to this file (outside the repository, so it is not part of any snapshot)."""


def pipeline(name: str, steps: str) -> str:
    return f"name: {name}\nsteps:\n{steps}"


def step(name: str, run: str = "", *, inputs: dict[str, str] | None = None, extra: str = "") -> str:
    """A step that logs its name and writes its output `o` (a file); `inputs`: input name -> upstream step."""
    ins = "".join(f"      {k}: ${{{{ steps.{v}.outputs.o }}}}\n" for k, v in (inputs or {}).items())
    body = run or "true"
    return (
        f"  {name}:\n"
        f'    run: echo {name} >> "${STEP_LOG}" && {body} && echo {name} > ${{{{ outputs.o }}}}\n'
        f"    outputs: {{o: {{type: file}}}}\n" + (f"    inputs:\n{ins}" if ins else "") + extra
    )


def registry_tags(host: str, repo: str) -> list[str]:
    try:
        with urllib.request.urlopen(f"http://{host}/v2/{repo}/tags/list", timeout=10) as response:
            return list(json.load(response).get("tags") or [])
    except OSError:
        return []


class Workflow:
    """One fan-out run of `origin`'s head commit, in jobs under `tmp`."""

    def __init__(
        self,
        origin: Project,
        tmp: Path,
        cache: str,
        *,
        fork: bool = False,
        extra_env: dict | None = None,
        token: str = "",
        api_url: str = "",
    ):
        self.token, self.api_url = token, api_url
        self.origin, self.tmp, self.cache = origin, tmp, cache
        self.sha = origin.git("rev-parse", "HEAD").strip()
        self.fork = fork
        tmp.mkdir(parents=True, exist_ok=True)
        self.log = tmp / f"steps-{uuid.uuid4().hex[:6]}.log"
        self.log.write_text("")
        self.extra_env = extra_env or {}
        self.outputs: dict[str, str] = {}
        self.summaries: dict[str, str] = {}

    def env(self, job: str, **more: str) -> dict[str, str]:
        if self.fork:
            payload = pull_request_payload(9, self.sha, self.sha, head_repo="mallory/ml-repo")
            actions = actions_job(
                self.tmp / "jobs" / job,
                event="pull_request",
                payload=payload,
                sha=self.sha,
                ref="refs/pull/9/merge",
                token=self.token,
                api_url=self.api_url,
            )
        else:
            actions = actions_job(
                self.tmp / "jobs" / job,
                event="push",
                payload=push_payload(self.sha),
                sha=self.sha,
                ref="refs/heads/main",
                token=self.token,
                api_url=self.api_url,
            )
        self._jobs = getattr(self, "_jobs", {})
        self._jobs[job] = actions
        return {
            **actions.env,
            "MLPIPE_CACHE": self.cache,
            STEP_LOG: str(self.log),
            "MLPIPE_GITHUB_THROTTLE_S": "0",
            **self.extra_env,
            **more,
        }

    def clone(self, job: str) -> Project:
        dest = self.tmp / "clones" / f"{job}-{uuid.uuid4().hex[:6]}"
        subprocess.run(["git", "clone", "-q", str(self.origin.root), str(dest)], check=True)
        return Project(dest)

    def plan(self, *args: str) -> Outcome:
        outcome = self.clone("plan").run("plan", "--github-matrix", *args, env=self.env("plan"))
        if outcome.code == 0:
            self.outputs = self._jobs["plan"].outputs()
            self.summaries["plan"] = self._jobs["plan"].summary_file.read_text()
        return outcome

    @property
    def run_id(self) -> str:
        return self.outputs["run-id"]

    def wave(self, k: int) -> list[dict[str, Any]]:
        return list(json.loads(self.outputs[f"wave-{k}"])["include"])

    def job_args(self, entry: dict[str, Any]) -> tuple[str, ...]:
        return ("ci-run", "--steps", entry["steps"], "--fan-out-run", self.run_id, "--job", entry["job"])

    def job(self, entry: dict[str, Any], **env: str) -> Outcome:
        name = f"{entry['job']}-{uuid.uuid4().hex[:4]}"
        outcome = self.clone(name).run(*self.job_args(entry), env=self.env(name, **env), timeout=180)
        self.summaries[entry["job"]] = self._jobs[name].summary_file.read_text()
        return outcome

    def all_waves(self) -> dict[str, Outcome]:
        done = {}
        k = 1
        while f"wave-{k}" in self.outputs:
            for entry in self.wave(k):
                done[entry["job"]] = self.job(entry)
            k += 1
        return done

    def report(self, *args: str) -> Outcome:
        outcome = self.clone("report").run(
            "report", "--fan-out-run", self.run_id, *args, env=self.env("report")
        )
        self.report_outputs = self._jobs["report"].outputs()
        self.summaries["report"] = self._jobs["report"].summary_file.read_text()
        return outcome

    def ran(self) -> list[str]:
        """Every step execution across all jobs, in order."""
        return self.log.read_text().split()

    def start_job(self, entry: dict[str, Any], **env: str) -> subprocess.Popen[str]:
        """A job whose runner can be killed: the CLI in a session of its own."""
        name = f"{entry['job']}-{uuid.uuid4().hex[:4]}"
        clone = self.clone(name)
        return subprocess.Popen(
            [sys.executable, "-m", "mlpipe", *self.job_args(entry)],
            cwd=clone.root,
            env={**os.environ, **self.env(name, **env)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def kill_runner(process: subprocess.Popen[str]) -> None:
    """As a runner that dies: every process of the job at once, no cleanup."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    if process.stdout is not None:
        process.stdout.close()


def wait_for(check: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
