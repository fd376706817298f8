"""Steps cannot change what other steps and later runs see, and mlpipe's own work never looks like a step's.

A step runs in a private copy of its code snapshot: editing it (even after `chmod -R u+w`) changes nothing that
later steps or runs execute, and the record names the tree that ran. Stored outputs reach steps as hard links
into the store: whatever a step writes through them is found after the step by content, fails that step, and
drops the damaged objects, so nothing reads them again. Linking the same object for another step or another
run (which changes its ctime) is no modification: two outputs sharing a file, under -j 2 and with two runs
sharing one store, never fail a step.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fault_tally
from fsck_testing import assert_store_whole

from mlpipe_testing import Project, make_repo

ROUNDS = 3


def statuses(record: dict) -> dict[str, str]:
    return {name: step["status"] for name, step in record["steps"].items()}


def errors(record: dict) -> dict[str, str]:
    return {name: step["error"] for name, step in record["steps"].items() if step.get("error")}


# -- no false alarms ------------------------------------------------------------------------------------------

SHARED_FILE = """\
name: shared
params:
  round: 0
steps:
  a:
    run: echo same > ${{ outputs.o }}/shared; echo a-${{ params.round }} > ${{ outputs.o }}/own
    outputs: {o: {}}
  b:
    run: sleep 0.4; echo same > ${{ outputs.o }}/shared; echo b-${{ params.round }} > ${{ outputs.o }}/own
    outputs: {o: {}}
  da:
    run: sleep 1.2; cat ${{ inputs.x }}/shared ${{ inputs.x }}/own > ${{ outputs.o }}
    inputs: {x: "${{ steps.a.outputs.o }}"}
    outputs: {o: {type: file}}
  db:
    run: sleep 0.2; cat ${{ inputs.x }}/shared ${{ inputs.x }}/own > ${{ outputs.o }}
    inputs: {x: "${{ steps.b.outputs.o }}"}
    outputs: {o: {type: file}}
"""


def test_outputs_sharing_a_file_never_fail_their_readers_under_j2(project_factory) -> None:
    # da reads a's output while b's output (which holds the same file, so the same object) is linked for db:
    # the object's ctime changes under da. That is mlpipe's work, not da's.
    project = project_factory({"mlpipe.yaml": SHARED_FILE})
    for round_ in range(1, ROUNDS + 1):
        outcome = project.run("ci-run", "-j", "2", "-p", f"round={round_}")
        record = project.record()
        assert outcome.code == 0, (errors(record), outcome.output)
        assert statuses(record) == {"a": "ran", "b": "ran", "da": "ran", "db": "ran"}
    project.run("pull", "da.o", "--to", "check", "-p", f"round={ROUNDS}").assert_success()
    assert (project.root / "check/o").read_text() == f"same\na-{ROUNDS}\n"
    assert_store_whole(project.root / ".mlpipe/cache")
    fault_tally.record("object linked for another step (-j 2)", injected=ROUNDS, runs_completed=ROUNDS)


CLONE_PIPELINE = """\
name: clones
params:
  round: 0
steps:
  up:
    run: echo same > ${{ outputs.o }}/shared; cat ${{ inputs.who }} > ${{ outputs.o }}/who; echo ${{ params.round }} >> ${{ outputs.o }}/who
    inputs: {who: who.txt}
    outputs: {o: {}}
  down:
    run: sleep 1.5; cat ${{ inputs.x }}/shared ${{ inputs.x }}/who > ${{ outputs.o }}
    inputs: {x: "${{ steps.up.outputs.o }}"}
    outputs: {o: {type: file}}
