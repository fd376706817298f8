"""Fan-out across runners against one job: wall time of a simulated 3-wave pipeline.

    python3 bench/fanout.py [--widths 2,4,8] [--work 2,8] [--startup 1,4] [--reps 3]

The pipeline: `prepare` -> WIDTH `train-i` steps (`fan-out: true`, each its own job) -> `evaluate`. Each step
stands for compute that fills its runner: `sleep WORK`, and a job runs its steps one at a time (`MLPIPE_JOBS=1`),
so a single job runs the WIDTH trains one after another while the fan-out gives each its own runner.

Both sides are workflows run by the test workflow runner (tests/actions_testing.py) as GitHub would run them:
jobs concurrently on simulated runners, a fresh clone per job, the real mlpipe CLI and a real registry (the
jobs' meeting point; a new repository per repetition, so nothing is reused). Each job pays STARTUP seconds before
mlpipe is usable (a sleep in the install step, standing for checkout, setup-python and pip install: tens of
seconds on hosted runners). The fan-out side is .github/workflows/fan-out.yml (plan, 3 waves, report); the one-job
side is bench/one-job.yml (checkout, install, `mlpipe ci-run`, as action.yml does). Writes
bench/work/results-fanout.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))

from actions_checkout import link_installed_mlpipe, working_tree_repository  # the test workflow runner's
from actions_model import Event, StepContext, hosted_runner
from actions_testing import WorkflowRunner
from github_testing import push_payload
from services.registry import Registry

ACTION_REPOSITORY = "mlpipe/mlpipe-action"


def pipeline(width: int, work: float) -> str:
    def step(name: str, inputs: dict[str, str], fan_out: bool = False) -> str:
        ins = "".join(f"      {k}: ${{{{ steps.{v}.outputs.o }}}}\n" for k, v in inputs.items())
        return (
            f"  {name}:\n    code: steps\n    run: sleep {work} && echo {name} > ${{{{ outputs.o }}}}\n"
            f"    outputs: {{o: {{type: file}}}}\n"
            + (f"    inputs:\n{ins}" if ins else "")
            + ("    fan-out: true\n" if fan_out else "")
        )

    trains = [f"train-{i}" for i in range(1, width + 1)]
    return (
        "name: bench\nsteps:\n"
        + step("prepare", {})
        + "".join(step(t, {"data": "prepare"}, fan_out=True) for t in trains)
        + step("evaluate", {t.replace("-", "_"): t for t in trains})
    )


def make_origin(root: Path, width: int, work: float) -> tuple[Path, str]:
    root.mkdir(parents=True)
    (root / "steps").mkdir()
    (root / "steps/README").write_text("steps\n")
    (root / "mlpipe.yaml").write_text(pipeline(width, work))
    (root / ".gitignore").write_text(".mlpipe/\n")
    env = {
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
        "PATH": "/usr/bin:/bin",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
    return root, sha.stdout.strip()


def one_run(
    workflow: Path,
    work_dir: Path,
    origin: Path,
    sha: str,
    registry: Registry,
    startup: float,
    action: tuple[Path, str],
) -> tuple[float, dict[str, Any]]:
    def slow_install(step: StepContext) -> None:
        time.sleep(startup)
        link_installed_mlpipe(step)

    runner_env = {"MLPIPE_JOBS": "1"}
    hosted = hosted_runner(slots=64)
    runner = WorkflowRunner(
        workflow,
        root=work_dir,
        origin=origin,
        event=Event("push", push_payload(sha), sha, "refs/heads/main"),
        runners=[type(hosted)(**{**hosted.__dict__, "env": runner_env})],
        repositories={ACTION_REPOSITORY: action[0]},
        replace_steps={"install": slow_install},
        deadline_s=1800,
    )
    inputs = {"cache": f"oci://{registry.host}/bench-{uuid.uuid4().hex[:8]}", "mlpipe-ref": action[1]}
    started = time.monotonic()
    run = runner.run(inputs)
    seconds = time.monotonic() - started
    failed = [name for name, job in run.jobs.items() if job.result not in ("success", "skipped")]
    if failed:
        raise SystemExit(f"{workflow.name}: jobs {failed} did not succeed:\n{run.explain()[-6000:]}")
    jobs = {name: len(job.instances) for name, job in run.jobs.items()}
    return seconds, jobs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--widths", default="2,4,8")
    parser.add_argument("--work", default="2,8", help="seconds of compute per step")
    parser.add_argument("--startup", default="1,4", help="seconds each job pays before mlpipe runs")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    work_root = BENCH / "work" / "fanout" / uuid.uuid4().hex[:6]
    action = working_tree_repository(REPO, work_root / "mlpipe-action")
    registry = Registry(work_root / "registry")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the registry on `kill` too
    registry.start()
    rows = []
    try:
        for width in map(int, args.widths.split(",")):
            for work in map(float, args.work.split(",")):
                origin, sha = make_origin(work_root / f"origin-{width}-{work:g}", width, work)
                for startup in map(float, args.startup.split(",")):
                    row: dict[str, Any] = {"width": width, "work_s": work, "startup_s": startup}
                    for side, workflow in (
                        ("one_job", BENCH / "one-job.yml"),
                        ("fan_out", REPO / ".github/workflows/fan-out.yml"),
                    ):
                        samples = []
                        for rep in range(args.reps):
                            where = work_root / f"{side}-{width}-{work:g}-{startup:g}-{rep}"
                            seconds, jobs = one_run(workflow, where, origin, sha, registry, startup, action)
                            shutil.rmtree(where)  # each job's clones: tens of MB a repetition
                            samples.append(seconds)
                            row[f"{side}_jobs"] = jobs
                        row[side] = {"median": statistics.median(samples), "samples": samples}
                    row["speed_up"] = row["one_job"]["median"] / row["fan_out"]["median"]
                    rows.append(row)
                    print(_line(row), flush=True)
    finally:
        registry.stop()
    machine = f"{platform.processor() or platform.machine()}, {platform.system()} {platform.release()}"
    out = {"machine": machine, "python": platform.python_version(), "reps": args.reps, "rows": rows}
    (BENCH / "work").mkdir(exist_ok=True)
    (BENCH / "work/results-fanout.json").write_text(json.dumps(out, indent=2))
    table = [
        "| width | work per step | start-up per job | one job | fan-out | one job / fan-out |",
        "|---|---|---|---|---|---|",
    ]
    table += [_line(row) for row in rows]
    (BENCH / "work/results-fanout.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


def _line(row: dict[str, Any]) -> str:
    return (
        f"| {row['width']} | {row['work_s']:g} s | {row['startup_s']:g} s | {row['one_job']['median']:.1f} s "
        f"| {row['fan_out']['median']:.1f} s | {row['speed_up']:.2f}x |"
    )


if __name__ == "__main__":
    main()
