"""`mlpipe export` round trip through the real command: the exported JSON runs with the YAML's fingerprints."""

from __future__ import annotations

PIPELINE = """\
name: demo
params:
  n: 3
  rate: 0.00001
  greeting: hello
steps:
  a:
    code: a
    run: sh a.sh ${{ inputs.data }} ${{ outputs.out }} ${{ params.n }}
    inputs:
      data: data/input.txt
    outputs:
      out: {}
    environment: [lock.txt]
  b:
    run: cat ${{ inputs.up }}/copy.txt > ${{ outputs.result }}; echo ${{ params.rate }} >> ${{ outputs.result }}
    inputs:
      up: ${{ steps.a.outputs.out }}
    outputs:
      result: {type: file}
    env: {GREETING: "${{ params.greeting }}", SEED: 7}
  c:
    code: c
    run: |
      printf '{"score": 0.5}' > ${{ outputs.metrics }}; echo $GREETING
    env: {GREETING: "${{ params.greeting }}"}
    needs: [b]
    outputs:
      metrics: {kind: metrics, path: reports/metrics.json}
"""

FILES = {
    "mlpipe.yaml": PIPELINE,
    ".gitignore": ".mlpipe/\nreports/\n",  # a checked-out output must not change step b's snapshot of '.'
    "data/input.txt": "one\ntwo\n",
    "lock.txt": "pkg==1\n",
    "a/a.sh": 'set -e\ncp "$1" "$2/copy.txt"\necho "n=$3" > "$2/n.txt"\n',
    "c/.keep": "",
}


def fingerprints(record) -> dict[str, str]:
    return {name: step["fingerprint"] for name, step in record["steps"].items()}


def test_the_exported_pipeline_runs_with_the_same_fingerprints(project_factory):
    project = project_factory(FILES)
    exported = project.run("export", "-p", "n=4").assert_success().stdout
    project.write({"exported.json": exported})
    project.commit("export")

    from_yaml = project.run("ci-run", "-p", "n=4", "--json").assert_success().json()
    from_json = project.run("ci-run", "-f", "exported.json", "--json").assert_success().json()

    assert {s["status"] for s in from_yaml["steps"].values()} == {"ran"}
    assert {s["status"] for s in from_json["steps"].values()} == {"reused"}
    assert fingerprints(from_json) == fingerprints(from_yaml)
    assert from_json["params"] == from_yaml["params"] == {"n": 4, "rate": 1e-05, "greeting": "hello"}

    plan_yaml = project.run("plan", "--json", "-p", "n=4", "-p", "greeting=hi").assert_success().json()
    plan_json = (
        project.run("plan", "--json", "-f", "exported.json", "-p", "greeting=hi").assert_success().json()
    )
    assert sorted(plan_json["steps"], key=lambda s: s["name"]) == sorted(
        plan_yaml["steps"], key=lambda s: s["name"]
    )
    assert (
        project.run("validate", "-f", "exported.json").assert_success().stdout
        == "exported.json: ok (3 steps)\n"
    )


def test_export_is_stable_and_exports_itself_unchanged(project_factory):
    project = project_factory(FILES)
    first = project.run("export").assert_success().stdout
    project.write({"exported.json": first})

    assert project.run("export").assert_success().stdout == first
    assert project.run("export", "-f", "exported.json").assert_success().stdout == first


def test_a_broken_export_names_the_json_file(project_factory):
    project = project_factory(
        {**FILES, "bad.json": '{"name": "x", "steps": {"a": {"run": "true", "reuse": "no"}}}\n'}
    )

    outcome = project.run("ci-run", "-f", "bad.json")

    outcome.assert_code(2)
    assert outcome.stderr == "bad.json:1:55: steps.a.reuse: expected true or false, found the string 'no'\n"
    assert not (project.root / ".mlpipe").exists()
