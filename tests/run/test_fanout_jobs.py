"""A pipeline spread over jobs that meet in the real registry (issue 15): the plan job's outputs, each wave job in
a fresh clone with nothing local, parts pushed and merged by the report, a missing upstream, a failed step's
downstream refused, a killed job rerun, the fork PR's fallback to one job, and jobs meeting in a shared store."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from fanout_testing import STEP_LOG, Workflow, kill_runner, pipeline, registry_tags, step, wait_for

DIAMOND = pipeline(
    "diamond",
    step("prepare")
    + step("features", inputs={"d": "prepare"})
    + step("stats", inputs={"d": "prepare"})
    + step("train", inputs={"f": "features", "s": "stats"}, extra="    runs-on: [gpu]\n")
    + step("report", inputs={"m": "train"}),
)


@pytest.fixture
def cache(registry) -> str:
    return f"oci://{registry.host}/t/{uuid.uuid4().hex[:12]}"


def statuses(record: dict) -> dict[str, str]:
    return {name: s["status"] for name, s in record["steps"].items()}


def test_jobs_meet_in_the_registry_each_step_runs_once_and_the_report_merges_every_part(
    project_factory, tmp_path: Path, cache: str, registry
) -> None:
    origin = project_factory({"mlpipe.yaml": DIAMOND})
    flow = Workflow(origin, tmp_path, cache, extra_env={"MLPIPE_RUNNER_LABELS": "gpu"})
    flow.plan("--waves", "3", "--runner-labels", '{"gpu": ["self-hosted", "gpu"]}').assert_success()
    assert flow.outputs["mode"] == "fan-out"
    assert [flow.outputs[f"wave-{k}-jobs"] for k in (1, 2, 3)] == ["1", "1", "1"]
    assert [(e["job"], e["steps"], e["runs-on"]) for k in (1, 2, 3) for e in flow.wave(k)] == [
        ("w1j1", "prepare", "ubuntu-latest"),
        ("w2j1", "features,stats", "ubuntu-latest"),
        # deeper than 3 waves: train (gpu) and report (waits for train) run in order in the last wave's one job
        ("w3j1", "train,report", ["self-hosted", "gpu"]),
    ]
    jobs = flow.all_waves()
    for outcome in jobs.values():
        outcome.assert_success()
    assert sorted(flow.ran()) == sorted(["prepare", "features", "stats", "train", "report"])  # each once
    # a wave-2 job found prepare's result in the registry: reused, not run
    assert "prepare: reused" in jobs["w2j1"].output
    report = flow.report("--json").assert_success()
    record = report.json()
    assert record["run_id"] == flow.run_id and record["status"] == "succeeded"
    assert statuses(record) == dict.fromkeys(["prepare", "features", "stats", "train", "report"], "ran")
    assert record["options"]["fan_out"] == {"jobs": 3, "waves": 3, "mode": "fan-out"}
    assert flow.report_outputs["status"] == "succeeded" and flow.report_outputs["steps-ran"] == "5"
    repo = cache.split("/", 3)[3]
    tags = registry_tags(registry.host, repo)
    run = flow.run_id
    assert {
        f"fanout.{run}.plan",
        f"fanout.{run}.part.w1j1",
        f"fanout.{run}.part.w2j1",
        f"fanout.{run}.part.w3j1",
    } <= set(tags)
    assert (
        f"run.{origin.git('rev-parse', 'HEAD').strip()}.{run}" in tags
    )  # the merged record, where runs are found


def test_the_waves_key_fits_the_workflow_and_an_unchanged_pipeline_starts_no_job(
    project_factory, tmp_path: Path, cache: str
) -> None:
    origin = project_factory({"mlpipe.yaml": DIAMOND.replace("    runs-on: [gpu]\n", "")})
    flow = Workflow(origin, tmp_path, cache)
    flow.plan().assert_success()
    assert [flow.outputs[f"wave-{k}-jobs"] for k in (1, 2, 3, 4)] == ["1", "1", "1", "1"]
    for outcome in flow.all_waves().values():
        outcome.assert_success()
    flow.report().assert_success()
    again = Workflow(origin, tmp_path / "again", cache)
    again.plan().assert_success()
    assert [again.outputs[f"wave-{k}-jobs"] for k in (1, 2, 3, 4)] == ["0", "0", "0", "0"]
    assert json.loads(again.outputs["wave-1"]) == {"include": []}
    report = again.report("--json").assert_success().json()
    assert set(statuses(report).values()) == {"reused"}
    assert again.ran() == []


def test_a_job_whose_upstream_job_never_ran_fails_at_once_naming_the_step_and_the_job(
    project_factory, tmp_path: Path, cache: str
) -> None:
    origin = project_factory({"mlpipe.yaml": pipeline("m", step("a") + step("b", inputs={"x": "a"}))})
    flow = Workflow(origin, tmp_path, cache)
    flow.plan().assert_success()
    outcome = flow.job(flow.wave(2)[0])  # wave 1 never ran: no hang, a clear error
    assert outcome.code == 1
    assert (
        "mlpipe: b: refused: upstream a has no stored result: job w1j1 (a (ubuntu-latest)), which should have made "
        "it, reported nothing: it did not run, failed before mlpipe ran, or its runner died; re-run that job\n"
    ) in outcome.stderr
    assert (
        f"error: job w2j1 of run {flow.run_id} runs none of its steps: every one is refused (above)\n"
        in outcome.stderr
    )
    assert flow.ran() == []
    report = flow.report("--json")
    assert report.code == 1
    record = report.json()
    assert record["steps"]["a"] == {
        **record["steps"]["a"],
        "status": "skipped",
        "error": "never ran: job w1j1 (a (ubuntu-latest)) reported nothing (it did not run, failed before mlpipe "
        "ran, or its runner died)",
    }
    assert record["steps"]["b"]["status"] == "skipped"
    assert record["steps"]["b"]["error"].startswith("refused: upstream a has no stored result")
    assert "mlpipe: never ran: a\n" in report.stderr


def test_a_failed_step_stops_only_its_downstream_in_later_waves(
    project_factory, tmp_path: Path, cache: str
) -> None:
    steps = (
        step("bad", "echo broken >&2 && exit 3")
        + step("good")
        + step("after_bad", inputs={"x": "bad"})
        + step("after_good", inputs={"x": "good"})
        + step("last", inputs={"x": "after_good"})
    )
    origin = project_factory({"mlpipe.yaml": pipeline("f", steps)})
    flow = Workflow(origin, tmp_path, cache)
    flow.plan().assert_success()
    assert flow.wave(2)[0]["steps"] == "after_bad,after_good"
    jobs = flow.all_waves()
    assert jobs["w1j1"].code == 1  # bad failed, good ran
    wave2 = jobs["w2j1"]
    assert wave2.code == 1
    assert (
        "mlpipe: after_bad: refused: upstream bad did not succeed: it failed in job w1j1: exited with code 3\n"
        in wave2.stderr
    )
    jobs["w3j1"].assert_success()
    assert sorted(flow.ran()) == ["after_good", "bad", "good", "last"]
    record = flow.report("--json").json()
    assert statuses(record) == {
        "bad": "failed",
        "good": "ran",
        "after_bad": "skipped",
        "after_good": "ran",
        "last": "ran",
    }
    assert record["status"] == "failed"


def test_rerunning_a_job_whose_runner_died_reuses_what_reached_the_registry(
    project_factory, tmp_path: Path, cache: str, registry
) -> None:
    flag = tmp_path / "second-attempt"
    slow = f'if [ -e "{flag}" ]; then true; else touch "{flag}.started" && sleep 120; fi'
    origin = project_factory(
        {
            "mlpipe.yaml": pipeline(
                "k", step("quick") + step("slow", slow) + step("end", inputs={"a": "quick", "b": "slow"})
            )
        }
    )
    flow = Workflow(origin, tmp_path, cache)
    flow.plan().assert_success()
    entry = flow.wave(1)[0]
    assert entry["steps"] == "quick,slow"
    repo = cache.split("/", 3)[3]
    job = flow.start_job(entry)
    try:
        wait_for(lambda: Path(f"{flag}.started").exists(), "the slow step to start")
        quick_done = lambda: [t for t in registry_tags(registry.host, repo) if t.startswith("result-")]
        wait_for(quick_done, "quick's result in the registry")
    finally:
        kill_runner(job)
    flag.touch()
    rerun = flow.job(entry)  # "re-run failed jobs": a fresh runner
    rerun.assert_success()
    assert "quick: reused" in rerun.output
    flow.job(flow.wave(2)[0]).assert_success()
    record = flow.report("--json").assert_success().json()
    # the rerun's part says quick was reused, from this very run's first attempt
    assert statuses(record) == {"quick": "reused", "slow": "ran", "end": "ran"}
    assert record["steps"]["quick"]["reused_from"]["run_id"] == flow.run_id
    ran = flow.ran()
    assert (ran.count("quick"), ran.count("slow"), ran.count("end")) == (1, 2, 1)  # quick's result was reused


def test_a_report_of_a_cancelled_run_names_the_steps_that_never_ran(
    project_factory, tmp_path: Path, cache: str
) -> None:
    origin = project_factory({"mlpipe.yaml": pipeline("c", step("a") + step("b", inputs={"x": "a"}))})
    flow = Workflow(origin, tmp_path, cache)
    flow.plan().assert_success()
    flow.job(flow.wave(1)[0]).assert_success()
    report = flow.report("--cancelled", "--json")
    assert report.code == 130
    record = report.json()
    assert record["status"] == "cancelled"
    assert statuses(record) == {"a": "ran", "b": "cancelled"}
    assert record["steps"]["b"]["error"] == (
        "never ran: job w2j1 (b (ubuntu-latest)) reported nothing (the workflow was cancelled)"
    )


def test_a_fork_pr_falls_back_to_one_job_that_runs_everything(
    project_factory, tmp_path: Path, cache: str, registry
) -> None:
    origin = project_factory({"mlpipe.yaml": DIAMOND.replace("    runs-on: [gpu]\n", "")})
    flow = Workflow(origin, tmp_path, cache, fork=True)
    flow.plan().assert_success()
    assert flow.outputs["mode"] == "single"
    assert [flow.outputs[f"wave-{k}-jobs"] for k in (1, 2, 3, 4)] == ["1", "0", "0", "0"]
    assert flow.wave(1)[0]["steps"] == "prepare,features,stats,train,report"
    assert (
        "> One job runs the whole pipeline: the cache is read-only (a pull request from a fork is untrusted: "
        "read-only), so jobs on other runners could not share results." in flow.summaries["plan"]
    )
    before = registry.repositories()
    job = flow.job(flow.wave(1)[0])
    job.assert_success()
    assert sorted(flow.ran()) == sorted(["prepare", "features", "stats", "train", "report"])
    assert f"mlpipe: fan-out run {flow.run_id} is one job: the cache is read-only" in job.stderr
    report = flow.report().assert_success()
    assert "ran as one job" in report.stdout
    assert registry.repositories() == before  # a fork writes nothing


def test_cache_mode_read_and_no_registry_in_actions_are_one_job(
    project_factory, tmp_path: Path, cache: str
) -> None:
    origin = project_factory({"mlpipe.yaml": pipeline("r", step("a") + step("b", inputs={"x": "a"}))})
    flow = Workflow(origin, tmp_path, cache)
    flow.plan("--cache-mode", "read").assert_success()
    assert flow.outputs["mode"] == "single" and flow.wave(1)[0]["steps"] == "a,b"
    flow = Workflow(origin, tmp_path / "local", str(tmp_path / "store"))
    flow.plan().assert_success()
    assert flow.outputs["mode"] == "single"
    assert "no registry (--cache oci://HOST/REPO)" in flow.summaries["plan"]


def test_outside_actions_jobs_in_clones_meet_in_a_shared_local_store(project_factory, tmp_path: Path) -> None:
    origin = project_factory({"mlpipe.yaml": pipeline("l", step("a") + step("b", inputs={"x": "a"}))})
    store = str(tmp_path / "shared-store")
    log = tmp_path / "log"
    env = {STEP_LOG: str(log), "GITHUB_ACTIONS": "", "MLPIPE_CACHE": store}
    plan = origin.run("plan", "--github-matrix", "--json", env=env).assert_success().json()
    assert plan["mode"] == "fan-out" and plan["outputs"]["wave-2-jobs"] == "1"
    flow = Workflow(origin, tmp_path, store)
    for wave in plan["waves"]:
        for job in wave:
            clone = flow.clone(job["job"])
            args = (
                "ci-run",
                "--steps",
                ",".join(job["steps"]),
                "--fan-out-run",
                plan["run_id"],
                "--job",
                job["job"],
            )
            clone.run(*args, env=env).assert_success()
    record = (
        flow.clone("r")
        .run("report", "--fan-out-run", plan["run_id"], "--json", env=env)
        .assert_success()
        .json()
    )
    assert statuses(record) == {"a": "ran", "b": "ran"}
    assert log.read_text().split() == ["a", "b"]


def test_bad_ids_and_a_wrong_job_are_usage_errors(project_factory, tmp_path: Path, cache: str) -> None:
    origin = project_factory({"mlpipe.yaml": pipeline("u", step("a") + step("b", inputs={"x": "a"}))})
    flow = Workflow(origin, tmp_path, cache)
    flow.plan().assert_success()
    env = flow.env("x")
    bad = origin.run("ci-run", "--fan-out-run", "../../etc", "--job", "w1j1", env=env)
    assert bad.code == 2 and "error: --fan-out-run '../../etc': expected a run id such as" in bad.stderr
    bad = origin.run("ci-run", "--fan-out-run", flow.run_id, "--job", "w9j9", env=env)
    assert bad.stderr.endswith(f"error: run {flow.run_id} has no job 'w9j9' (its jobs: w1j1, w2j1)\n")
    bad = origin.run("ci-run", "--fan-out-run", flow.run_id, "--job", "w1j1", "--steps", "b", env=env)
    assert "error: --steps b are not the steps of job w1j1 (a);" in bad.stderr
    bad = origin.run("ci-run", "--job", "w1j1", env=env)
    assert (
        bad.code == 2
        and "error: --job names a job of a fan-out run: give --fan-out-run RUN_ID too" in bad.stderr
    )
    other = "20260101T000000000Z-0123456789abcdef"
    bad = origin.run("report", "--fan-out-run", other, env=env)
    assert f"error: no fan-out plan of run {other} in " in bad.stderr


SWEEP = """\
name: sweep
params:
  C: 1.0
