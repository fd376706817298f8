"""Step output in GitHub Actions streams as it comes, through the real CLI in an Actions job environment: a line
appears while its step still runs (the step waits for a file the test writes only after reading the line),
parallel steps stream prefixed lines and get their tails grouped, and a step printing far more than memory
would hold leaves the run's memory bounded."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

from github_testing import actions_job, push_payload
from mlpipe_testing import Project

WAIT = 60.0
"""Seconds the test waits for a line, and a step for its file (then it gives up and fails)."""

WAITER = """\
# name, the file to wait for, [a file to wait for first], [a file to create first]
[ -n "$4" ] && : > "$4"
i=0
while [ -n "$3" ] && [ ! -e "$3" ] && [ $i -lt 600 ]; do i=$((i+1)); sleep 0.1; done
echo "$1 ready"
echo "::notice::$1 noticed"
i=0
while [ ! -e "$2" ]; do
  i=$((i+1))
  if [ $i -gt 600 ]; then echo "$1 gave up waiting"; exit 3; fi
  sleep 0.1
done
echo "$1 done"
"""


def steps_yaml(steps: Mapping[str, str]) -> str:
    body = "".join(
        f"  {name}:\n    code: steps\n    run: {command} && echo ok > ${{{{ outputs.log }}}}\n"
        "    outputs:\n      log: {type: file}\n"
        for name, command in steps.items()
    )
    return f"name: live\nsteps:\n{body}"


class LiveRun:
    """`mlpipe ci-run` in an Actions job, its output read line by line as it comes."""

    def __init__(self, project: Project, env: Mapping[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlpipe", "ci-run", *args],
            cwd=project.root,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, wanted: Callable[[str], bool], what: str) -> int:
        """The index of the first line `wanted` accepts, read within WAIT seconds."""
        deadline = time.monotonic() + WAIT
        for index, line in enumerate(self.lines):
            if wanted(line):
                return index
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if wanted(line):
                return len(self.lines) - 1
        self.process.kill()
        self.process.wait()
        raise AssertionError(f"no line {what} came while the step ran; the output so far:\n" + self.text)

    def finish(self) -> int:
        code = self.process.wait(timeout=120)
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return code

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def job_env(project: Project, tmp_path: Path) -> dict[str, str]:
    sha = project.git("rev-parse", "HEAD").strip()
    job = actions_job(
        tmp_path / "job", event="push", payload=push_payload(sha), sha=sha, ref="refs/heads/main"
    )
    return {**job.env, "MLPIPE_PUBLISH_CHECKS": "false"}


def test_a_step_running_alone_streams_its_lines_live_in_its_own_group(project_factory, tmp_path):
    mark = tmp_path / "go"
    project = project_factory(
        {"mlpipe.yaml": steps_yaml({"train": f"sh waiter.sh train {mark}"}), "steps/waiter.sh": WAITER}
    )
    run = LiveRun(project, job_env(project, tmp_path))
    ready = run.wait_for(lambda line: line == "train ready", "'train ready'")
    mark.touch()  # only now may the step end: the line came while it ran
    assert run.finish() == 0, run.text
    lines = run.lines
    group = lines.index("::group::train")
    done = lines.index("train done")
    end = lines.index("::endgroup::", done)
    assert group < ready < done < end
    assert lines[group - 1] == "mlpipe: train: started (no stored result for this step yet)"
    assert lines[end + 1].startswith("mlpipe: train: ran in ")
    assert "[train] train ready" not in lines  # alone, its lines are its group's, unprefixed


def test_parallel_steps_stream_prefixed_lines_and_group_each_steps_tail(project_factory, tmp_path):
    started_b, mark_a, mark_b = tmp_path / "b-started", tmp_path / "go-a", tmp_path / "go-b"
    pipeline = steps_yaml(
        {
            # a prints only once b runs too, so both its lines stream interleaved with b's
            "a": f"sh waiter.sh a {mark_a} {started_b}",
            "b": f"sh waiter.sh b {mark_b} '' {started_b}",
        }
    )
    project = project_factory({"mlpipe.yaml": pipeline, "steps/waiter.sh": WAITER})
    run = LiveRun(project, job_env(project, tmp_path), "--jobs", "2")
    run.wait_for(lambda line: line == "[a] a ready", "'[a] a ready'")
    run.wait_for(lambda line: line == "[b] b ready", "'[b] b ready'")
    mark_a.touch()
    run.wait_for(lambda line: line == "[a] a done", "'[a] a done'")
    mark_b.touch()
    assert run.finish() == 0, run.text
    lines = run.lines
    assert (
        "mlpipe: a, b run in parallel: output streams prefixed with [step]; each step's last 50 lines "
        "are grouped when it ends" in lines
    )
    for name in ("a", "b"):
        start = lines.index(f"::group::{name} (ran): its last 2 lines")
        assert lines[start + 1 : start + 4] == [f"{name} ready", f"{name} done", "::endgroup::"]
    # A step's workflow commands reach GitHub once each, unprefixed, as from a plain `run:` step.
    noticed = sorted(line for line in lines if "noticed" in line)
    assert noticed == ["::notice::a noticed", "::notice::b noticed"]
    # Groups never nest and never hold another step's lines: each ::group:: closes before the next opens.
    opened = None
    for line in lines:
        if line.startswith("::group::"):
            assert opened is None, run.text
            opened = line
        elif line == "::endgroup::":
            assert opened is not None, run.text
            opened = None
        elif opened is not None:
            assert not line.startswith("["), run.text
    assert opened is None


PRINTER = """\
import sys
out = sys.stdout.buffer
line = b"x" * 1023 + b"\\n"
for _ in range(int(sys.argv[1])):
    out.write(line)
