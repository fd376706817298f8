"""A step's nearest earlier fingerprint: the base commit's run first, then the step's latest stored result, then
the newest recorded run that has it (here, then in the registry); registry records pass their checks first."""

from __future__ import annotations

from typing import Any

from mlpipe.core.results import StepResult
from mlpipe.errors import CacheError
from mlpipe.run.earlier import EarlierFinder
from mlpipe.runs import RunRecord, StepRecord

RUN = "20260101T000000000Z-{}"
COMMIT = "c0ffee" * 6 + "abcd"


def run(n: int, parts: Any, *, pipeline: str = "demo", status: str = "succeeded", **git: Any) -> RunRecord:
    return RunRecord(
        run_id=RUN.format(f"{n:016x}"),
        pipeline=pipeline,
        pipeline_file="mlpipe.yaml",
        started_at="2026-01-01T00:00:00Z",
        status=status,  # type: ignore[arg-type]
        git={"commit": COMMIT, **git},
        steps={"train": StepRecord(status="ran", parts=parts)},
    )


class Latest:
    """The one verb of a ResultStore the finder uses: the step's latest stored result."""

    def __init__(self, result: StepResult | None = None) -> None:
        self.result = result
        self.asked: list[tuple[str, str]] = []

    def latest(self, pipeline: str, step: str) -> StepResult | None:
        self.asked.append((pipeline, step))
        return self.result


def test_the_base_run_comes_first_then_the_latest_result_then_history_then_the_registry() -> None:
    latest = StepResult(
        fingerprint="0" * 64, parts={"code": "L"}, outputs={}, provenance={"run_id": RUN.format("1" * 16)}
    )
    fetched: list[int] = []

    def remote() -> list[dict[str, Any]]:
        fetched.append(1)
        return [run(9, {"code": "R"}).to_json()]

    base = run(1, {"code": "B"})
    finder = EarlierFinder("demo", Latest(latest), base=base, remote=remote)  # type: ignore[arg-type]
    found = finder("train")
    assert (found.parts, found.source, found.run_id, found.commit) == (
        {"code": "B"},
        "base",
        base.run_id,
        COMMIT,
    )  # type: ignore[union-attr]

    assert EarlierFinder("demo", Latest(latest), remote=remote)("train").parts == {"code": "L"}  # type: ignore[arg-type,union-attr]

    history = [
        run(3, {"code": "H"}, status="running"),
        run(2, {"code": "H2"}, pipeline="other"),
        run(1, {"code": "H3"}),
    ]
    found = EarlierFinder("demo", Latest(), history=lambda: history, remote=remote)("train")  # type: ignore[arg-type]
    assert (found.parts, found.source) == ({"code": "H3"}, "run")  # type: ignore[union-attr]
    assert fetched == []  # the registry is asked only when nothing here has the step

    finder = EarlierFinder("demo", Latest(), remote=remote)  # type: ignore[arg-type]
    assert finder("train").parts == {"code": "R"}  # type: ignore[union-attr]
    assert finder("train") is finder("train") and finder("other") is None
    assert fetched == [1]  # once per command


def test_a_registry_record_that_fails_its_checks_is_passed_over() -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    hostile = [
        {"format": "mlpipe.run/1", "run_id": "r", "pipeline": "demo", "steps": "no"},
        run(5, {"code": deep}).to_json(),  # nested too deep
        {**run(4, {"code": "ok"}).to_json(), "run_id": "20260101T000000000Z-\x1b[2Jaaaaaaaaaa"},
    ]
    found = EarlierFinder("demo", Latest(), remote=lambda: hostile)("train")  # type: ignore[arg-type]
    assert found is not None and found.parts == {"code": "ok"}
    assert found.run_id == ""  # not a run id: not printed


def test_an_unreachable_registry_leaves_no_earlier_fingerprint() -> None:
    def remote() -> list[dict[str, Any]]:
        raise CacheError("registry 127.0.0.1:1 refused the connection")

    assert EarlierFinder("demo", Latest(), remote=remote)("train") is None  # type: ignore[arg-type]
