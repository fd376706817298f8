"""`mlpipe diff` end to end on local runs: by run, by commit, text, markdown and JSON."""

from __future__ import annotations

import pytest

from mlpipe_testing import METRICS_FILES, Project, isolate_environment, make_repo, metrics_pipeline

PIPELINE = metrics_pipeline("diffdemo")

FILES = {"mlpipe.yaml": PIPELINE, **METRICS_FILES}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Two runs, made once for the module: every test here only reads them (`diff`, `runs`, `git rev-parse`)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate_environment(monkeypatch, tmp_path_factory.mktemp("home"))
        p = Project(
            make_repo(tmp_path_factory.mktemp("diff") / "project", {".gitignore": ".mlpipe/\n", **FILES})
        )
        p.run("ci-run").assert_success()
        p.write({"train/train.sh": '# tuned\nprintf \'{"acc": 0.75}\' > "$3"\n'})
        p.commit("tune train")
        p.run("ci-run").assert_success()
    return p


def test_diff_defaults_to_the_previous_run_against_the_latest(project):
    out = project.run("diff").assert_success().stdout
    base, head = project.run("runs", "--json").assert_success().json()["runs"][1::-1]

    assert out == "\n".join(
        [
            f"base {base['run_id']} ({project.git('rev-parse', 'HEAD~1').strip()[:12]})",
            f"head {head['run_id']} ({project.git('rev-parse', 'HEAD').strip()[:12]})",
            "",
            "step    change   why",
            "------  -------  -------------------------------------",
            "train   changed  code changed: train/train.sh modified",
            "report  changed  input scores changed",
            "  train: train.sh | 3 ++-",
            "  train: 1 file changed, 2 insertions(+), 1 deletion(-)",
            "",
            "step   metric      value  base  change",
            "-----  ----------  -----  ----  ------  ------",
            "train  scores.acc  0.75   0.5   +0.25   better",
            "",
        ]
    )


def test_diff_by_commit_json(project):
    head = project.git("rev-parse", "HEAD").strip()
    data = project.run("diff", "HEAD~1", "HEAD", "--json").assert_success().json()

    assert data["format"] == "mlpipe.diff/1"
    assert data["head"]["commit"] == head
    changed = {s["step"]: s for s in data["steps"] if s["change"] != "same"}
    assert sorted(changed) == ["report", "train"]
    assert [c["part"] for c in changed["train"]["changes"]] == ["code"]
    assert changed["train"]["files"] == [
        "train.sh | 3 ++-",
        "1 file changed, 2 insertions(+), 1 deletion(-)",
    ]
    assert data["metrics"] == [
        {
            "step": "train",
            "output": "scores",
            "metric": "acc",
            "value": 0.75,
            "base": 0.5,
            "delta": 0.25,
            "higher_is_better": True,
            "verdict": "better",
        }
    ]


def test_diff_markdown_marks_the_improvement(project):
    md = project.run("diff", "HEAD~1", "--md").assert_success().stdout

    assert "| `train` | `scores.acc` | 0.75 | 0.5 | +0.25 | 🟢 ▲ |" in md


def test_diff_names_what_it_cannot_find(project):
    out = project.run("diff", "nope").assert_code(2)

    assert (
        out.stderr
        == "error: 'nope' is neither a recorded run nor a git revision; `mlpipe runs` lists the runs\n"
    )