for _ in range(int(sys.argv[2])):  # and a last line, without its newline, of that many MiB
    out.write(b"y" * (1 << 20))
"""
MEASURE = """\
import os, sys
pid = os.fork()  # from this small process: a child's peak memory starts from its parent's at the fork
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "mlpipe", "ci-run"])
_, status, usage = os.wait4(pid, 0)  # KiB on Linux: the largest of mlpipe and the processes it waited for
sys.stderr.write(f"peak {usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""
OUTPUT_MIB = 512
LIMIT_MIB = 150
"""mlpipe in CI stays under this whatever its steps print (it holds no step's output): a run that held the
512 MiB the step prints would exceed it."""


def test_a_step_printing_more_than_memory_would_hold_leaves_the_run_bounded(project_factory, tmp_path):
    last_mib = 64
    command = f"{sys.executable} printer.py {(OUTPUT_MIB - last_mib) * 1024} {last_mib}"
    project = project_factory({"mlpipe.yaml": steps_yaml({"loud": command}), "steps/printer.py": PRINTER})
    (tmp_path / "measure.py").write_text(MEASURE)
    process = subprocess.Popen(
        [sys.executable, str(tmp_path / "measure.py")],
        cwd=project.root,
        env={**os.environ, **job_env(project, tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    seen, tail = 0, deque(maxlen=5)
    deadline = time.monotonic() + 300
    while chunk := process.stdout.read(1 << 20):  # read and counted, never kept
        seen += len(chunk)
        tail.extend(chunk.splitlines()[-5:])
        assert time.monotonic() < deadline, "the run did not end within 5 minutes"
    code = process.wait(timeout=60)
    assert process.stderr is not None
    measured = process.stderr.read().decode()
    assert code == 0, b"\n".join(tail).decode(errors="replace") + measured
    assert seen > OUTPUT_MIB << 20  # all of it streamed through
    peak_mib = int(measured.split()[-1]) / 1024
    assert peak_mib < LIMIT_MIB, f"mlpipe peaked at {peak_mib:.0f} MiB for a step printing {OUTPUT_MIB} MiB"


def test_a_failed_step_is_one_error_annotation_not_two(project_factory, tmp_path):
    project = project_factory({"mlpipe.yaml": steps_yaml({"bad": "echo oops; exit 3"}), "steps/.keep": ""})
    outcome = project.run("ci-run", env=job_env(project, tmp_path)).assert_code(1)
    errors = [line for line in outcome.stdout.splitlines() if line.startswith("::error")]
    assert errors == [
        "::error file=mlpipe.yaml,line=3,title=mlpipe%3A step bad failed::exited with code 3%0A%0Aoops"
    ], outcome.output