steps:
  prepare:
    run: echo prepare >> "$FANOUT_STEP_LOG" && echo rows > ${{ outputs.o }}
    outputs: {o: {type: file}}
  train:
    matrix:
      lr: [0.1, 0.01]
      C: [1, 10]
    run: echo "train-${{ matrix.lr }}-${{ matrix.C }}" >> "$FANOUT_STEP_LOG" && echo ${{ matrix.lr }} > ${{ outputs.m }}
    inputs: {d: "${{ steps.prepare.outputs.o }}"}
    outputs: {m: {type: file}}
  compare:
    run: echo compare >> "$FANOUT_STEP_LOG" && ls ${{ inputs.all }} > ${{ outputs.o }}
    inputs: {all: "${{ steps.train[*].outputs.m }}"}
    outputs: {o: {type: file}}
"""


def test_each_sweep_instance_gets_a_job_of_its_own(project_factory, tmp_path: Path, cache: str) -> None:
    origin = project_factory({"mlpipe.yaml": SWEEP})
    flow = Workflow(origin, tmp_path, cache)
    flow.plan().assert_success()
    assert [e["steps"] for e in flow.wave(2)] == [
        "train[lr=0.1,C=1.0]",
        "train[lr=0.1,C=10.0]",
        "train[lr=0.01,C=1.0]",
        "train[lr=0.01,C=10.0]",
    ]
    for outcome in flow.all_waves().values():
        outcome.assert_success()
    assert sorted(flow.ran()) == sorted(
        ["prepare", "train-0.1-1.0", "train-0.1-10.0", "train-0.01-1.0", "train-0.01-10.0", "compare"]
    )
    record = flow.report("--json").assert_success().json()
    assert set(statuses(record).values()) == {"ran"} and len(record["steps"]) == 6


def test_gc_removes_a_fan_out_runs_plan_and_parts_with_its_run_record(
    project_factory, tmp_path: Path, cache: str, registry
) -> None:
    origin = project_factory({"mlpipe.yaml": pipeline("g", step("a") + step("b", inputs={"x": "a"}))})
    repo = cache.split("/", 3)[3]
    done = Workflow(origin, tmp_path / "done", cache)
    done.plan().assert_success()
    for outcome in done.all_waves().values():
        outcome.assert_success()
    done.report().assert_success()
    origin.write({"mlpipe.yaml": pipeline("g", step("a", "echo changed") + step("b", inputs={"x": "a"}))})
    origin.commit()
    newer = Workflow(origin, tmp_path / "newer", cache)
    newer.plan().assert_success()
    newer.job(newer.wave(1)[0]).assert_success()  # no report yet: its run record is not pushed
    newer.job(newer.wave(2)[0]).assert_success()
    newer.report().assert_success()
    pending = Workflow(origin, tmp_path / "pending", cache)
    pending.plan().assert_success()  # everything reused: no jobs, and no report yet
    gc = origin.run("gc", "--keep-last", "1", "--json", env=newer.env("gc")).assert_success().json()
    removed = set(gc["registry"]["removed_tags"])
    assert {t for t in removed if t.startswith("fanout.")} == {
        f"fanout.{done.run_id}.plan",
        f"fanout.{done.run_id}.part.w1j1",
        f"fanout.{done.run_id}.part.w2j1",
    }
    tags = set(registry_tags(registry.host, repo))
    assert f"fanout.{newer.run_id}.plan" in tags and f"fanout.{pending.run_id}.plan" in tags


FAKE_BIN = Path(__file__).parents[1] / "bin"


def test_a_gpu_step_is_placed_by_a_plan_job_without_gpus_and_runs_on_the_gpu_runner(
    project_factory, tmp_path: Path, cache: str
) -> None:
    import os
    import shutil
    import sys

    gpu = "    runs-on: [self-hosted, gpu]\n    resources: {gpus: 1}\n"
    origin = project_factory(
        {"mlpipe.yaml": pipeline("gpu", step("prepare") + step("train", inputs={"d": "prepare"}, extra=gpu))}
    )
    hosted = tmp_path / "hosted-bin"  # a hosted runner: git and sh, no nvidia-smi
    hosted.mkdir()
    for name in ("git", "sh", "bash"):
        (hosted / name).symlink_to(shutil.which(name))
    bare = f"{hosted}{os.pathsep}{Path(sys.executable).parent}"
    flow = Workflow(origin, tmp_path, cache)
    plan = flow.clone("plan").run(
        "plan", "--github-matrix", "--waves", "2", env={**flow.env("plan"), "PATH": bare}
    )
    plan.assert_success()
    flow.outputs = flow._jobs["plan"].outputs()
    assert [(e["steps"], e["runs-on"]) for k in (1, 2) for e in flow.wave(k)] == [
        ("prepare", "ubuntu-latest"),
        ("train", ["self-hosted", "gpu"]),
    ]
    flow.job(flow.wave(1)[0], PATH=bare).assert_success()
    # on a runner without the gpu label or GPUs the step cannot run; on the GPU runner it does
    refused = flow.job(flow.wave(2)[0], PATH=bare)
    assert refused.code == 1 and "needs 1 GPU" in refused.output
    gpu_runner = {
        "PATH": f"{FAKE_BIN}{os.pathsep}{os.environ['PATH']}",
        "FAKE_GPUS": "1",
        "MLPIPE_RUNNER_LABELS": "gpu",
        "RUNNER_ENVIRONMENT": "self-hosted",
    }
    flow.job(flow.wave(2)[0], **gpu_runner).assert_success()
    assert flow.report("--json").assert_success().json()["steps"]["train"]["gpus"][0]["index"] == "0"
