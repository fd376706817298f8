"""Placing steps in waves and jobs (core/fanout.py): pure, no temp dirs."""

from __future__ import annotations

import json
import random

import pytest

from mlpipe.core.fanout import (
    MAX_JOBS,
    MAX_OUTPUT_BYTES,
    BadFanOut,
    FanOut,
    RunnerMap,
    StepNeeds,
    from_json,
    levels,
    parse_runner_map,
    place,
    single_job,
)
from mlpipe.errors import UsageError

GPU = ("self-hosted", "gpu")


def S(
    name: str, *upstream: str, labels: tuple[str, ...] = (), own: bool = False, runs: bool = True
) -> StepNeeds:
    return StepNeeds(name=name, upstream=upstream, labels=labels, own_job=own, runs=runs)


def shape(waves) -> list[list[tuple[str, ...]]]:
    return [[job.steps for job in wave] for wave in waves]


def test_a_chain_takes_one_wave_per_level_and_leaves_the_rest_empty() -> None:
    waves = place([S("a"), S("b", "a"), S("c", "b")], waves=4, runners=RunnerMap())
    assert shape(waves) == [[("a",)], [("b",)], [("c",)], []]
    assert [job.id for wave in waves for job in wave] == ["w1j1", "w2j1", "w3j1"]
    assert waves[0][0].runs_on == "ubuntu-latest"


def test_steps_of_one_wave_and_runner_kind_share_a_job() -> None:
    steps = [S("prepare"), S("features", "prepare"), S("stats", "prepare"), S("train", "features", "stats")]
    assert shape(place(steps, waves=4, runners=RunnerMap())) == [
        [("prepare",)],
        [("features", "stats")],
        [("train",)],
        [],
    ]


def test_reused_steps_start_no_job_and_their_downstream_moves_up() -> None:
    steps = [S("prepare", runs=False), S("train", "prepare"), S("report", "train")]
    assert shape(place(steps, waves=3, runners=RunnerMap())) == [[("train",)], [("report",)], []]
    assert shape(place([S("a", runs=False), S("b", "a", runs=False)], waves=2, runners=RunnerMap())) == [
        [],
        [],
    ]


def test_order_is_kept_through_a_reused_step() -> None:
    # b waits for r (reused), which waits for a (runs): b still starts after a
    steps = [S("a"), S("r", "a", runs=False), S("b", "r")]
    assert levels(steps) == {"a": 0, "b": 1}


def test_gpu_steps_get_their_own_job_on_the_runner_their_labels_map_to() -> None:
    steps = [S("prepare"), S("train", "prepare", labels=GPU), S("lint", "prepare")]
    runners = parse_runner_map(
        '{"default": "ubuntu-22.04", "GPU, self-hosted": ["self-hosted", "linux", "gpu"]}'
    )
    waves = place(steps, waves=2, runners=runners)
    assert [(job.steps, job.runs_on) for job in waves[1]] == [
        (("train",), ("self-hosted", "linux", "gpu")),
        (("lint",), "ubuntu-22.04"),
    ]
    assert waves[0][0].runs_on == "ubuntu-22.04"
    # unmapped labels are the job's runs-on as written
    assert place(steps, waves=2, runners=RunnerMap())[1][0].entry()["runs-on"] == ["self-hosted", "gpu"]


def test_sweep_instances_and_fan_out_steps_get_a_job_each() -> None:
    steps = [
        S("prepare"),
        S("train[lr=0.1]", "prepare", own=True),
        S("train[lr=0.01]", "prepare", own=True),
        S("eval", "prepare", own=True),
        S("docs", "prepare"),
        S("lint", "prepare"),
        S("compare", "train[lr=0.1]", "train[lr=0.01]"),
    ]
    waves = place(steps, waves=3, runners=RunnerMap())
    assert shape(waves) == [
        [("prepare",)],
        [("train[lr=0.1]",), ("train[lr=0.01]",), ("eval",), ("docs", "lint")],
        [("compare",)],
    ]
    assert waves[1][0].name == "train[lr=0.1] (ubuntu-latest)"


def test_a_pipeline_deeper_than_the_waves_runs_its_last_levels_in_one_job_in_order() -> None:
    chain = [S("s0")] + [S(f"s{i}", f"s{i - 1}") for i in range(1, 10)]
    other = [S("x0"), S("x1", "x0"), S("x2", "x1"), S("x3", "x2"), S("x4", "x3")]
    waves = place(chain + other, waves=4, runners=RunnerMap())
    assert shape(waves) == [
        [("s0", "x0")],
        [("s1", "x1")],
        [("s2", "x2")],
        [(*(f"s{i}" for i in range(3, 10)), "x3", "x4")],  # one wave, one runner kind: one job
    ]
    # a branch on another runner kind stays apart, and runs its remaining levels in order in its own job
    gpu = [S("x0", labels=GPU)] + [S(f"x{i}", f"x{i - 1}", labels=GPU) for i in range(1, 5)]
    waves = place(chain + gpu, waves=4, runners=RunnerMap())
    assert shape(waves)[3] == [tuple(f"s{i}" for i in range(3, 10)), ("x3", "x4")]


