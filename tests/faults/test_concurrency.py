"""Runs at the same time: two ci-run in one workspace, three clones sharing one store, gc beside a run.
Each run succeeds, or waits, or refuses naming the other run; never a traceback or a half output; the store
stays whole after every round."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import fault_tally
from crash_testing import assert_no_traceback, leftovers
from fsck_testing import assert_store_whole

ROUNDS = 3
FILES = 150

PIPELINE = """\
name: conc
params:
  v: 1
steps:
  gen:
    run: python gen.py ${{ params.v }} ${{ outputs.data }}
    outputs:
      data: {path: out/data}
  same:
    run: python gen.py 0 ${{ outputs.data }}
    outputs:
      data: {path: out/same}
  join:
    run: cat ${{ inputs.a }}/f000.txt ${{ inputs.b }}/f001.txt > ${{ outputs.o }}
    inputs:
      a: ${{ steps.gen.outputs.data }}
      b: ${{ steps.same.outputs.data }}
    outputs:
      o: {type: file, path: out/join.txt}
"""

GEN = f"""\
import os, sys, time
v, out = sys.argv[1], sys.argv[2]
time.sleep(float(os.environ.get("GEN_SLEEP_S", "0")))
for i in range({FILES}):
    with open(os.path.join(out, f"f{{i:03d}}.txt"), "w") as f:
        f.write(f"{{v}}-{{i}}\\n" * 100)
"""

FILES_OF = {"mlpipe.yaml": PIPELINE, "gen.py": GEN, ".gitignore": ".mlpipe/\nout/\n"}


def expected(v: int) -> dict[str, bytes]:
    def data(value: int) -> dict[str, bytes]:
        return {f"f{i:03d}.txt": f"{value}-{i}\n".encode() * 100 for i in range(FILES)}

    out = {f"data/{n}": c for n, c in data(v).items()} | {f"same/{n}": c for n, c in data(0).items()}
    return out | {"join.txt": data(v)["f000.txt"] + data(0)["f001.txt"]}


def outputs(root: Path) -> dict[str, bytes]:
    top = root / "out"
    return {str(p.relative_to(top)): p.read_bytes() for p in sorted(top.rglob("*")) if p.is_file()}


def start(root: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mlpipe", *args],
        cwd=root,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    assert_no_traceback(out + err)
    return proc.returncode, out, err


def test_two_runs_in_one_workspace_take_turns_or_one_refuses_naming_the_other(project_factory):
    project = project_factory(FILES_OF)
    for round_ in range(ROUNDS):
        v = round_ + 1
        first = start(project.root, "ci-run", "-p", f"v={v}", GEN_SLEEP_S="1")
        holder = _wait_for_lock(project.root)
        waits = round_ % 2 == 0  # even rounds: the second waits its turn; odd: it refuses at once
        second = start(project.root, "ci-run", "-p", f"v={v}", MLPIPE_LOCK_TIMEOUT="120" if waits else "0")
        code2, _, err2 = finish(second)
        code1, _, err1 = finish(first)
        assert code1 == 0, err1
        other = f"run {holder['run_id']} (pid {first.pid}) is running in this workspace ({project.root})"
        if waits:
            assert code2 == 0, err2
            assert err2.startswith(
                f"mlpipe: waiting up to 120s: {other}; runs in one workspace take turns"
            ), err2
        else:
            assert code2 == 75, err2
            assert err2 == (
                f"error: {other}; runs in one workspace take turns (set MLPIPE_LOCK_TIMEOUT=SECONDS to wait longer)\n"
            )
        assert outputs(project.root) == expected(v)
        assert leftovers(project.root) == []
        assert_store_whole(project.root / ".mlpipe/cache")
        fault_tally.record("two ci-run in one workspace", runs_completed=2)


def test_three_clones_share_one_store(project_factory, tmp_path):
    store = tmp_path / "shared-store"
    clones = [project_factory(FILES_OF, name=f"clone{i}") for i in range(3)]
    for round_ in range(ROUNDS):
        procs = []
        for i, clone in enumerate(clones):
            v = (round_ + i) % 2 + 1  # two clones ask for the same result, one for another
            procs.append(
                (clone, v, start(clone.root, "ci-run", "-j", "2", "-p", f"v={v}", "--cache", str(store)))
            )
        for clone, v, proc in procs:
            code, out, err = finish(proc)
            assert code == 0, f"round {round_}, {clone.root.name}:\n{out}{err}"
            assert outputs(clone.root) == expected(v)
            assert leftovers(clone.root) == []
        assert_store_whole(store)
        fault_tally.record("three clones sharing one store, -j 2", runs_completed=3)


def test_gc_beside_a_run_waits_for_it_or_refuses_naming_it(project_factory, tmp_path):
    project = project_factory(FILES_OF)
    project.run("ci-run", "-p", "v=1").assert_success()
    marker = uuid.uuid4().hex[:8]
    for round_ in range(ROUNDS):
        v = round_ + 2
        run = start(project.root, "ci-run", "-p", f"v={v}", GEN_SLEEP_S="1.5", MLPIPE_FAULT_MARKER=marker)
        _wait_for_lock(project.root)
        waits = round_ % 2 == 0
        gc = start(project.root, "gc", "--keep-last", "1", MLPIPE_LOCK_TIMEOUT="120" if waits else "0")
        gc_code, _, gc_err = finish(gc)
        code, out, err = finish(run)
        assert code == 0, out + err
        if waits:
            assert gc_code == 0, gc_err
            assert "waiting up to 120s: the store " in gc_err and " is in use by run " in gc_err
        else:
            assert gc_code == 75, gc_err
            run_id = project.record()["run_id"]
            assert f"is in use by run {run_id} (pid {run.pid}) in {project.root}" in gc_err, gc_err
        assert outputs(project.root) == expected(v)
        assert_store_whole(project.root / ".mlpipe/cache")
        project.run("ci-run", "-p", f"v={v}").assert_success()
        assert {s["status"] for s in project.record()["steps"].values()} == {"reused"}
        fault_tally.record("gc beside a run", runs_completed=2)


def _wait_for_lock(root: Path) -> dict[str, object]:
    """Until a run holds the workspace and registered as a user of the store; what it wrote in its lock."""
    import json
    import time

    deadline = time.monotonic() + 60
    users = root / ".mlpipe/cache/users"
    while not (users.is_dir() and any(users.iterdir())):
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.02)
    holder: dict[str, object] = json.loads((root / ".mlpipe/run.lock").read_text())
    return holder