"""


def test_two_runs_sharing_a_store_never_fail_each_other(tmp_path: Path) -> None:
    store = tmp_path / "store"
    clones = [
        Project(
            make_repo(
                tmp_path / name, {".gitignore": ".mlpipe/\n", "mlpipe.yaml": CLONE_PIPELINE, "who.txt": name}
            )
        )
        for name in ("one", "two")
    ]
    for round_ in range(1, ROUNDS + 1):
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "mlpipe", "ci-run", "--cache", str(store), "-p", f"round={round_}"],
                cwd=clone.root,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for clone in clones
        ]
        outputs = [run.communicate(timeout=120)[0] for run in runs]
        for clone, run, output in zip(clones, runs, outputs, strict=True):
            record = clone.record()
            assert run.returncode == 0, (errors(record), output)
            assert statuses(record) == {"up": "ran", "down": "ran"}
    for clone in clones:
        clone.run(
            "pull", "down.o", "--to", "check", "--cache", str(store), "-p", f"round={ROUNDS}"
        ).assert_success()
        assert (clone.root / "check/o").read_text() == f"same\n{clone.root.name}{ROUNDS}\n"
    assert_store_whole(store)
    fault_tally.record("object linked by a run sharing the store", injected=ROUNDS, runs_completed=2 * ROUNDS)


# -- steps cannot change what others see ---------------------------------------------------------------------

EDIT_CODE = """\
name: edits
steps:
  edit:
    run: chmod -R u+w . && echo 'print("evil")' >> code.py && python code.py > ${{ outputs.o }}
    outputs: {o: {type: file}}
  use:
    run: python code.py > ${{ outputs.o }}; cat ${{ inputs.x }} >> ${{ outputs.o }}
    inputs: {x: "${{ steps.edit.outputs.o }}"}
    outputs: {o: {type: file}}
"""


def test_a_step_that_edits_its_code_changes_nothing_later_steps_and_runs_run(project_factory) -> None:
    project = project_factory({"mlpipe.yaml": EDIT_CODE, "code.py": 'print("clean")\n'})
    tree = project.git("rev-parse", "HEAD^{tree}").strip()

    project.run("ci-run", "-j", "1").assert_success()
    project.run("pull", "use.o", "--to", "check").assert_success()
    # The editing step ran its edit; the step after it ran the clean code.
    assert (project.root / "check/o").read_text() == "clean\nclean\nevil\n"
    record = project.record()
    assert {name: step["tree"] for name, step in record["steps"].items()} == {"edit": tree, "use": tree}

    project.run("ci-run", "--no-reuse").assert_success()
    project.run("pull", "use.o", "--to", "check2").assert_success()
    assert (project.root / "check2/o").read_text() == "clean\nclean\nevil\n"
    assert (project.root / "code.py").read_text() == 'print("clean")\n'
    assert not list((project.root / ".mlpipe/tmp").glob("*/*/code"))  # each private copy is removed
    assert_store_whole(project.root / ".mlpipe/cache")
    fault_tally.record("step edits its code snapshot", injected=2, runs_completed=2)


WRITE_INPUT = """\
name: writes
steps:
  up:
    run: echo data > ${{ outputs.o }}/f
    outputs: {o: {}}
  down:
    run: chmod -R u+w ${{ inputs.x }} && echo evil >> ${{ inputs.x }}/f; echo ok > ${{ outputs.o }}
    inputs: {x: "${{ steps.up.outputs.o }}"}
    outputs: {o: {type: file}}
  later:
    run: sleep 1; cat ${{ inputs.x }}/f > ${{ outputs.o }}
    inputs: {x: "${{ steps.up.outputs.o }}"}
    outputs: {o: {type: file}}