def test_the_last_waves_chain_goes_to_the_runner_its_labelled_steps_need() -> None:
    steps = [S("a"), S("b", "a", labels=GPU), S("c", "b"), S("d", "c", labels=GPU)]
    waves = place(steps, waves=2, runners=RunnerMap())
    assert [(job.steps, job.runs_on) for job in waves[1]] == [(("b", "c", "d"), GPU)]


def test_a_last_wave_chain_needing_two_runner_kinds_is_refused_with_the_fix() -> None:
    steps = [S("a"), S("b", "a", labels=GPU), S("c", "b", labels=("arm64",))]
    with pytest.raises(UsageError) as info:
        place(steps, waves=2, runners=RunnerMap())
    assert str(info.value) == (
        "the pipeline is deeper than the waves, so its last levels run in one job each chain, but this chain "
        "needs runners of different kinds: [self-hosted, gpu] (b); [arm64] (c); give more waves (--waves, and as "
        "many wave jobs in the workflow), or map these labels to one runner with --runner-labels"
    )
    assert shape(place(steps, waves=3, runners=RunnerMap())) == [[("a",)], [("b",)], [("c",)]]


def test_a_sweep_over_256_instances_packs_into_256_jobs_each_instance_once() -> None:
    steps = (
        [S("prepare")]
        + [S(f"train[i={i}]", "prepare", own=True) for i in range(600)]
        + [S("lint", "prepare")]
    )
    waves = place(steps, waves=2, runners=RunnerMap())
    assert len(waves[1]) == MAX_JOBS
    placed = [name for job in waves[1] for name in job.steps]
    assert sorted(placed) == sorted(s.name for s in steps[1:])
    assert len(set(placed)) == len(placed)
    assert len({job.id for job in waves[1]}) == MAX_JOBS
    # 601 steps of one kind round robin in 256 jobs: 2 or 3 each
    assert sorted({len(job.steps) for job in waves[1]}) == [2, 3]


def test_more_runner_kinds_in_a_wave_than_jobs_allowed_is_refused() -> None:
    steps = [S(f"s{i}", labels=(f"l{i}",)) for i in range(MAX_JOBS + 1)]
    with pytest.raises(
        UsageError, match=f"wave 1 needs more than {MAX_JOBS} jobs on {MAX_JOBS + 1} different"
    ):
        place(steps, waves=1, runners=RunnerMap())


def test_a_wave_matrix_over_githubs_output_limit_is_refused() -> None:
    long = "x" * 90
    steps = [S(f"{long}{i:05d}", own=True) for i in range(12000)]
    with pytest.raises(UsageError) as info:
        place(steps, waves=1, runners=RunnerMap())
    assert f"over GitHub's {MAX_OUTPUT_BYTES} bytes per job output" in str(info.value)


def test_a_job_whose_step_list_is_too_long_for_a_command_line_is_refused() -> None:
    steps = [S("a")] + [S(f"step_with_a_long_name_{i:05d}_{'y' * 60}", "a") for i in range(1500)]
    with pytest.raises(
        UsageError, match=r"job w2j1 of wave 2 runs 1500 steps .* too long for its command line"
    ):
        place(steps, waves=2, runners=RunnerMap())


@pytest.mark.parametrize("seed", range(40))
def test_random_dags_place_every_running_step_once_after_its_upstream(seed: int) -> None:
    rng = random.Random(seed)
    steps: list[StepNeeds] = []
    for i in range(rng.randint(1, 60)):
        ups = tuple(rng.sample([s.name for s in steps], k=min(len(steps), rng.randint(0, 3))))
        labels = rng.choice([(), (), GPU, ("arm64",)]) if seed % 2 else rng.choice([(), GPU])
        steps.append(S(f"s{i}", *ups, labels=labels, own=rng.random() < 0.2, runs=rng.random() < 0.8))
    waves_n = rng.randint(1, 6)
    try:
        waves = place(steps, waves=waves_n, runners=RunnerMap())
    except UsageError as error:  # only a last-wave chain over two fixed kinds may be refused
        assert "needs runners of different kinds" in str(error)
        return
    where = {name: (job.wave, job) for wave in waves for job in wave for name in job.steps}
    assert sorted(where) == sorted(s.name for s in steps if s.runs)
    from mlpipe.core.fanout import running_upstream

    for name, ups in running_upstream(steps).items():
        for up in ups:
            wave, job = where[name]
            up_wave, up_job = where[up]
            # an upstream step runs in an earlier wave, or earlier in the same job of the last wave
            assert up_wave < wave or (
                wave == waves_n and up_job is job and job.steps.index(up) < job.steps.index(name)
            )
    assert all(len(wave) <= MAX_JOBS for wave in waves)


