"""`mlpipe reproduce`: a release or a run rerun from scratch in a temporary worktree, digests compared."""

from __future__ import annotations

import json

from test_release import FILES, PIPELINE, tag_env

NONDETERMINISTIC = (
    PIPELINE
    + """\
  stamp:
    code: stamp
    run: sh stamp.sh ${{ outputs.out }}
    outputs:
      out: {type: file}
"""
)


def test_a_deterministic_release_is_reproduced_without_touching_the_checkout(project_factory, tmp_path):
    p = project_factory(FILES)
    p.git("tag", "v1.0")
    p.run("ci-run", env=tag_env(p, tmp_path, "v1.0")).assert_success()
    p.write({"notes.txt": "an untracked file the reproduction must not see or touch\n"})
    status = p.git("status", "--porcelain")
    store = sorted(str(x) for x in (p.root / ".mlpipe/cache").rglob("*"))

    out = p.run("reproduce", "v1.0").assert_success()

    lines = out.stdout.splitlines()
    assert lines[0] == f"reproducing v1.0: run {p.record()['run_id']} at {p.git('rev-parse', 'HEAD').strip()}"
    assert [line.split()[:3] for line in lines[3:5]] == [
        ["prepare", "data", "match"],
        ["train", "scores", "match"],
    ]
    assert lines[-1] == "reproduced: all 2 output(s) match"
    assert p.git("status", "--porcelain") == status
    assert sorted(str(x) for x in (p.root / ".mlpipe/cache").rglob("*")) == store  # nothing stored
    worktrees = [
        line for line in p.git("worktree", "list", "--porcelain").splitlines() if line.startswith("worktree ")
    ]
    assert worktrees == [f"worktree {p.root}"]  # the temporary one is gone
    assert len(list((p.root / ".mlpipe/runs").glob("*.json"))) == 1


def test_a_nondeterministic_step_is_named(project_factory, tmp_path):
    files = {
        **FILES,
        "mlpipe.yaml": NONDETERMINISTIC,
        "stamp/stamp.sh": 'od -An -N8 -tx8 /dev/urandom > "$1"\n',
    }
    p = project_factory(files)
    p.run("ci-run").assert_success()
    run_id = p.record()["run_id"]

    out = p.run("reproduce", run_id[:20], "--json").assert_code(1)

    data = json.loads(out.stdout)
    assert data["format"] == "mlpipe.reproduce/1"
    assert (data["reproduced"], data["nondeterministic"]) == (False, ["stamp"])
    outcomes = {(o["step"], o["output"]): o["outcome"] for o in data["outputs"]}
    assert outcomes == {
        ("prepare", "data"): "match",
        ("train", "scores"): "match",
        ("stamp", "out"): "differs",
    }
    assert out.stderr.endswith(f"error: {run_id[:20]} is not reproduced: nondeterministic step(s) stamp\n")


def test_what_cannot_be_checked_exits_2(project_factory, tmp_path):
    p = project_factory(FILES)
    p.run("ci-run").assert_success()
    p.git("commit", "-q", "--allow-empty", "-m", "x")
    record = json.loads(next((p.root / ".mlpipe/runs").glob("*.json")).read_text())
    record["git"]["commit"] = "0" * 40
    next((p.root / ".mlpipe/runs").glob("*.json")).write_text(json.dumps(record))

    out = p.run("reproduce", "latest").assert_code(2)

    assert out.stderr.startswith(f"error: cannot check out {'0' * 40}: ")


def test_a_run_on_uncommitted_changes_is_reproduced_from_its_snapshot_ref(project_factory):
    p = project_factory(FILES)
    p.write({"prepare/prepare.sh": 'seq 5 > "$2/rows.txt"\n'})  # uncommitted: only the snapshot ref has it
    p.run("ci-run").assert_success()
    record = p.record()
    assert record["git"]["dirty"] and record["git"]["snapshot_ref"]

    data = p.run("reproduce", record["run_id"], "--json").assert_success().json()

    assert data["code"] == record["git"]["snapshot_ref"]
    assert data["reproduced"] is True
    assert p.git("status", "--porcelain") == " M prepare/prepare.sh\n"
