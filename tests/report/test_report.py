"""Text tables and `--json` envelopes rendered from hand-built run records and plans."""

from __future__ import annotations

from mlpipe.core.fingerprint import Fingerprint
from mlpipe.core.plan import Plan, StepPlan
from mlpipe.core.reasons import Spot
from mlpipe.core.results import StepResult
from mlpipe.report.text import plan_json, plan_text, run_summary, runs_json, runs_text, show_text, where
from mlpipe.runs import RunRecord, StepRecord
from mlpipe.text import table

RUN_ID = "20260102T030405006Z-0123456789abcdef"
OLD_RUN_ID = "20260101T000000000Z-aa"
COMMIT = "c0ffee" * 6 + "abcd"


def failed_run() -> RunRecord:
    return RunRecord(
        run_id=RUN_ID,
        pipeline="demo",
        pipeline_file="ml/mlpipe.yaml",
        started_at="2026-01-02T03:04:05.006Z",
        ended_at="2026-01-02T03:05:00.000Z",
        status="failed",
        git={
            "in_repo": True,
            "commit": COMMIT,
            "branch": "main",
            "dirty": True,
            "dirty_paths": ["a.py", "b.py"],
            "snapshot_ref": "refs/mlpipe/runs/x",
        },
        params={"lr": 0.2, "greeting": "hi"},
        steps={
            "prep": StepRecord(status="ran", duration_s=1.5, reasons=["no stored result for this step yet"]),
            "train": StepRecord(
                status="ran",
                duration_s=12.0,
                nondeterministic=True,
                reasons=["param lr: 0.1 -> 0.2", "command changed"],
                metrics={"scores": {"acc": 0.91234, "loss": 0.1}},
            ),
            "eval": StepRecord(
                status="reused",
                reused_from={"run_id": OLD_RUN_ID, "commit": None},
                metrics={"m": {"a": 1, "b": 2.0, "c": 1e-7, "d": 4}},
            ),
            "deploy": StepRecord(status="failed", duration_s=0.3, error="exited with code 3"),
            "notify": StepRecord(status="skipped", error="upstream deploy did not succeed"),
        },
    )


def clean_run() -> RunRecord:
    return RunRecord(
        run_id=OLD_RUN_ID,
        pipeline="demo",
        pipeline_file="mlpipe.yaml",
        started_at="2026-01-01T00:00:00.000Z",
        status="succeeded",
        steps={"a": StepRecord(status="ran")},
    )


STEPS_TABLE = """\
step    status   time   metrics                 detail
------  -------  -----  ----------------------  ----------------------------------------------------------------------------------------------
prep    ran      1.5s                           no stored result for this step yet
train   ran      12.0s  acc=0.9123, loss=0.1    NONDETERMINISTIC: output differs from the stored result; param lr: 0.1 -> 0.2; command changed
eval    reused          a=1, b=2, c=1e-07, ...  from 20260101T000000000Z-aa
deploy  failed   0.3s                           exited with code 3
notify  skipped                                 upstream deploy did not succeed"""


def test_table_pads_columns_and_strips_trailing_spaces() -> None:
    assert table(["a", "long header"], [["xyz", ""], ["", "v"]]) == (
        "a    long header\n---  -----------\nxyz\n     v"
    )
    assert table(["a", "bb"], []) == "a  bb\n-  --"


def test_run_summary() -> None:
    assert run_summary(failed_run()) == (
        f"run {RUN_ID}: failed (1 failed, 2 ran, 1 reused, 1 skipped) at c0ffeec0ffee + 2 uncommitted change(s)\n"
        + STEPS_TABLE
    )
    assert run_summary(clean_run()) == (
        f"run {OLD_RUN_ID}: succeeded (1 ran) outside a git repository (no commit recorded)\n"
        "step  status  time  metrics  detail\n"
        "----  ------  ----  -------  ------\n"
        "a     ran"
    )