def test_runner_labels_are_checked_with_the_fix() -> None:
    assert parse_runner_map(None) == RunnerMap()
    assert parse_runner_map('{"gpu": "big"}').runs_on(["GPU"]) == "big"
    assert parse_runner_map('{"gpu": "big"}').runs_on(["gpu", "x"]) == ("gpu", "x")
    cases = {
        "[1]": "--runner-labels must be a JSON object, such as",
        "{": "--runner-labels is not JSON (",
        '{"gpu": []}': "--runner-labels: 'gpu' maps to []; expected a runner label or a non-empty list of labels",
        '{"gpu": "a,b"}': "--runner-labels: 'gpu' maps to \"a,b\"; expected a runner label",
        '{"default": 3}': "--runner-labels: 'default' maps to 3; expected",
        '{"a,,b": "x"}': "--runner-labels: key 'a,,b' is not a list of runner labels",
    }
    for text, message in cases.items():
        with pytest.raises(UsageError) as info:
            parse_runner_map(text)
        assert str(info.value).startswith(message), text


def test_single_mode_runs_every_running_step_in_one_job_and_says_when_runners_differ() -> None:
    steps = [S("a", runs=False), S("b", "a"), S("c", "b", labels=GPU)]
    waves, note = single_job(steps, waves=4, runners=RunnerMap())
    assert shape(waves) == [[("b", "c")], [], [], []]
    assert waves[0][0].runs_on == GPU and note == ""
    waves, note = single_job([*steps, S("d", labels=("arm64",))], waves=2, runners=RunnerMap())
    assert waves[0][0].runs_on == "ubuntu-latest"
    assert note == (
        "steps ask for 2 runner kinds ([self-hosted, gpu], [arm64]) and one job runs on ubuntu-latest: a step "
        "whose labels that runner lacks is skipped"
    )
    assert single_job([S("a", runs=False)], waves=2, runners=RunnerMap())[0] == ((), ())


def _plan(waves, **extra) -> FanOut:
    return FanOut(
        run_id="20260101T000000000Z-0123456789abcdef",
        pipeline="demo",
        mode="fan-out",
        waves=waves,
        order=("a", "b", "c"),
        upstream={"a": (), "b": ("a",), "c": ("b",)},
        record={"steps": {"a": {"status": "pending"}}},
        **extra,
    )


def test_outputs_are_what_the_workflow_reads() -> None:
    plan = _plan(
        place([S("a"), S("b", "a"), S("c", "b", labels=GPU)], waves=4, runners=RunnerMap()), check_run_id=7
    )
    out = plan.outputs()
    assert out["run-id"] == plan.run_id and out["mode"] == "fan-out" and out["check-run-id"] == "7"
    assert [out[f"wave-{k}-jobs"] for k in range(1, 5)] == ["1", "1", "1", "0"]
    assert json.loads(out["wave-3"]) == {
        "include": [
            {"job": "w3j1", "name": "c ([self-hosted, gpu])", "runs-on": ["self-hosted", "gpu"], "steps": "c"}
        ]
    }
    assert json.loads(out["wave-4"]) == {"include": []}
    assert all("\n" not in value for value in out.values())


def test_a_plan_reads_back_as_written_and_a_tampered_one_is_refused() -> None:
    plan = _plan(place([S("a"), S("b", "a"), S("c", "b")], waves=2, runners=RunnerMap()), commit="a" * 40)
    assert from_json(json.loads(json.dumps(plan.to_json()))) == plan
    assert plan.job_of("c").id == "w2j1" and plan.job("w1j1").steps == ("a",)
    good = plan.to_json()
    bad = [
        {**good, "format": "x"},
        {**good, "waves": [[{**good["waves"][0][0], "job": "../x"}]]},
        {**good, "waves": [[{**good["waves"][0][0], "steps": ["zz"]}]]},
        {**good, "mode": "many"},
        {**good, "check_run_id": -1},
        {**good, "commit": "../etc"},
        {**good, "record": {"steps": {"zz": {}}}},
        {k: v for k, v in good.items() if k != "order"},
        [],
    ]
    for data in bad:
        with pytest.raises(BadFanOut):
            from_json(data)


def test_waves_over_githubs_outputs_per_workflow_run_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlpipe.core import fanout

    chain = [S("a"), S("b", "a"), S("c", "b"), S("d", "c")]
    waves = place(chain, waves=4, runners=RunnerMap())
    sizes = [
        len(json.dumps({"include": [job.entry() for job in wave]}, separators=(",", ":"))) for wave in waves
    ]
    monkeypatch.setattr(fanout, "MAX_TOTAL_OUTPUT_BYTES", sum(sizes) - 1)
    with pytest.raises(UsageError, match=f"the waves' matrices take {sum(sizes)} bytes, over GitHub's"):
        place(chain, waves=4, runners=RunnerMap())
    monkeypatch.setattr(fanout, "MAX_TOTAL_OUTPUT_BYTES", sum(sizes))
    assert place(chain, waves=4, runners=RunnerMap()) == waves
