"""Run records: time-sortable ids, versioned JSON, the history directory and run id prefixes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mlpipe.errors import UsageError
from mlpipe.runs import RunHistory, RunRecord, StepRecord, new_run_id, utc_now

NEW_YEAR_2026 = 1767225600.0


def record(run_id: str, **changes: object) -> RunRecord:
    fields: dict[str, object] = {
        "run_id": run_id,
        "pipeline": "demo",
        "pipeline_file": "mlpipe.yaml",
        "started_at": "2026-01-01T00:00:00.000Z",
        **changes,
    }
    return RunRecord(**fields)  # type: ignore[arg-type]


def test_run_id_is_utc_time_to_the_millisecond_then_64_random_bits() -> None:
    run_id = new_run_id(NEW_YEAR_2026 + 0.123)
    assert re.fullmatch(r"20260101T000000123Z-[0-9a-f]{16}", run_id), run_id
    assert new_run_id(NEW_YEAR_2026 + 86399.999).startswith("20260101T235959999Z-")
    assert new_run_id(NEW_YEAR_2026 + 0.0005).startswith("20260101T000000000Z-")
    assert re.fullmatch(r"\d{8}T\d{9}Z-[0-9a-f]{16}", new_run_id())


def test_run_ids_sort_by_time_and_do_not_collide() -> None:
    times = [NEW_YEAR_2026 + d for d in (0, 0.001, 0.999, 1, 59.5, 3600, 86400, 40 * 86400, 400 * 86400)]
    newest_first = [new_run_id(t) for t in reversed(times)]
    assert sorted(newest_first, reverse=True) == newest_first
    same_time = {new_run_id(NEW_YEAR_2026) for _ in range(1000)}
    assert len(same_time) == 1000


def test_utc_now_is_iso_with_milliseconds_and_z() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", utc_now())


def test_record_json_carries_the_format_tag_and_round_trips() -> None:
    original = record(
        "r1",
        status="succeeded",
        ended_at="2026-01-01T00:01:00.000Z",
        git={"commit": "c" * 40, "dirty": False},
        snapshots={"src": "1" * 40},
        params={"lr": 0.1},
        steps={
            "train": StepRecord(
                status="ran",
                fingerprint="f" * 64,
                parts={"schema": 1},
                reasons=["param lr: 0.2 -> 0.1"],
                outputs={"model": "sha256:" + "a" * 64},
                metrics={"scores": {"acc": 0.9}},
                exit_code=0,
                duration_s=1.5,
            ),
            "eval": StepRecord(status="reused", reused_from={"run_id": "r0", "commit": None}),
        },
        platform="linux-x86_64",
        mlpipe_version="0.1.0",
    )
    data = original.to_json()
    assert data["format"] == "mlpipe.run/1"
    assert set(data) == {
        "format",
        "run_id",
        "pipeline",
        "pipeline_file",
        "started_at",
        "status",
        "ended_at",
        "git",
        "snapshots",
        "params",
        "options",
        "steps",
        "order",
        "platform",
        "mlpipe_version",
        "ci",
    }
    assert set(data["steps"]["train"]) == {
        "status",
        "fingerprint",
        "parts",
        "reasons",
        "reused_from",
        "started_at",
        "ended_at",
        "duration_s",
        "outputs",
        "metrics",
        "exit_code",
        "log",
        "error",
        "nondeterministic",
        "code",
        "tree",
        "image",
        "gpus",
        "changed_at",
    }
    assert RunRecord.from_json(json.loads(json.dumps(data))) == original
    assert original.counts() == {"ran": 1, "reused": 1}


def test_an_unknown_format_is_refused() -> None:
    data = {**record("r1").to_json(), "format": "mlpipe.run/2"}
    with pytest.raises(ValueError) as info:
        RunRecord.from_json(data)
    assert str(info.value) == "unknown run record format 'mlpipe.run/2'"


def test_write_and_load_leave_no_temp_files(tmp_path: Path) -> None:
    history = RunHistory(tmp_path / "runs")
    original = record("20260101T000000000Z-aa")
    path = history.write(original)
    assert path == tmp_path / "runs" / "20260101T000000000Z-aa.json"
    original.status = "failed"
    history.write(original)
    assert history.load("20260101T000000000Z-aa") == original
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["20260101T000000000Z-aa.json"]
    assert path.read_text().endswith("}\n")


IDS = ["20260101T000000000Z-aa", "20260102T000000000Z-bb", "20260102T120000000Z-cc", "20260103T000000000Z-dd"]


@pytest.fixture
def history(tmp_path: Path) -> RunHistory:
    history = RunHistory(tmp_path / "runs")
    for run_id in IDS:
        history.write(record(run_id))
    return history


def test_ids_are_newest_first_and_ignore_other_files(history: RunHistory) -> None:
    (history.directory / ".20260104T000000000Z-ee.json.123.tmp").write_text("{")
    (history.directory / ".hidden.json").write_text("{}")
    (history.directory / "notes.txt").write_text("x")
    assert history.ids() == list(reversed(IDS))
    assert RunHistory(history.directory / "absent").ids() == []


def test_records_skip_unreadable_files(history: RunHistory) -> None:
    (history.directory / "20260104T000000000Z-ee.json").write_text("{not json")
    (history.directory / "20260105T000000000Z-ff.json").write_text("[]")
    (history.directory / "20260106T000000000Z-gg.json").write_text('{"format": "mlpipe.run/0"}')
    newer = {**record("20260107T000000000Z-hh").to_json(), "surprise": 1}
    (history.directory / "20260107T000000000Z-hh.json").write_text(json.dumps(newer))
    (history.directory / "20260108T000000000Z-ii.json").mkdir()
    # A field a newer mlpipe added under the same format is ignored, so that record is still listed.
    assert [r.run_id for r in history.records()] == ["20260107T000000000Z-hh", *reversed(IDS)]


@pytest.mark.parametrize(
    ("prefix", "run_id"),
    [
        ("latest", IDS[-1]),
        ("last", IDS[-1]),
        ("@", IDS[-1]),
        ("20260101", IDS[0]),
        ("20260102T12", IDS[2]),
        (IDS[1], IDS[1]),
    ],
)
def test_resolve_a_unique_prefix(history: RunHistory, prefix: str, run_id: str) -> None:
    assert history.resolve(prefix) == run_id


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("nope", "no run matches 'nope'; `mlpipe runs` lists them"),
        (
            "20260102",
            "run id prefix '20260102' is ambiguous (2 runs: 20260102T120000000Z-cc, 20260102T000000000Z-bb); "
            + "give more characters",
        ),
    ],
)
def test_resolve_says_what_is_wrong(history: RunHistory, prefix: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        history.resolve(prefix)
    assert str(info.value) == message
    assert info.value.exit_code == 2


def test_an_ambiguous_prefix_shows_five_runs(tmp_path: Path) -> None:
    history = RunHistory(tmp_path)
    for i in range(7):
        history.write(record(f"2026010{i}T000000000Z-aa"))
    with pytest.raises(UsageError) as info:
        history.resolve("2026")
    assert str(info.value) == (
        "run id prefix '2026' is ambiguous (7 runs: 20260106T000000000Z-aa, 20260105T000000000Z-aa, "
        "20260104T000000000Z-aa, 20260103T000000000Z-aa, 20260102T000000000Z-aa); give more characters"
    )


@pytest.mark.parametrize("prefix", ["latest", "2026"])
def test_resolve_without_runs_says_there_are_none(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(UsageError) as info:
        RunHistory(tmp_path / "runs").resolve(prefix)
    assert str(info.value) == "no runs recorded yet; `mlpipe ci-run` makes one"


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (["b", "a"], ["b", "a"]),  # the pipeline's order, whatever order the JSON keys come in
        (["a"], ["a", "b"]),  # not every step: ignored, the keys' order stands
        (["b", "a", "c"], ["a", "b"]),
        ([2, "a"], ["a", "b"]),  # not names
        ("ba", ["a", "b"]),
        (None, ["a", "b"]),
    ],
)
def test_steps_come_back_in_the_recorded_order_when_it_names_them_all(order: object, expected: list) -> None:
    data = {
        "format": "mlpipe.run/1",
        "run_id": "r",
        "pipeline": "p",
        "pipeline_file": "mlpipe.yaml",
        "started_at": "2026-01-01T00:00:00.000Z",
        "steps": {"a": {"status": "ran"}, "b": {"status": "ran"}},
        "order": order,
    }
    assert list(RunRecord.from_json(data).steps) == expected


@pytest.mark.parametrize(
    "now",
    [0.0, 1.0005, 1.9995, 1.9999995, 1.0000005, 1765069620.9999996, 1765069620.0004999, 1765069620.123456],
)
def test_utc_now_says_what_datetime_says(now: float) -> None:
    # utc_now reads time, not datetime (not imported at start-up): the same text, rounding included.
    from datetime import UTC, datetime

    expected = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert utc_now(now) == expected