def test_run_summary_ends_with_each_failed_steps_log_path_and_last_lines() -> None:
    record = failed_run()
    record.steps["deploy"].log = ".mlpipe/logs/r/deploy.log"
    tails = {"deploy": ["Traceback (most recent call last):", "ValueError: no"]}

    assert run_summary(record, tails).endswith(
        STEPS_TABLE + "\n\n"
        "deploy failed: exited with code 3 (log: .mlpipe/logs/r/deploy.log)\n"
        "  last 2 line(s) of its log:\n"
        "  | Traceback (most recent call last):\n"
        "  | ValueError: no"
    )
    assert run_summary(record).endswith(
        STEPS_TABLE + "\n\ndeploy failed: exited with code 3 (log: .mlpipe/logs/r/deploy.log)"
    )


def test_show_text() -> None:
    assert show_text(failed_run()) == (
        f"run:       {RUN_ID}\n"
        "pipeline:  demo (ml/mlpipe.yaml)\n"
        "status:    failed\n"
        "started:   2026-01-02T03:04:05.006Z\n"
        "ended:     2026-01-02T03:05:00.000Z\n"
        f"commit:    {COMMIT} on main\n"
        "dirty:     yes (2 paths)\n"
        "code ref:  refs/mlpipe/runs/x\n"
        "params:    lr=0.2, greeting=hi\n"
        "\n" + STEPS_TABLE
    )
    assert show_text(clean_run()).split("\n")[:7] == [
        f"run:       {OLD_RUN_ID}",
        "pipeline:  demo (mlpipe.yaml)",
        "status:    succeeded",
        "started:   2026-01-01T00:00:00.000Z",
        "ended:     -",
        "commit:    - on -",
        "dirty:     no",
    ]


def test_runs_text() -> None:
    assert runs_text([failed_run(), clean_run()]) == (
        "run                                   pipeline  status     commit       steps\n"
        "------------------------------------  --------  ---------  -----------  ------------------------------------\n"
        f"{RUN_ID}  demo      failed     c0ffeec0ff*  1 failed, 2 ran, 1 reused, 1 skipped\n"
        f"{OLD_RUN_ID}                demo      succeeded  -            1 ran"
    )


def test_runs_json_envelope() -> None:
    assert runs_json([failed_run(), clean_run()]) == {
        "format": "mlpipe.runs/1",
        "runs": [
            {
                "run_id": RUN_ID,
                "pipeline": "demo",
                "status": "failed",
                "started_at": "2026-01-02T03:04:05.006Z",
                "ended_at": "2026-01-02T03:05:00.000Z",
                "commit": COMMIT,
                "branch": "main",
                "dirty": True,
                "steps": {"ran": 2, "reused": 1, "failed": 1, "skipped": 1},
            },
            {
                "run_id": OLD_RUN_ID,
                "pipeline": "demo",
                "status": "succeeded",
                "started_at": "2026-01-01T00:00:00.000Z",
                "ended_at": None,
                "commit": None,
                "branch": None,
                "dirty": False,
                "steps": {"ran": 1},
            },
        ],
    }
    assert runs_json([]) == {"format": "mlpipe.runs/1", "runs": []}


def make_plan() -> Plan:
    stored = StepResult(fingerprint="a" * 64, parts={}, outputs={}, provenance={"run_id": OLD_RUN_ID})
    return Plan(
        steps={
            "prep": StepPlan(
                name="prep",
                action="reuse",
                selected=False,
                fingerprint=Fingerprint(key="a" * 64, parts={}),
                result=stored,
                reasons=(f"same fingerprint as run {OLD_RUN_ID}",),
            ),
            "train": StepPlan(
                name="train",
                action="run",
                selected=True,
                forced=True,
                fingerprint=Fingerprint(key="b" * 64, parts={}),
                reasons=("forced by --from",),
            ),
            "eval": StepPlan(
                name="eval",
                action="run",
                selected=True,
                reasons=("upstream train will run", "param x now used"),
                spot=Spot(path=None, line=12),
            ),
            "fetch": StepPlan(
                name="fetch",
                action="missing",
                selected=False,
                fingerprint=Fingerprint(key="c" * 64, parts={}),
                reasons=("no stored result for its current code, params and inputs",),
            ),
        }
    )


