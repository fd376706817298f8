"""A dirty run's exact code stays recoverable from refs/mlpipe/runs/<run_id>."""

from __future__ import annotations

import hashlib

PIPELINE = (
    "name: x\nsteps:\n  s:\n    code: src\n    run: cat *.py > $MLPIPE_OUTPUT_O/all\n    outputs: {o: {}}\n"
)


def test_clean_run_writes_no_ref(project_factory):
    project = project_factory({"mlpipe.yaml": PIPELINE, "src/a.py": "a = 1\n"})
    project.run("ci-run").assert_success()
    record = project.record()
    assert record["git"]["dirty"] is False
    assert record["git"]["snapshot_ref"] is None
    assert record["steps"]["s"]["tree"] == project.git("rev-parse", "HEAD:src").strip()
    assert project.git("for-each-ref", "refs/mlpipe") == ""


def test_dirty_run_records_its_paths_and_a_ref_holding_the_code_that_ran(project_factory, tmp_path):
    project = project_factory(
        {"mlpipe.yaml": PIPELINE, "src/a.py": "a = 1\n", ".gitignore": ".mlpipe/\n*.log\n"}
    )
    project.write({"src/a.py": "a = 2\n", "src/new.py": "b = 3\n", "src/debug.log": "ignored\n"})
    project.git("add", "src/a.py")
    project.write({"src/a.py": "a = 22\n"})  # staged and modified again: the working tree is what runs
    project.run("ci-run").assert_success()
    record = project.record()
    git = record["git"]
    assert git["dirty"] is True
    assert git["dirty_paths"] == ["src/a.py", "src/new.py"]
    ref = git["snapshot_ref"]
    assert ref == f"refs/mlpipe/runs/{record['run_id']}"
    assert project.git("rev-parse", f"{ref}^").strip() == git["commit"]
    assert project.git("rev-parse", f"{ref}:src").strip() == record["steps"]["s"]["tree"]
    assert project.git("show", f"{ref}:src/a.py") == "a = 22\n"
    assert project.git("show", f"{ref}:src/new.py") == "b = 3\n"
    # `git checkout` of the ref gives back the code that ran (in a separate worktree: the user's is untouched)
    worktree = tmp_path / "restored"
    project.git("worktree", "add", "--detach", str(worktree), ref)
    assert sorted(p.name for p in (worktree / "src").iterdir()) == ["a.py", "new.py"]
    assert (worktree / "src/a.py").read_text() == "a = 22\n"
    assert (project.root / "src/debug.log").exists()
    project.git("fsck", "--no-progress")


def test_files_over_the_size_limit_are_listed_as_not_recoverable(project_factory):
    project = project_factory({"mlpipe.yaml": PIPELINE, "src/a.py": "a = 1\n"})
    big = b"x" * 5000
    project.write({"src/big.py": big})
    project.run("ci-run", "--snapshot-max-file-size", "1000").assert_success()
    git = project.record()["git"]
    assert git["unrecoverable"] == [
        {
            "path": "src/big.py",
            "size": 5000,
            "sha256": hashlib.sha256(big).hexdigest(),
            "reason": "over the size limit",
        }
    ]
    assert "big.py" not in project.git("ls-tree", "--name-only", f"{git['snapshot_ref']}:src")


AMLIGNORED = """\
name: dirty
steps:
  s:
    code: src
    run: ls > ${{ outputs.o }}
    outputs:
      o: {type: file}
"""


def test_changed_files_the_snapshot_rules_leave_out_make_the_run_dirty_and_are_listed(
    project_factory, tmp_path
):
    project = project_factory(
        {"mlpipe.yaml": AMLIGNORED, "src/a.py": "a = 1\n", "src/.amlignore": "notes.txt\nscratch/\n"}
    )
    project.write({"src/notes.txt": "mine\n", "src/scratch/x.csv": "1,2\n", "src/a.py": "a = 2\n"})

    project.run("ci-run").assert_success()

    git = project.record()["git"]
    assert git["dirty"] is True
    assert git["dirty_paths"] == ["src/a.py", "src/notes.txt", "src/scratch/x.csv"]
    why = "changed, but left out by the snapshot rules (.amlignore)"
    assert git["unrecoverable"] == [
        {"path": "src/notes.txt", "size": 5, "reason": why},
        {"path": "src/scratch/x.csv", "size": 4, "reason": why},
    ]
    names = project.git("ls-tree", "-r", "--name-only", git["snapshot_ref"]).split()
    assert "src/a.py" in names and "src/notes.txt" not in names and "src/scratch/x.csv" not in names
    shown = project.run("checkout", project.record()["run_id"]).assert_success().stdout
    assert f"  not in the snapshot ({why}): src/notes.txt\n" in shown
