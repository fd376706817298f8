"""Annotations from a run: pure, from the record, the steps' files and their logs."""

from __future__ import annotations

from mlpipe.github.annotations import (
    Annotation,
    Layout,
    StepSource,
    batches,
    change_location,
    collect,
    failure_location,
    resolve,
)
from mlpipe.runs import RunRecord, StepRecord

LAYOUT = Layout(
    repo_root="/home/runner/work/repo/repo",
    workspace="ml",
    pipeline_file="ml/mlpipe.yaml",
    steps={
        "train": StepSource(
            code="ml/steps/train",
            files=frozenset({"ml/steps/train/train.py", "ml/steps/train/lib/model.py"}),
            line=12,
        ),
        "lint": StepSource(code="ml/src", files=frozenset({"ml/src/a.c"}), line=20),
    },
)
TRACEBACK = """Traceback (most recent call last):
  File "steps/train/train.py", line 40, in <module>
    main()
  File "steps/train/lib/model.py", line 7, in fit
    np.linalg.solve(a, b)
  File "/usr/lib/python3/site-packages/numpy/linalg.py", line 400, in solve
    raise LinAlgError
numpy.linalg.LinAlgError: Singular matrix
"""


def test_the_innermost_frame_in_the_steps_own_files() -> None:
    assert failure_location(TRACEBACK, LAYOUT, LAYOUT.steps["train"]) == ("ml/steps/train/lib/model.py", 7)


def test_frames_in_the_materialized_snapshot_map_back_to_the_repository() -> None:
    log = (
        '  File "/home/runner/work/repo/repo/ml/.mlpipe/snapshots/trees/'
        + "ab" * 20
        + '/train.py", line 3, in x\n'
    )
    assert failure_location(log, LAYOUT, LAYOUT.steps["train"]) == ("ml/steps/train/train.py", 3)


def test_compiler_style_errors_relative_to_the_step_or_the_workspace() -> None:
    source = LAYOUT.steps["lint"]
    assert failure_location("/usr/include/stdio.h:3: note\na.c:14:2: error: x\n", LAYOUT, source) == (
        "ml/src/a.c",
        14,
    )
    assert failure_location("src/a.c:9: error: y\n", LAYOUT, source) == ("ml/src/a.c", 9)
    assert failure_location("nothing here\nb.c:1: error\n", LAYOUT, source) is None


def test_resolve_only_names_snapshot_files() -> None:
    train = LAYOUT.steps["train"]
    assert (
        resolve("/home/runner/work/repo/repo/ml/steps/train/train.py", LAYOUT, train)
        == "ml/steps/train/train.py"
    )
    assert resolve("./train.py", LAYOUT, train) == "ml/steps/train/train.py"
    assert resolve("../../etc/passwd", LAYOUT, train) is None


def record(**git: object) -> RunRecord:
    return RunRecord(
        run_id="r1",
        pipeline="p",
        pipeline_file="mlpipe.yaml",
        started_at="2026-01-01T00:00:00Z",
        git={"in_repo": True, "commit": "c" * 40, **git},
        steps={
            "train": StepRecord(status="failed", error="exited with code 1"),
            "lint": StepRecord(status="ran", reasons=["changed: src/a.c"], nondeterministic=True),
            "other": StepRecord(status="reused"),
        },
    )


def test_collect_orders_failures_warnings_notices() -> None:
    found = collect(
        record(dirty=True, dirty_paths=["x.py"], snapshot_ref="refs/mlpipe/runs/r1"),
        LAYOUT,
        {"train": TRACEBACK},
    )
    assert [(a.level, a.path, a.line, a.title) for a in found] == [
        ("failure", "ml/steps/train/lib/model.py", 7, "mlpipe: step train failed"),
        ("warning", "ml/mlpipe.yaml", 1, "mlpipe: run on uncommitted changes"),
        ("warning", "ml/mlpipe.yaml", 20, "mlpipe: step lint is nondeterministic"),
        ("notice", "ml/mlpipe.yaml", 20, "mlpipe: step lint ran"),
    ]
    assert found[0].message.startswith("exited with code 1\n\nTraceback (most recent call last):")
    assert found[1].message == "1 uncommitted path(s): x.py. The code that ran is at refs/mlpipe/runs/r1."
    assert found[3].message == "Why: changed: src/a.c"


def test_a_failure_without_a_location_is_at_the_steps_line() -> None:
    found = collect(record(), LAYOUT, {})
    assert (found[0].path, found[0].line, found[0].message) == ("ml/mlpipe.yaml", 12, "exited with code 1")


def test_a_rerun_notice_sits_where_the_change_is() -> None:
    ran = RunRecord(
        run_id="r1",
        pipeline="demo",
        pipeline_file="mlpipe.yaml",
        started_at="2026-01-01T00:00:00Z",
        steps={
            "train": StepRecord(
                status="ran",
                reasons=["code changed: ml/src/a.c modified"],
                changed_at={"path": "ml/src/a.c", "line": 9},
            )
        },
    )
    lint = LAYOUT.steps["lint"]
    notice = collect(ran, Layout(**{**vars(LAYOUT), "steps": {"train": lint}}), {})[0]
    assert (notice.level, notice.path, notice.line) == ("notice", "ml/src/a.c", 9)
    assert notice.message == "Why: code changed: ml/src/a.c modified"
    # A param or input: its line in the pipeline file.
    assert change_location({"path": None, "line": 3}, LAYOUT, lint) == ("ml/mlpipe.yaml", 3)


def test_a_change_location_outside_the_steps_files_is_not_trusted() -> None:
    lint = LAYOUT.steps["lint"]
    for where in (
        {"path": "ml/src/../../etc/passwd", "line": 1},
        {"path": "/etc/passwd", "line": 1},
        {"path": "ml/src/b.c", "line": 1},  # not one of its files (a removed file is not either)
        {"path": "ml/./src/a.c", "line": 1},
        {"path": "ml/src/a.c", "line": 0},
        {"path": "ml/src/a.c", "line": "3"},
        {"path": "ml/src/a.c", "line": True},
        {"path": 7, "line": 3},
        {"line": 3, "path": ["ml/src/a.c"]},
        None,
    ):
        assert change_location(where, LAYOUT, lint) is None, where
    assert change_location({"path": "ml/src/a.c", "line": 2}, LAYOUT, None) is None


def test_api_shape_and_workflow_command_escaping() -> None:
    a = Annotation(path="a,b:c.py", line=3, level="failure", title="t: 1", message="50%\nline")
    assert a.to_api() == {
        "path": "a,b:c.py",
        "start_line": 3,
        "end_line": 3,
        "annotation_level": "failure",
        "title": "t: 1",
        "message": "50%\nline",
    }
    assert a.to_command() == "::error file=a%2Cb%3Ac.py,line=3,title=t%3A 1::50%25%0Aline"
    assert (
        Annotation(path="x", line=1, level="notice", title="n", message="m")
        .to_command()
        .startswith("::notice ")
    )


def test_batches_of_50() -> None:
    items = [Annotation(path="x", line=i, level="notice", title="t", message="m") for i in range(1, 121)]
    assert [len(b) for b in batches(items)] == [50, 50, 20]
    assert batches([]) == [[]]
