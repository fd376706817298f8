"""`mlpipe ci-run` end to end on real git repositories: reuse, early cutoff, selection, failures, records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

PIPELINE = """\
name: demo
params:
  n: 3
  greeting: hello
steps:
  a:
    code: a
    run: ./a.sh ${{ inputs.data }} ${{ outputs.out }} ${{ params.n }}
    inputs:
      data: data/input.txt
    outputs:
      out: {}
  b:
    code: b
    run: sh b.sh ${{ inputs.upstream }} ${{ outputs.result }}
    inputs:
      upstream: ${{ steps.a.outputs.out }}
    outputs:
      result:
        type: file
  c:
    code: c
    run: |
      echo "${{ params.greeting }}"
      printf '{"score": 0.5}' > ${{ outputs.metrics }}
    outputs:
      metrics:
        kind: metrics
        path: reports/metrics.json
"""

FILES = {
    "mlpipe.yaml": PIPELINE,
    "data/input.txt": "one\ntwo\n",
    "a/a.sh": '#!/bin/sh\nset -e\nhead -c 100 "$1" > "$2/copy.txt"\necho "n=$3" > "$2/n.txt"\n',
    "b/b.sh": 'cat "$1/copy.txt" "$1/n.txt" | wc -l > "$2"\n',
    "c/.keep": "",
}


def statuses(record: dict) -> dict[str, str]:
    return {name: step["status"] for name, step in record["steps"].items()}


@pytest.fixture
def project(project_factory):
    p = project_factory(FILES)
    (p.root / "a/a.sh").chmod(0o755)
    p.commit("exec bit")
    return p


def test_first_run_runs_everything_and_rerun_reuses_everything(project):
    first = project.run("ci-run").assert_success()
    assert "succeeded" in first.stdout
    record = project.record()
    assert statuses(record) == {"a": "ran", "b": "ran", "c": "ran"}
    assert record["status"] == "succeeded"
    assert record["git"]["commit"] == project.git("rev-parse", "HEAD").strip()
    assert record["git"]["dirty"] is False
    assert record["steps"]["c"]["metrics"] == {"metrics": {"score": 0.5}}
    assert json.loads((project.root / "reports/metrics.json").read_text()) == {"score": 0.5}

    project.run("ci-run").assert_success()
    again = project.record()
    assert statuses(again) == {"a": "reused", "b": "reused", "c": "reused"}
    assert again["steps"]["a"]["reused_from"]["run_id"] == record["run_id"]
    assert again["steps"]["a"]["fingerprint"] == record["steps"]["a"]["fingerprint"]


def test_param_change_reruns_only_the_steps_that_use_it(project):
    project.run("ci-run").assert_success()
    project.run("ci-run", "-p", "greeting=bye").assert_success()
    record = project.record()
    assert statuses(record) == {"a": "reused", "b": "reused", "c": "ran"}
    assert record["steps"]["c"]["reasons"] == ["param greeting: 'hello' -> 'bye'"]


def test_early_cutoff_reuses_downstream_when_upstream_output_is_identical(project):
    project.run("ci-run").assert_success()
    project.write(
        {
            "a/a.sh": "#!/bin/sh\nset -e\n# a comment changes the code, not the output\n"
            'head -c 100 "$1" > "$2/copy.txt"\necho "n=$3" > "$2/n.txt"\n'
        }
    )
    project.commit()
    plan = project.run("plan", "--json").assert_success().json()
    actions = {s["name"]: s["action"] for s in plan["steps"]}
    assert actions == {"a": "run", "b": "run", "c": "reuse"}
    assert plan["steps"][0]["reasons"] == ["code changed: a/a.sh modified"]  # by repository path
    project.run("ci-run").assert_success()
    record = project.record()
    assert statuses(record) == {"a": "ran", "b": "reused", "c": "reused"}
    assert record["steps"]["b"]["reasons"] == ["upstream reran but produced identical outputs"]


def test_changed_input_reruns_its_step_and_downstream(project):
    project.run("ci-run").assert_success()
    first = project.record()
    project.write({"data/input.txt": "one\ntwo\nthree\n"})
    project.commit()
    project.run("ci-run").assert_success()
    record = project.record()
    assert statuses(record) == {"a": "ran", "b": "ran", "c": "reused"}
    old, new = (r["steps"]["a"]["parts"]["inputs"]["data"] for r in (first, record))
    assert record["steps"]["a"]["reasons"] == [
        f"input data (data/input.txt) changed: {old[:19]} -> {new[:19]}"
    ]


def test_two_clones_at_different_paths_reuse_each_others_results(project, tmp_path):
    cache = tmp_path / "shared-cache"
    project.run("ci-run", "--cache", str(cache)).assert_success()
    clone = tmp_path / "elsewhere" / "clone"
    clone.parent.mkdir()
    shutil.copytree(project.root, clone, ignore=shutil.ignore_patterns(".mlpipe"), symlinks=True)
    from mlpipe_testing import Project

    other = Project(clone)
    other.run("ci-run", env={"MLPIPE_CACHE": str(cache)}).assert_success()
    record = other.record()
    assert statuses(record) == {"a": "reused", "b": "reused", "c": "reused"}
    assert json.loads((clone / "reports/metrics.json").read_text()) == {"score": 0.5}


def test_failing_step_stops_its_downstream_but_independent_branches_finish(project_factory):
    project = project_factory(
        {
            "mlpipe.yaml": """\
