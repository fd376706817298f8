"""Container options in the pipeline file: `shm-size`, `ulimits`, `user`, `mounts`, `network`."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_spec_load import problems, write

from mlpipe.spec.export import export_json, export_pipeline
from mlpipe.spec.load import load_pipeline
from mlpipe.spec.model import Build, ContainerMount


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


OPTIONS = """
name: x
steps:
  train:
    run: 'true'
    image: busybox
    shm-size: 2g
    ulimits: {nofile: 1024, memlock: "0:65536", rtprio: -1}
    user: 1234
    mounts: [data/./:/data:ro, "/tmp:/scratch", "data:/rw:rw"]
    network: none
  plain:
    run: 'true'
    image: busybox
"""


def test_container_options_build_the_model(ws: Path) -> None:
    step = load_pipeline(write(ws, OPTIONS, {"data/f": ""})).steps["train"]

    assert (step.shm_size, step.ulimits, step.user, step.network) == (
        "2g",
        {"nofile": (1024, 1024), "memlock": (0, 65536), "rtprio": (-1, -1)},
        "1234",
        "none",
    )
    assert step.mounts == (
        ContainerMount(host="data", target="/data", read_only=True),
        ContainerMount(host="/tmp", target="/scratch", read_only=False),
        ContainerMount(host="data", target="/rw", read_only=False),
    )


def test_container_options_default_to_the_engine_s(ws: Path) -> None:
    step = load_pipeline(write(ws, OPTIONS, {"data/f": ""})).steps["plain"]

    assert (step.shm_size, step.ulimits, step.user, step.mounts, step.network) == (None, {}, None, (), None)


def test_container_options_round_trip_through_export(ws: Path) -> None:
    pipeline = load_pipeline(write(ws, OPTIONS, {"data/f": ""}))
    data = export_pipeline(pipeline)
    text = export_json(pipeline)
    (ws / "exported.json").write_text(text)

    again = load_pipeline(ws / "exported.json")

    assert {k: data["steps"]["train"][k] for k in ("shm-size", "ulimits", "user", "mounts", "network")} == {
        "shm-size": "2g",
        "ulimits": {"nofile": "1024:1024", "memlock": "0:65536", "rtprio": "-1:-1"},
        "user": "1234",
        "mounts": ["data:/data:ro", "/tmp:/scratch:rw", "data:/rw:rw"],
        "network": "none",
    }
    assert not {"shm-size", "ulimits", "user", "mounts", "network"} & data["steps"]["plain"].keys()
    assert export_json(again) == text
    assert again.steps["train"] == pipeline.steps["train"].__class__(
        **{**vars(pipeline.steps["train"]), "loc": again.steps["train"].loc}
    )


def test_container_option_problems(ws: Path) -> None:
    text = """
    name: x
    steps:
      a:
        run: 'true'
        image: busybox
        shm-size: 2gb
        ulimits: {nofiles: 1, nproc: -2, core: "9:8", stack: [1]}
        user: a b
        mounts: [data, "data:rel", "data:/d:rx", "../up:/up", "dat:/d", "data:/mlpipe/x", {a: b}]
        network: hots
      b:
        run: 'true'
        shm-size: 1g
        network: none
    """
    assert problems(ws, text, {"data/f": ""}) == [
        (
            "mlpipe.yaml:6:15: steps.a.shm-size: expected a size in bytes, or a number ending in b, k, m or g "
            "such as '2g', found the string '2gb'"
        ),
        "mlpipe.yaml:7:15: steps.a.ulimits.nofiles: unknown ulimit 'nofiles'; did you mean 'nofile'?",
        "mlpipe.yaml:7:34: steps.a.ulimits.nproc: expected a limit (-1: unlimited) or 'SOFT:HARD', found the integer -2",
        "mlpipe.yaml:7:44: steps.a.ulimits.core: soft limit 9 is above hard limit 8; give SOFT:HARD, SOFT <= HARD",
        "mlpipe.yaml:7:58: steps.a.ulimits.stack: expected a limit (-1: unlimited) or 'SOFT:HARD', found a list",
        "mlpipe.yaml:8:11: steps.a.user: expected a user name or uid, optionally with ':GROUP', found the string 'a b'",
        "mlpipe.yaml:9:14: steps.a.mounts: expected HOST:CONTAINER or HOST:CONTAINER:ro, found 'data'",
        "mlpipe.yaml:9:20: steps.a.mounts: container path 'rel' is not absolute; start it with '/'",
        "mlpipe.yaml:9:32: steps.a.mounts: expected HOST:CONTAINER or HOST:CONTAINER:ro, found 'data:/d:rx'",
        (
            "mlpipe.yaml:9:46: steps.a.mounts: host path '../up' is outside the workspace root; "
            "give it relative to the workspace root, or absolute"
        ),
        "mlpipe.yaml:9:59: steps.a.mounts: host path 'dat' does not exist; did you mean 'data'?",
        (
            "mlpipe.yaml:9:69: steps.a.mounts: container path '/mlpipe/x' is inside /mlpipe; "
            "mlpipe mounts the code, inputs and outputs there; choose another path"
        ),
        "mlpipe.yaml:9:87: steps.a.mounts: expected a string or a list of strings, found a mapping",
        "mlpipe.yaml:10:14: steps.a.network: expected 'none', 'host' or 'bridge', found the string 'hots'; did you mean 'host'?",
        "mlpipe.yaml:13:5: steps.b.shm-size: shm-size applies only to a step with an image; add 'image' or 'build', or remove 'shm-size'",
        "mlpipe.yaml:14:5: steps.b.network: network applies only to a step with an image; add 'image' or 'build', or remove 'network'",
    ]


def test_build_problems(ws: Path) -> None:
    text = """
    name: x
    steps:
      a: {run: 'true', build: nowhere}
      b: {run: 'true', build: bare}
      c: {run: 'true', build: {context: img, dockerfile: nothere}}
      d: {run: 'true', build: img, image: busybox}
      e: {run: 'true', build: {dockerfile: x}}
    """
    files = {"img/Dockerfile": "FROM x\n", "bare/f": ""}
    assert problems(ws, text, files) == [
        (
            "mlpipe.yaml:3:27: steps.a.build: build context 'nowhere' is not a directory; "
            f"paths are relative to the workspace root {ws}"
        ),
        (
            "mlpipe.yaml:4:27: steps.b.build: Dockerfile 'bare/Dockerfile' does not exist; "
            "add it, or name it with 'dockerfile' (relative to the context)"
        ),
        (
            "mlpipe.yaml:5:54: steps.c.build.dockerfile: Dockerfile 'img/nothere' does not exist; "
            "add it, or name it with 'dockerfile' (relative to the context)"
        ),
        "mlpipe.yaml:6:20: steps.d.build: a step has either an image or a build; remove 'image': the built image is the step's",
        "mlpipe.yaml:7:27: steps.e.build: missing required key 'context'",
    ]


def test_build_builds_the_model_and_round_trips(ws: Path) -> None:
    text = """
    name: x
    steps:
      a: {run: 'true', build: img/, user: "1"}
      b: {run: 'true', build: {context: img, dockerfile: ./sub/../gpu.Dockerfile}}
    """
    path = write(ws, text, {"img/Dockerfile": "", "img/gpu.Dockerfile": ""})
    pipeline = load_pipeline(path)
    (ws / "exported.json").write_text(export_json(pipeline))

    again = load_pipeline(ws / "exported.json")

    assert pipeline.steps["a"].build == Build(context="img", dockerfile="Dockerfile")
    assert pipeline.steps["b"].build == Build(context="img", dockerfile="gpu.Dockerfile")
    assert export_pipeline(pipeline)["steps"]["b"]["build"] == {
        "context": "img",
        "dockerfile": "gpu.Dockerfile",
    }
    assert (again.steps["a"].build, again.steps["b"].build) == (
        pipeline.steps["a"].build,
        pipeline.steps["b"].build,
    )
