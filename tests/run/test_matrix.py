"""Parameter sweeps end to end: instances run and are reused on their own; `[*]` inputs; `mlpipe show`."""

from __future__ import annotations

PIPELINE = """\
name: sweep
params: {C: 10.0, tag: base}
steps:
  train:
    code: src
    matrix:
      lr: [0.1, 0.01]
      C: [1, 10]
    run: sh train.sh ${{ matrix.lr }} ${{ params.C }} ${{ params.tag }} ${{ outputs.model }} ${{ outputs.metrics }}
    outputs:
      model: {type: file}
      metrics: {kind: metrics}
  report:
    code: src
    run: sh report.sh ${{ inputs.all }} ${{ inputs.models }} ${{ steps.train[lr=0.1,C=10.0].outputs.model }} ${{ outputs.out }}
    inputs:
      all: ${{ steps.train[*].outputs.metrics }}
      models: ${{ steps.train[*].outputs.model }}
    outputs:
      out: {type: file}
"""

FILES = {
    "mlpipe.yaml": PIPELINE,
    "src/train.sh": (
        'echo "lr=$1 C=$2 tag=$3 env=$MLPIPE_MATRIX_LR" > "$4"\n'
        'printf \'{"lr": %s, "score": %s}\' "$1" "$2" > "$5"\n'
    ),
    "src/report.sh": (
        'set -e\ncd "$1"\nfor d in *; do echo "$d: $(cat "$d/metrics")"; done > "$4"\n'
        'cat "$2/train[lr=0.01,C=1.0]/model" >> "$4"\ncat "$3" >> "$4"\n'
    ),
}

INSTANCES = ["train[lr=0.1,C=1.0]", "train[lr=0.1,C=10.0]", "train[lr=0.01,C=1.0]", "train[lr=0.01,C=10.0]"]


def statuses(record) -> dict[str, str]:
    return {name: step["status"] for name, step in record["steps"].items()}


def test_each_instance_runs_and_is_reused_on_its_own(project_factory):
    project = project_factory(FILES)

    first = project.run("ci-run", "--json").assert_success().json()

    assert statuses(first) == dict.fromkeys([*INSTANCES, "report"], "ran")
    assert len({first["steps"][i]["fingerprint"] for i in INSTANCES}) == 4
    assert first["steps"]["train[lr=0.01,C=1.0]"]["parts"]["matrix"] == {"lr": 0.01, "C": 1.0}
    assert first["steps"]["train[lr=0.01,C=1.0]"]["metrics"] == {"metrics": {"lr": 0.01, "score": 1.0}}
    out = project.run("pull", "report.out", "--to", "pulled").assert_success()
    assert (project.root / "pulled/out").read_text() == (
        'train[lr=0.01,C=1.0]: {"lr": 0.01, "score": 1.0}\n'
        'train[lr=0.01,C=10.0]: {"lr": 0.01, "score": 10.0}\n'
        'train[lr=0.1,C=1.0]: {"lr": 0.1, "score": 1.0}\n'
        'train[lr=0.1,C=10.0]: {"lr": 0.1, "score": 10.0}\n'
        "lr=0.01 C=1.0 tag=base env=0.01\n"
        "lr=0.1 C=10.0 tag=base env=0.1\n"
    ), out.output

    again = project.run("ci-run", "--json").assert_success().json()
    assert set(statuses(again).values()) == {"reused"}

    # A new value adds instances; the old ones are reused, and the `[*]` input changes.
    project.write({"mlpipe.yaml": PIPELINE.replace("lr: [0.1, 0.01]", "lr: [0.1, 0.01, 0.001]")})
    project.commit("more lr")
    third = project.run("ci-run", "--json").assert_success().json()
    assert statuses(third) == {
        **dict.fromkeys(INSTANCES, "reused"),
        "train[lr=0.001,C=1.0]": "ran",
        "train[lr=0.001,C=10.0]": "ran",
        "report": "ran",
    }
    old, new = (r["steps"]["report"]["parts"]["inputs"] for r in (again, third))
    assert third["steps"]["report"]["reasons"] == [
        f"input all (train[*].metrics) changed: {old['all'][:19]} -> {new['all'][:19]}",
        f"input models (train[*].model) changed: {old['models'][:19]} -> {new['models'][:19]}",
    ]

    # A param the matrix overrides does not change the instances; one it does not override does.
    plan = project.run("plan", "-p", "C=3", "--json").assert_success().json()
    assert {s["action"] for s in plan["steps"]} == {"reuse"}
    plan = project.run("plan", "-p", "tag=other", "--json").assert_success().json()
    assert {s["name"]: s["action"] for s in plan["steps"]}["train[lr=0.1,C=1.0]"] == "run"


def test_show_compares_the_instances_metrics(project_factory):
    project = project_factory(FILES)
    project.run("ci-run").assert_success()

    shown = project.run("show").assert_success().stdout

    assert shown.endswith(
        "\n\nmatrix train:\n"
        "lr    C     lr    score  status\n"
        "----  ----  ----  -----  ------\n"
        "0.1   1.0   0.1   1      ran\n"  # in the order the matrix writes them, as the run made them
        "0.1   10.0  0.1   10     ran\n"
        "0.01  1.0   0.01  1      ran\n"
        "0.01  10.0  0.01  10     ran\n"
    ), shown


def test_the_export_of_a_sweep_runs_with_the_same_fingerprints(project_factory):
    project = project_factory(FILES)
    project.write({"exported.json": project.run("export").assert_success().stdout})
    project.commit("export")

    from_yaml = project.run("ci-run", "--json").assert_success().json()
    from_json = project.run("ci-run", "-f", "exported.json", "--json").assert_success().json()

    assert set(statuses(from_json).values()) == {"reused"}
    assert {n: s["fingerprint"] for n, s in from_json["steps"].items()} == {
        n: s["fingerprint"] for n, s in from_yaml["steps"].items()
    }
