"""Metric trends as mermaid line charts (pure), and end to end: a pull request run from a fresh clone charts
each metric over the base branch's runs, found in the registry, through the real CLI in an Actions job."""

from __future__ import annotations

import re
import uuid

from github_testing import actions_job, pull_request_clone, pull_request_payload, push_payload
from mlpipe.github.history import CHARTS, POINTS, trend_charts
from mlpipe.runs import RunRecord, StepRecord
from mlpipe_testing import METRICS_FILES, metrics_pipeline


def sha(n: int) -> str:
    return f"{n:02x}" * 20


def record(n: int, metrics: dict, *, commit: str | None = None) -> RunRecord:
    return RunRecord(
        run_id=f"20260101T0000{n:02d}000Z-{n:016x}",
        pipeline="p",
        pipeline_file="mlpipe.yaml",
        started_at="2026-01-01T00:00:00Z",
        git={"commit": commit or sha(n), "branch": "main"},
        steps={"train": StepRecord(status="ran", metrics=metrics)},
    )


def charts(lines: list[str]) -> list[list[str]]:
    text = "\n".join(lines)
    return [block.splitlines() for block in re.findall(r"```mermaid\n(.*?)\n```", text, re.DOTALL)]


def test_each_metric_is_a_line_over_the_branchs_runs_then_this_run():
    history = [record(n, {"scores": {"acc": n / 10, "loss": 1 - n / 10}}) for n in (3, 2, 1)]  # newest first
    current = record(9, {"scores": {"acc": 0.95}})
    lines = trend_charts("main", history, current)
    assert lines[1] == "### Metrics over the last 3 run(s) of `main` and this run"
    acc, loss = charts(lines)
    assert acc == [
        "xychart-beta",
        '  title "train.scores.acc"',
        f'  x-axis ["{sha(1)[:7]}", "{sha(2)[:7]}", "{sha(3)[:7]}", "this run"]',
        '  y-axis "acc"',
        "  line [0.1, 0.2, 0.3, 0.95]",
    ]
    assert loss[2] == f'  x-axis ["{sha(1)[:7]}", "{sha(2)[:7]}", "{sha(3)[:7]}"]'  # this run has no loss
    assert loss[4] == "  line [0.9, 0.8, 0.7]"
    # The current run is never charted twice (a push's own record is in the branch's history when it ends).
    assert charts(trend_charts("main", [current, *history], current)) == [acc, loss]


def test_a_metric_seen_once_has_no_trend():
    assert trend_charts("main", [], record(1, {"scores": {"acc": 1.0}})) == []
    assert trend_charts("main", [record(1, {"m": {"a": 1}})], record(2, {"m": {"b": 2}})) == []


def test_points_and_charts_are_bounded():
    many = {"m": {f"k{i}": float(i) for i in range(CHARTS + 3)}}
    history = [record(n, many) for n in range(40, 0, -1)]
    lines = trend_charts("main", history, record(99, many))
    found = charts(lines)
    assert len(found) == CHARTS
    assert all(len(chart[4].split(",")) == POINTS for chart in found)
    assert lines[-1] == "Not charted (3 more): `train.m.k8`, `train.m.k9`, `train.m.k10`."
    newest = ", ".join(f'"{sha(n)[:7]}"' for n in range(22, 41))  # the 19 newest, oldest first
    assert found[0][2] == f'  x-axis [{newest}, "this run"]'