"""


def test_a_step_that_writes_through_its_input_fails_and_nobody_reads_what_it_wrote(project_factory) -> None:
    project = project_factory({"mlpipe.yaml": WRITE_INPUT})

    project.run("ci-run", "-j", "1").assert_code(1)

    record = project.record()
    assert record["steps"]["down"]["error"] == (
        "the step modified its input 'x' (f); inputs must stay unchanged: write to an output instead"
    )
    # `later` read the input after `down` wrote to it: it failed, or it read the original, never the edit.
    later = record["steps"]["later"]
    if later["status"] == "failed":
        assert later["error"] in {
            "the step modified its input 'x' (f); inputs must stay unchanged: write to an output instead",
            (
                "the stored output up.o was found changed at 'f' and its damaged files were dropped from the "
                "store; the next run runs 'up' again"
            ),
        }
    else:
        project.run("pull", "later.o", "--to", "check").assert_success()
        assert (project.root / "check/o").read_text() == "data\n"

    fixed = WRITE_INPUT.replace("chmod -R u+w ${{ inputs.x }} && echo evil >> ${{ inputs.x }}/f; ", "")
    project.write({"mlpipe.yaml": fixed})
    project.commit()
    project.run("ci-run").assert_success()
    record = project.record()
    assert statuses(record) == {"up": "ran", "down": "ran", "later": "ran"}  # the damaged result is gone
    project.run("pull", "later.o", "--to", "check2").assert_success()
    assert (project.root / "check2/o").read_text() == "data\n"
    assert_store_whole(project.root / ".mlpipe/cache")
    fault_tally.record("step writes through its input", injected=1, runs_completed=2)


READ_INPUT = """\
name: reads
params:
  n: 0
steps:
  up:
    run: echo data > ${{ outputs.o }}/f; echo more > ${{ outputs.o }}/g
    outputs: {o: {}}
  down:
    run: cat ${{ inputs.x }}/f ${{ inputs.x }}/g > ${{ outputs.o }}; echo ${{ params.n }} >> ${{ outputs.o }}
    inputs: {x: "${{ steps.up.outputs.o }}"}
    outputs: {o: {type: file}}
"""


def farm_file(project: Project, name: str) -> Path:
    found = list((project.root / ".mlpipe/cache/materialized").glob(f"*/d/{name}"))
    assert len(found) == 1, found
    return found[0]


def test_a_farm_left_changed_is_rebuilt_before_a_step_reads_it(project_factory) -> None:
    # As a killed run can leave it: a file of the farm replaced (the object behind it is intact).
    project = project_factory({"mlpipe.yaml": READ_INPUT})
    project.run("ci-run").assert_success()
    path = farm_file(project, "f")
    path.parent.chmod(0o755)
    path.unlink()
    path.write_text("evil\n")
    path.chmod(0o444)

    project.run("ci-run", "-p", "n=1").assert_success()

    assert statuses(project.record()) == {"up": "reused", "down": "ran"}
    project.run("pull", "down.o", "--to", "check", "-p", "n=1").assert_success()
    assert (project.root / "check/o").read_text() == "data\nmore\n1\n"
    assert_store_whole(project.root / ".mlpipe/cache")
    fault_tally.record("stored output left changed", injected=1, runs_completed=1)


def test_an_object_written_through_a_farm_is_dropped_and_its_step_runs_again(project_factory) -> None:
    # As a step killed with its run can leave it: an object written to through the farm's hard link.
    project = project_factory({"mlpipe.yaml": READ_INPUT})
    project.run("ci-run").assert_success()
    path = farm_file(project, "f")
    path.chmod(0o644)
    path.write_text("evil\n")
    path.chmod(0o444)

    failed = project.run("ci-run", "-p", "n=1").assert_code(1)

    assert "Traceback" not in failed.output
    assert project.record()["steps"]["down"]["error"] == (
        "the stored output up.o was found changed at 'f' and its damaged files were dropped from the store; "
        "the next run runs 'up' again"
    )
    project.run("ci-run", "-p", "n=1").assert_success()
    assert statuses(project.record()) == {"up": "ran", "down": "ran"}
    project.run("pull", "down.o", "--to", "check", "-p", "n=1").assert_success()
    assert (project.root / "check/o").read_text() == "data\nmore\n1\n"
    assert_store_whole(project.root / ".mlpipe/cache")
    fault_tally.record("stored output left changed", injected=1, runs_completed=2)
