"""kill -9 of mlpipe at random points (a step running, outputs being stored, results being pushed to the
registry, outputs being checked out into the workspace), at least 30 times: no step outlives its mlpipe,
the next run succeeds with exactly the bytes the steps produce, nothing stale stays, the store stays whole."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import fault_tally
from crash_testing import MARKER, assert_no_traceback, leftovers, tree_digest, wait_gone
from fsck_testing import assert_store_whole

KILLS = 30
MAX_ROUNDS = 90
TIME_CAP_S = 420
FILES = 300

PIPELINE = """\
name: k9
params:
  v: 1
steps:
  gen:
    run: python gen.py ${{ params.v }} ${{ outputs.data }}
    outputs:
      data: {path: out/data}
  slow:
    run: python slow.py ${{ inputs.data }} ${{ outputs.sum }}
    inputs:
      data: ${{ steps.gen.outputs.data }}
    outputs:
      sum: {type: file, path: out/sum.txt}
"""

GEN = f"""\
import os, sys
v, out = sys.argv[1], sys.argv[2]
for i in range({FILES}):
    with open(os.path.join(out, f"f{{i:03d}}.txt"), "w") as f:
        f.write(f"{{v}}-{{i}}\\n" * 200)
print("done", flush=True)
"""

SLOW = """\
import hashlib, os, subprocess, sys
top, out = sys.argv[1], sys.argv[2]
print("sleeping", flush=True)
subprocess.run(["sleep", os.environ.get("SLOW_S", "0.3")])  # a child in the step's group, not the shell's
h = hashlib.sha256()
for name in sorted(os.listdir(top)):
    h.update(name.encode() + open(os.path.join(top, name), "rb").read())
open(out, "w").write(h.hexdigest() + "\\n")
print("done", flush=True)
"""

PHASES = {
    "step": "[slow] sleeping",
    "store": "[gen] done",
    "checkout": "[slow] done",
    "push": "mlpipe: slow: ",
    "random": None,
}


def expected(v: int) -> dict[str, bytes]:
    import hashlib

    files = {f"f{i:03d}.txt": f"{v}-{i}\n".encode() * 200 for i in range(FILES)}
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + files[name])
    return {**{f"data/{n}": c for n, c in files.items()}, "sum.txt": (h.hexdigest() + "\n").encode()}


def workspace_outputs(root: Path) -> dict[str, bytes]:
    out = root / "out"
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


class Run:
    """`mlpipe ci-run` in the background; lines of its output as they come, for the kill trigger."""

    def __init__(self, root: Path, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlpipe", "ci-run", *args],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, text: str | None, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if text is not None and any(text in line for line in list(self.lines)):
                return True
            time.sleep(0.01)
        return False

    def output(self) -> str:
        self.reader.join(timeout=30)
        return "".join(self.lines)


def test_kill_9_at_random_points(project_factory, registry, tmp_path):
    rng = random.Random(int.from_bytes(uuid.uuid4().bytes[:4], "big"))
    files = {"mlpipe.yaml": PIPELINE, "gen.py": GEN, "slow.py": SLOW, ".gitignore": ".mlpipe/\nout/\n"}
    project = project_factory(files)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("untouched\n")
    before_outside, before_tmp = tree_digest(outside), sorted(p.name for p in tmp_path.iterdir())
    cache = ["--cache", f"oci://{registry.host}/k9/{uuid.uuid4().hex[:8]}"]
    base_env = {**os.environ, "MLPIPE_CACHE_MODE": "read-write", "MLPIPE_KILL_GRACE_S": "1"}
    counts = {"kills": 0, "completed": 0, "wrong": 0, "outside": 0}
    phases: dict[str, int] = {}
    began = time.monotonic()
    rounds = 0
    seen: list[int] = []
    while counts["kills"] < KILLS and rounds < MAX_ROUNDS and time.monotonic() - began < TIME_CAP_S:
        rounds += 1
        # Mostly new values (the steps run: store writes, pushes, checkouts to kill), sometimes an earlier
        # one: that run reuses what a killed run may have left half-done.
        v = rng.choice(seen) if seen and rng.random() < 0.3 else rng.randint(1, 10**9)
        seen.append(v)
        token = uuid.uuid4().hex
        phase = rng.choice(list(PHASES))
        # A 60 s step is there to be killed while it runs (phases step, store, random). The lines the checkout and
        # push phases wait for come only after the step ends: with it they would wait out their 10 s and then
        # kill the running step, the step phase's kill, 10 s later.
        slow_s = rng.choice(
            [0.05, 0.3, 1.0, 60] if phase in {"step", "store", "random"} else [0.05, 0.3, 1.0]
        )
        env = {**base_env, MARKER: token, "SLOW_S": str(slow_s)}
        run = Run(project.root, ["-p", f"v={v}", "-j", "2", *cache], env)
        hit = run.wait_for(PHASES[phase], timeout=10) if PHASES[phase] else True
        time.sleep(rng.uniform(0, 0.15 if phase != "random" else 2.5))
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGKILL)
            counts["kills"] += 1
            phases[phase if hit else "random"] = phases.get(phase if hit else "random", 0) + 1
        run.proc.wait(timeout=60)
        run.output()
        left = wait_gone(token, timeout=8)  # the guardian's grace is 1 s; a step left alone sleeps 60 s
        for pid in left:  # not left running for the rest of the suite when the check fails
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not left, f"round {rounds} ({phase}): step processes outlived the killed mlpipe: {left}"

        if rounds % 3 == 0 or counts["kills"] >= KILLS:  # the next run: succeeds with the steps' exact bytes
            done = Run(project.root, ["-p", f"v={v}", *cache], {**base_env, MARKER: token})
            code = done.proc.wait(timeout=300)
            output = done.output()
            assert_no_traceback(output)
            assert code == 0, f"round {rounds}: the run after a kill failed ({code}):\n{output}"
            counts["completed"] += 1
            if workspace_outputs(project.root) != expected(v):
                counts["wrong"] += 1
            assert leftovers(project.root) == []
            assert_store_whole(project.root / ".mlpipe/cache")
    project.run("gc", "--keep-days", "365", *cache, env={"MLPIPE_CACHE_MODE": "read-write"}).assert_success()
    assert leftovers(project.root) == []
    assert_store_whole(project.root / ".mlpipe/cache")
    if tree_digest(outside) != before_outside:
        counts["outside"] += 1
    extra = sorted({p.name for p in tmp_path.iterdir()} - set(before_tmp))
    counts["outside"] += len(extra)
    summary = (
        f"kill -9 faults: {counts['kills']} kills ({', '.join(f'{k} {n}' for k, n in sorted(phases.items()))}), "
        f"{counts['completed']} runs completed after them, {counts['wrong']} wrong results, "
        f"{counts['outside']} files touched outside, {rounds} rounds in {time.monotonic() - began:.0f}s"
    )
    print("\n" + summary)
    fault_tally.record(
        "kill -9 of mlpipe (steps, store writes, pushes, checkouts)",
        injected=counts["kills"],
        runs_completed=counts["completed"],
        wrong_results=counts["wrong"],
        touched_outside=counts["outside"],
    )
    assert counts["kills"] >= KILLS, summary
    assert counts["wrong"] == 0 and counts["outside"] == 0, summary