def test_plan_text() -> None:
    assert plan_text(make_plan()) == (
        "step   action   why\n"
        "-----  -------  " + "-" * len("no stored result for its current code, params and inputs") + "\n"
        f"prep   reuse    same fingerprint as run {OLD_RUN_ID}\n"
        "train  run      forced by --from\n"
        "eval   run      upstream train will run; param x now used\n"
        "fetch  MISSING  no stored result for its current code, params and inputs"
    )


def test_plan_json_envelope() -> None:
    assert plan_json("demo", make_plan()) == {
        "format": "mlpipe.plan/1",
        "pipeline": "demo",
        "steps": [
            {
                "name": "prep",
                "action": "reuse",
                "selected": False,
                "forced": False,
                "fingerprint": "a" * 64,
                "reasons": [f"same fingerprint as run {OLD_RUN_ID}"],
                "reused_from": OLD_RUN_ID,
                "changed_at": None,
            },
            {
                "name": "train",
                "action": "run",
                "selected": True,
                "forced": True,
                "fingerprint": "b" * 64,
                "reasons": ["forced by --from"],
                "reused_from": None,
                "changed_at": None,
            },
            {
                "name": "eval",
                "action": "run",
                "selected": True,
                "forced": False,
                "fingerprint": None,
                "reasons": ["upstream train will run", "param x now used"],
                "reused_from": None,
                "changed_at": {"path": None, "line": 12},
            },
            {
                "name": "fetch",
                "action": "missing",
                "selected": False,
                "forced": False,
                "fingerprint": "c" * 64,
                "reasons": ["no stored result for its current code, params and inputs"],
                "reused_from": None,
                "changed_at": None,
            },
        ],
    }
    assert plan_json("demo", Plan()) == {"format": "mlpipe.plan/1", "pipeline": "demo", "steps": []}


def test_where_says_how_the_code_that_ran_is_known() -> None:
    def run(git: dict[str, object]) -> RunRecord:
        return RunRecord(run_id="r", pipeline="p", pipeline_file="mlpipe.yaml", started_at="t", git=git)

    assert where(run({"in_repo": False})) == "outside a git repository (no commit recorded)"
    assert where(run({"in_repo": True, "commit": None})) == "at an unborn branch"
    assert where(run({"in_repo": True, "commit": "ab" * 20, "dirty": False})) == "at abababababab"


H100 = {"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559, "driver": "550.54.15"}


def gpu_run() -> RunRecord:
    return RunRecord(
        run_id=RUN_ID,
        pipeline="demo",
        pipeline_file="mlpipe.yaml",
        started_at="2026-01-02T03:04:05.006Z",
        status="succeeded",
        git={"in_repo": True, "commit": COMMIT, "dirty": False},
        steps={
            "train": StepRecord(
                status="ran",
                duration_s=2.0,
                reasons=["command changed"],
                gpus=[{"index": "0", **H100}, {"index": "1", **H100}],
            ),
            "mixed": StepRecord(
                status="ran",
                duration_s=1.0,
                gpus=[
                    {"index": "2", **H100},
                    {"index": "3", "name": "Tesla T4", "memory_mib": None, "driver": None},
                ],
            ),
            "cpu": StepRecord(status="ran", duration_s=1.0, reasons=["no stored result for this step yet"]),
        },
    )


def test_the_summary_names_each_step_s_gpus() -> None:
    assert run_summary(gpu_run()).splitlines()[3:] == [
        "train  ran     2.0s           command changed; GPUs 0,1: NVIDIA H100 80GB HBM3 (81559 MiB, driver 550.54.15)",
        "mixed  ran     1.0s           GPUs 2: NVIDIA H100 80GB HBM3 (81559 MiB, driver 550.54.15); 3: Tesla T4 (driver ?)",
        "cpu    ran     1.0s           no stored result for this step yet",
    ]
