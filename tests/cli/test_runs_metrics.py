"""`mlpipe runs --metrics` through the real CLI: a column per param and per metric, one row per run, newest
first, like `dvc exp show`; `--json` keeps its rows and, with `--metrics`, adds `params` and `metrics`."""

from __future__ import annotations

from mlpipe_testing import METRICS_FILES, metrics_pipeline

TRAIN = 'printf \'{"acc": %s, "loss": 0.25}\' > "$3"\n'
EVALUATE = """\
  evaluate:
    code: evaluate
    run: sh evaluate.sh ${{ outputs.report }}
    outputs:
      report: {kind: metrics}
"""


METRIC_COLUMNS = ("train.scores.acc", "train.scores.loss", "evaluate.report.f1")


def test_runs_show_a_column_per_param_and_metric(project_factory):
    project = project_factory(
        {
            "mlpipe.yaml": metrics_pipeline("table", EVALUATE),
            **METRICS_FILES,
            "train/train.sh": TRAIN % "0.5",
            "evaluate/evaluate.sh": 'printf \'{"f1": 0.5}\' > "$1"\n',
        }
    )
    project.run("ci-run").assert_success()
    project.write({"train/train.sh": TRAIN % "0.625"})
    project.commit("tune")
    project.run("ci-run", "-p", "lr=0.25").assert_success()
    runs = project.run("runs", "--json").assert_success().json()["runs"]
    newest, oldest = runs
    assert set(newest) == {"run_id", "pipeline", "status", "started_at", "ended_at", "commit", "branch"} | {
        "dirty",
        "steps",
    }

    table = project.run("runs", "--metrics").assert_success().stdout.splitlines()
    header = table[0].split()
    # Metrics in the order the run record holds its steps (the order they were planned in: its `order`).
    order = [m for step in project.record()["order"] for m in METRIC_COLUMNS if m.startswith(step + ".")]
    assert header == ["run", "status", "commit", "lr", *order]
    values = [
        {"train.scores.acc": acc, "train.scores.loss": "0.25", "evaluate.report.f1": "0.5"}
        for acc in ("0.625", "0.5")
    ]
    rows = [line.split() for line in table[2:]]
    assert rows == [
        [newest["run_id"], "succeeded", newest["commit"][:10], "0.25", *(values[0][m] for m in order)],
        [oldest["run_id"], "succeeded", oldest["commit"][:10], "0.1", *(values[1][m] for m in order)],
    ]

    detailed = project.run("runs", "--metrics", "--json").assert_success().json()
    assert detailed["format"] == "mlpipe.runs/1"
    first = detailed["runs"][0]
    assert {k: v for k, v in first.items() if k not in {"params", "metrics"}} == newest
    assert first["params"] == {"lr": 0.25}
    assert first["metrics"] == {
        "train.scores.acc": 0.625,
        "train.scores.loss": 0.25,
        "evaluate.report.f1": 0.5,
    }


def test_a_run_without_a_param_or_metric_shows_a_dash(project_factory):
    project = project_factory({"mlpipe.yaml": metrics_pipeline("dash"), **METRICS_FILES})
    project.run("ci-run", "--only", "prepare").assert_success()
    project.run("ci-run").assert_success()
    table = project.run("runs", "--metrics").assert_success().stdout.splitlines()
    assert table[0].split()[3:] == ["lr", "train.scores.acc"]
    assert [line.split()[3:] for line in table[2:]] == [["0.1", "0.5"], ["0.1", "-"]]