def test_names_and_values_from_a_registry_record_cannot_break_out_of_the_chart():
    hostile = {
        'out"\n```\n<img src=x>': {'a`b"c\n': 1.0, "nan": float("nan"), "big": 1e300, "flag": True, "s": "1"},
        "ok": {"tiny": 1.5e-7, "neg": -2500000.0},
    }
    history = [record(1, hostile, commit="not a commit\n```"), record(2, {"ok": 5})]
    lines = trend_charts("ma`in\n## x", history, record(3, hostile))
    text = "\n".join(lines)
    assert text.count("```") == 2 * len(charts(lines)) == 6
    assert "<img" not in text and "\n##" not in text.replace("\n### Metrics", "")
    titles = [chart[1] for chart in charts(lines)]
    assert titles == [
        '  title "train.out_______img src_x_.a_b_c_"',
        '  title "train.ok.tiny"',
        '  title "train.ok.neg"',
    ]
    assert charts(lines)[0][2] == '  x-axis ["?", "this run"]'
    assert charts(lines)[1][4] == "  line [0.00000015, 0.00000015]"
    assert charts(lines)[2][4] == "  line [-2500000, -2500000]"
    assert lines[1] == "### Metrics over the last 2 run(s) of `ma_in___ x` and this run"


# -- end to end ------------------------------------------------------------------------------------------------
TRAIN = 'printf \'{"acc": %s}\' > "$3"\n'


def test_a_pull_request_charts_each_metric_over_the_base_branchs_runs(project_factory, registry, tmp_path):
    cache = f"oci://{registry.host}/t/{uuid.uuid4().hex[:12]}"
    main = project_factory(
        {"mlpipe.yaml": metrics_pipeline("trend"), **METRICS_FILES, "train/train.sh": TRAIN % "0.5"},
        name="main",
    )
    commits = []
    for n, acc in enumerate(("0.5", "0.625", "0.75")):
        if n:
            main.write({"train/train.sh": TRAIN % acc})
            main.commit(f"acc {acc}")
        sha = main.git("rev-parse", "HEAD").strip()
        commits.append(sha)
        job = actions_job(
            tmp_path / f"push{n}", event="push", payload=push_payload(sha), sha=sha, ref="refs/heads/main"
        )
        main.run(
            "ci-run", env={**job.env, "MLPIPE_CACHE": cache, "MLPIPE_PUBLISH_CHECKS": "false"}
        ).assert_success()
    pr = pull_request_clone(main, tmp_path / "pr", {"train/train.sh": TRAIN % "0.875"}, "tune")
    head = pr.git("rev-parse", "HEAD").strip()
    job = actions_job(
        tmp_path / "pr-job",
        event="pull_request",
        payload=pull_request_payload(7, head, commits[-1]),
        sha="f" * 40,
        ref="refs/pull/7/merge",
    )
    pr.run(
        "ci-run", env={**job.env, "MLPIPE_CACHE": cache, "MLPIPE_PUBLISH_CHECKS": "false"}
    ).assert_success()
    summary = job.summary_file.read_text()
    assert "### Metrics over the last 3 run(s) of `main` and this run" in summary
    labels = ", ".join(f'"{c[:7]}"' for c in commits)
    assert (
        "```mermaid\nxychart-beta\n"
        '  title "train.scores.acc"\n'
        f'  x-axis [{labels}, "this run"]\n'
        '  y-axis "acc"\n'
        "  line [0.5, 0.625, 0.75, 0.875]\n"
        "```"
    ) in summary


def test_a_push_charts_the_branchs_own_local_runs(project_factory, tmp_path):
    project = project_factory(
        {"mlpipe.yaml": metrics_pipeline("own"), **METRICS_FILES, "train/train.sh": TRAIN % "0.5"}
    )
    for n, acc in enumerate(("0.5", "0.625")):
        if n:
            project.write({"train/train.sh": TRAIN % acc})
            project.commit(f"acc {acc}")
        sha = project.git("rev-parse", "HEAD").strip()
        job = actions_job(
            tmp_path / f"push{n}", event="push", payload=push_payload(sha), sha=sha, ref="refs/heads/main"
        )
        project.run("ci-run", env={**job.env, "MLPIPE_PUBLISH_CHECKS": "false"}).assert_success()
    summary = job.summary_file.read_text()
    assert "### Metrics over the last 1 run(s) of `main` and this run" in summary
    assert "  line [0.5, 0.625]\n" in summary
