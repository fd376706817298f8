"""The planner with a step whose `build:` image `mlpipe plan` did not build: it runs, and says why."""

from __future__ import annotations

from dataclasses import replace

from test_plan import FACTS, UPSTREAM_PREP, UPSTREAM_TRAIN, FakeStore, actions, make, reasons

WHY = "its image must be built from 'img' (mlpipe-build/prep:0123456789ab is not in the container engine)"
PENDING = replace(FACTS, pending_builds={"prep": WHY})


def test_a_step_whose_image_must_be_built_runs_without_a_fingerprint_and_its_readers_wait() -> None:
    store = FakeStore()
    store.record_run("r1")

    p = make(store, facts=PENDING)

    assert actions(p) == {"prep": "run", "train": "run", "report": "run", "notify": "reuse"}
    assert reasons(p) == {
        "prep": [WHY],
        "train": [UPSTREAM_PREP],
        "report": [UPSTREAM_TRAIN],
        "notify": ["same fingerprint as run r1 at c0ffeec0ff"],
    }
    assert p.steps["prep"].fingerprint is None
    assert store.looked_up == [p.steps["notify"].fingerprint.key]  # type: ignore[union-attr]


def test_forcing_says_so_and_an_unselected_step_is_missing_for_that_reason() -> None:
    assert reasons(make(FakeStore(), facts=PENDING, no_reuse=True))["prep"] == ["--no-reuse given"]

    p = make(FakeStore(), facts=PENDING, selected=["train"], needed=["prep", "train"])

    assert actions(p) == {"prep": "missing", "train": "run"}
    assert reasons(p) == {"prep": [WHY], "train": ["upstream prep has no stored result to read"]}
