"""`env-passthrough` (tokens a step needs: passed through, never fingerprinted or recorded) and
`environment: {python: true, packages: true}` (the interpreter on PATH enters the fingerprint)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

SECRET = "hf_s3cr3t-value-123"

PIPELINE = """\
name: demo
steps:
  fetch:
    code: src
    run: test -n "$HF_TOKEN" && echo "token length ${#HF_TOKEN}" > ${{ outputs.out }}
    env-passthrough: [HF_TOKEN]
    outputs:
      out: {type: file}
  train:
    code: src
    run: echo trained > ${{ outputs.model }}
    environment: {files: [lock.txt], python: true, packages: true}
    outputs:
      model: {type: file}
"""

FILES = {"mlpipe.yaml": PIPELINE, "src/.keep": "", "lock.txt": "pkg==1\n"}


def test_passed_through_variables_reach_the_step_but_not_the_fingerprint_or_the_record(project_factory):
    project = project_factory(FILES)

    first = project.run("ci-run", env={"HF_TOKEN": SECRET}).assert_success()
    second = project.run("ci-run", "--json", env={"HF_TOKEN": "another-token-value"}).assert_success().json()

    assert second["steps"]["fetch"]["status"] == "reused"
    assert second["steps"]["fetch"]["parts"]["env"] == {}
    state = project.root / ".mlpipe"
    for path in state.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in first.output


def fake_python(tmp_path: Path, version: str) -> Path:
    """A `python` first on PATH that answers mlpipe's probe with another version (steps here run no python)."""
    bin_dir = tmp_path / f"bin-{version}"
    bin_dir.mkdir()
    script = bin_dir / "python"
    answer = json.dumps({"version": f"CPython {version}", "packages": ["numpy==9.9"]})
    script.write_text(f"#!/bin/sh\necho '{answer}'\n")
    script.chmod(0o755)
    return bin_dir


def test_the_python_version_and_packages_enter_the_fingerprint(project_factory, tmp_path):
    project = project_factory(FILES)
    env = {"HF_TOKEN": SECRET}
    project.run("ci-run", env=env).assert_success()
    record = project.record()
    parts = record["steps"]["train"]["parts"]["environment"]
    assert (
        parts["<python>"]
        == f"CPython {sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    )
    assert parts["<python packages>"].startswith("sha256:")
    assert set(parts) == {"lock.txt", "<python>", "<python packages>"}
    assert "<python>" not in record["steps"]["fetch"]["parts"]["environment"]

    path = f"{fake_python(tmp_path, '3.99.0')}{os.pathsep}{os.environ['PATH']}"
    plan = project.run("plan", env={**env, "PATH": path}).assert_success().stdout

    lines = {line.split()[0]: line.split(None, 2)[1:] for line in plan.splitlines()[2:]}
    assert lines["fetch"][0] == "reuse"
    assert lines["train"] == [
        "run",
        f"python packages changed; python changed: {parts['<python>']} -> CPython 3.99.0",
    ]