name: branches
steps:
  bad:
    run: echo about to fail; exit 3
    outputs: {o: {}}
  after_bad:
    run: cp -r ${{ inputs.x }} ${{ outputs.o }}/x
    inputs: {x: "${{ steps.bad.outputs.o }}"}
    outputs: {o: {}}
  good:
    run: sleep 0.5; echo fine > ${{ outputs.o }}/f
    outputs: {o: {}}
""",
        }
    )
    outcome = project.run("ci-run").assert_code(1)
    assert "[bad] about to fail" in outcome.stdout
    record = project.record()
    assert statuses(record) == {"bad": "failed", "after_bad": "skipped", "good": "ran"}
    assert record["steps"]["bad"]["exit_code"] == 3
    assert record["status"] == "failed"
    log = project.root / record["steps"]["bad"]["log"]
    assert log.read_text() == "about to fail\n"


def test_fail_fast_stops_the_other_branches(project_factory):
    project = project_factory(
        {
            "mlpipe.yaml": """\
name: branches
steps:
  bad:
    run: exit 1
  slow:
    run: sleep 30; touch ${{ outputs.o }}/done
    outputs: {o: {}}
""",
        }
    )
    project.run("ci-run", "--fail-fast", "--jobs", "2").assert_code(1)
    record = project.record()
    assert statuses(record) == {"bad": "failed", "slow": "cancelled"}
    assert record["status"] == "failed"


def test_step_without_declared_output_fails_naming_it(project_factory):
    project = project_factory(
        {
            "mlpipe.yaml": "name: x\nsteps:\n  s:\n    run: 'true'\n    outputs:\n      model: {type: file}\n"
            "      stats: {kind: metrics}\n",
        }
    )
    project.run("ci-run").assert_code(1)
    error = project.record()["steps"]["s"]["error"]
    assert error == "the step exited 0 but did not write its output 'model' (a file at $MLPIPE_OUTPUT_MODEL)"


def test_non_json_metrics_fail_naming_the_output(project_factory):
    project = project_factory(
        {
            "mlpipe.yaml": "name: x\nsteps:\n  s:\n    run: echo nope > $MLPIPE_OUTPUT_STATS\n"
            "    outputs:\n      stats: {kind: metrics}\n",
        }
    )
    project.run("ci-run").assert_code(1)
    error = project.record()["steps"]["s"]["error"]
    assert error.startswith("metrics output 'stats' is not valid JSON: ")


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("[" * 100_000 + "]" * 100_000, "metrics output 'stats' is nested too deeply"),
        ('{"a": ' * 40 + "1" + "}" * 40, "metrics output 'stats': nested deeper than 32 levels at "),
        ('{"acc\\nforged": 1}', "metrics.stats (a metric name): expected a printable string of 1 to 200"),
        (
            '{"' + "m" * 300 + '": 1}',
            "metrics.stats (a metric name): expected a printable string of 1 to 200",
        ),
    ],
    ids=["deep JSON", "deep object", "newline in a name", "long name"],
)
def test_a_metrics_file_no_reader_could_use_fails_the_step(project_factory, content, error):
    """What the step stores is what every later reader accepts: else the result would be refused forever."""
    project = project_factory(
        {
            "stats.json": content,
            "mlpipe.yaml": "name: x\nsteps:\n  s:\n    run: cp stats.json $MLPIPE_OUTPUT_STATS\n"
            "    outputs:\n      stats: {kind: metrics}\n",
        }
    )
    outcome = project.run("ci-run").assert_code(1)
    assert "Traceback" not in outcome.output
    assert project.record()["steps"]["s"]["error"].startswith(error)


def test_step_that_modifies_its_input_fails(project_factory):
    project = project_factory(
        {
            "mlpipe.yaml": """\
name: x
steps:
  up:
    run: echo data > ${{ outputs.o }}/f
    outputs: {o: {}}
  down:
    run: echo tamper >> ${{ inputs.x }}/f; echo ok > ${{ outputs.o }}/g
    inputs: {x: "${{ steps.up.outputs.o }}"}
    outputs: {o: {}}
""",
        }
    )
    project.run("ci-run").assert_code(1)
    record = project.record()
    assert record["steps"]["down"]["error"] == (
        "the step modified its input 'x' (f); inputs must stay unchanged: write to an output instead"
    )
    # Stored files are hard links, which root can write through: the tampered object is dropped from the
    # store, so the next run recomputes `up` instead of reading corrupted data.
    edited = (project.root / "mlpipe.yaml").read_text().replace("echo tamper >> ${{ inputs.x }}/f; ", "")
    project.write({"mlpipe.yaml": edited})
    project.commit()
    project.run("ci-run").assert_success()
    record = project.record()
    assert statuses(record) == {"up": "ran", "down": "ran"}
    assert project.run("pull", "up.o", "--to", "check").assert_success()
    assert (project.root / "check/o/f").read_text() == "data\n"


def test_only_needs_stored_upstream_results(project):
    outcome = project.run("ci-run", "--only", "b").assert_code(2)
    assert "upstream step(s) a have no stored result" in outcome.stderr
    project.run("ci-run", "--only", "b", "--with-upstream").assert_success()
    assert statuses(project.record()) == {"a": "ran", "b": "ran"}
    project.run("ci-run", "--only", "b").assert_success()
    assert statuses(project.record()) == {"a": "reused", "b": "reused"}


def test_from_forces_the_step_and_its_downstream(project):
    project.run("ci-run").assert_success()
    project.run("ci-run", "--from", "a").assert_success()
    record = project.record()
    assert statuses(record) == {"a": "ran", "b": "ran", "c": "reused"}
    assert record["steps"]["a"]["reasons"] == ["forced by --from"]
    # b waited for a's output: decided again once it was known, still forced for the same reason
    assert record["steps"]["b"]["reasons"] == ["forced by --from"]


def test_reuse_false_and_no_reuse_always_run(project):
    project.run("ci-run").assert_success()
    project.run("ci-run", "--no-reuse").assert_success()
    record = project.record()
    assert set(statuses(record).values()) == {"ran"}
    assert {name: step["reasons"] for name, step in record["steps"].items()} == {
        name: ["--no-reuse given"] for name in record["steps"]
    }


def test_nondeterministic_rerun_keeps_the_stored_entry_and_flags_the_step(project_factory):
    project = project_factory(
        {
            "mlpipe.yaml": "name: x\nsteps:\n  s:\n    run: date +%s%N > $MLPIPE_OUTPUT_O/t\n    outputs: {o: {}}\n",
        }
    )
    project.run("ci-run").assert_success()
    first = project.record()
    project.run("ci-run", "--no-reuse").assert_success()
    second = project.record()
    assert second["steps"]["s"]["nondeterministic"] is True
    assert second["steps"]["s"]["outputs"] == first["steps"]["s"]["outputs"]  # the first entry wins
    assert "NONDETERMINISTIC" in project.run("show").stdout


def test_paths_in_step_logs_point_at_the_repo_not_the_snapshot_copy(project_factory):
    project = project_factory(
        {
            "mlpipe.yaml": "name: x\nsteps:\n  s:\n    code: src\n    run: python3 fail.py\n",
            "src/fail.py": "import os\nprint(os.path.abspath('fail.py'))\nraise SystemExit(2)\n",
        }
    )
    outcome = project.run("ci-run").assert_code(1)
    assert "[s] src/fail.py" in outcome.stdout
    assert ".mlpipe/snapshots" not in outcome.stdout


def test_step_sees_only_its_snapshot_and_the_mlpipe_variables(project_factory):
    project = project_factory(
        {
            ".gitignore": ".mlpipe/\nsecret.txt\n",
            "mlpipe.yaml": "name: x\nsteps:\n  s:\n    code: src\n    env: {GREETING: 'hi ${{ params.who }}'}\n"
            "    run: ls -A > $MLPIPE_OUTPUT_O/ls; env | grep -E '^(MLPIPE_|GREETING)' | sort > $MLPIPE_OUTPUT_O/env\n"
            "    outputs: {o: {}}\n"
            "params: {who: you}\n",
            "src/tool.py": "pass\n",
            "src/secret.txt": "ignored\n",
        }
    )
    (project.root / "src/untracked.py").write_text("new\n")
    project.run("ci-run").assert_success()
    project.run("pull", "s.o", "--to", "got").assert_success()
    assert (project.root / "got/o/ls").read_text().split() == ["tool.py", "untracked.py"]
    env = (project.root / "got/o/env").read_text()
    assert "GREETING=hi you\n" in env
    assert "MLPIPE_STEP=s\n" in env
    assert "MLPIPE_RUN_ID=" in env
    assert "MLPIPE_OUTPUT_O=" in env


def test_runs_and_show_list_and_resolve_prefixes(project):
    project.run("ci-run").assert_success()
    project.run("ci-run").assert_success()
    listing = project.run("runs", "--json").assert_success().json()
    assert listing["format"] == "mlpipe.runs/1"
    ids = [r["run_id"] for r in listing["runs"]]
    assert len(ids) == 2 and ids == sorted(ids, reverse=True)
    shown = project.run("show", ids[1][:22], "--json").assert_success().json()
    assert shown["format"] == "mlpipe.run/1"
    assert shown["run_id"] == ids[1]
    missing = project.run("show", "nope").assert_code(2)
    assert "no run matches 'nope'" in missing.stderr


def test_pull_checks_out_outputs(project):
    project.run("ci-run").assert_success()
    out = project.run("pull", "a", "--to", "pulled").assert_success()
    assert "a.out -> pulled/out" in out.stdout
    assert (project.root / "pulled/out/copy.txt").read_text() == "one\ntwo\n"
    (project.root / "pulled/out/copy.txt").write_text("editable\n")  # a writable copy, not the store's file
    project.run("ci-run").assert_success()
    assert statuses(project.record()) == {"a": "reused", "b": "reused", "c": "reused"}


def test_outside_git_it_still_runs_and_says_so(tmp_path):
    from mlpipe_testing import Project, write_files

    root = tmp_path / "plain"
    write_files(
        root,
        {
            "mlpipe.yaml": "name: x\nsteps:\n  s:\n    run: echo hi > $MLPIPE_OUTPUT_O/f\n    outputs: {o: {}}\n"
        },
    )
    project = Project(root)
    project.run("ci-run").assert_success()
    record = project.record()
    assert record["git"]["in_repo"] is False
    assert record["git"]["commit"] is None
    project.run("ci-run").assert_success()
    assert statuses(project.record()) == {"s": "reused"}


def test_cli_reports_spec_errors_with_exit_2(project_factory):
    project = project_factory({"mlpipe.yaml": "name: x\nsteps:\n  s:\n    run: echo ${{ params.nope }}\n"})
    outcome = project.run("ci-run").assert_code(2)
    assert outcome.stderr.startswith("mlpipe.yaml:4:")
    assert "Traceback" not in outcome.stderr
    assert not (project.root / ".mlpipe/runs").exists()


def test_metrics_path_checkout_is_writable_and_restored(project):
    project.run("ci-run").assert_success()
    target: Path = project.root / "reports/metrics.json"
    target.unlink()
    project.run("ci-run").assert_success()
    assert json.loads(target.read_text()) == {"score": 0.5}


def test_touching_an_input_without_changing_it_reruns_nothing(project):
    project.run("ci-run").assert_success()
    (project.root / "data/input.txt").touch()
    project.run("ci-run").assert_success()
    assert set(statuses(project.record()).values()) == {"reused"}


def test_same_size_change_with_the_old_mtime_is_still_detected(project):
    project.run("ci-run").assert_success()
    data = project.root / "data/input.txt"
    before = data.stat()
    data.write_text("uno\ndos\n")  # the same size as before
    import os

    os.utime(
        data, ns=(before.st_atime_ns, before.st_mtime_ns)
    )  # and the same mtime, as a fast edit would have
    project.run("ci-run").assert_success()
    assert statuses(project.record())["a"] == "ran"


def test_pull_falls_back_to_the_most_recent_result_and_says_so(project):
    project.run("ci-run").assert_success()
    project.write({"data/input.txt": "changed\n"})
    project.commit()
    out = project.run("pull", "a.out").assert_success()
    assert (
        "no stored result of a matches the current code, params and inputs; pulling its most recent one"
        in (out.stderr)
    )
    assert (project.root / "out/copy.txt").read_text() == "one\ntwo\n"
    missing = project.run("pull", "a.nope").assert_code(2)
    assert missing.stderr == "error: step 'a' has no output 'nope'; expected one of: out\n"


def test_step_that_modifies_a_workspace_input_fails(project_factory):
    project = project_factory(
        {
            "mlpipe.yaml": "name: x\nsteps:\n  s:\n    run: echo more >> ${{ inputs.data }}/a.txt\n"
            "    inputs: {data: data}\n",
            "data/a.txt": "a\n",
        }
    )
    project.run("ci-run").assert_code(1)
    assert project.record()["steps"]["s"]["error"] == (
        "the step modified its input 'data'; inputs must stay unchanged: write to an output instead"
    )
