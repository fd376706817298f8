"""The README's pipeline files, taken from the README itself: each validates as pasted, against the loader and
the shipped JSON Schema, and the ones that need nothing this machine lacks (a container engine, GPUs, a
self-hosted runner) run with small stand-in scripts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from mlpipe_testing import Project, make_repo

README = Path(__file__).resolve().parents[1] / "README.md"
SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "runner/mlpipe/mlpipe.schema.json").read_text())


def pipeline_examples() -> dict[str, str]:
    """Every ```yaml block that is a pipeline file (`steps:` a mapping at the top level), by its heading."""
    text = README.read_text(encoding="utf-8")
    found: dict[str, str] = {}
    heading = ""
    for match in re.finditer(r"^(#+ [^\n]*)$|^```yaml\n(.*?)^```$", text, re.MULTILINE | re.DOTALL):
        if match.group(1):
            heading = match.group(1).lstrip("# ").strip()
        else:
            doc = yaml.safe_load(match.group(2))
            if isinstance(doc, dict) and isinstance(doc.get("steps"), dict):
                found[heading] = match.group(2)
    return found


EXAMPLES = pipeline_examples()

FILES = {
    "steps/prepare/prepare.py": (
        "import argparse, pathlib\n"
        "p = argparse.ArgumentParser(); p.add_argument('--out'); a = p.parse_args()\n"
        "pathlib.Path(a.out, 'rows.csv').write_text('1,2\\n')\n"
    ),
    "steps/train/train.py": "",
    "requirements.txt": "scikit-learn\n",
    "train.py": (
        "import argparse, json, os, pathlib\n"
        "p = argparse.ArgumentParser()\n"
        "for o in ('--lr', '--C', '--out'): p.add_argument(o)\n"
        "a = p.parse_args()\n"
        "pathlib.Path(a.out).write_text(f'model lr={a.lr} C={a.C}\\n')\n"
        "metrics = os.environ['MLPIPE_OUTPUT_METRICS']\n"
        "pathlib.Path(metrics).write_text(json.dumps({'acc': float(a.lr) * float(a.C)}))\n"
    ),
    "compare.py": (
        "import pathlib, sys\n"
        "everything, best = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])\n"
        "print(sorted(p.name for p in everything.iterdir()), best.read_text().strip())\n"
    ),
}

RUNNABLE = {"Parameter sweeps: `matrix`"}
"""The examples that run here; the others name an image, GPUs and a self-hosted runner."""


def test_the_readme_has_the_pipeline_examples_this_test_checks() -> None:
    assert set(EXAMPLES) == {"The pipeline file", "Parameter sweeps: `matrix`"}


@pytest.mark.parametrize("heading", sorted(EXAMPLES))
def test_a_readme_pipeline_validates_as_pasted(tmp_path: Path, heading: str) -> None:
    project = Project(make_repo(tmp_path / "readme", {**FILES, "mlpipe.yaml": EXAMPLES[heading]}))

    validated = project.run("validate")

    assert validated.code == 0, (
        f"the README's example under {heading!r} does not validate:\n{validated.output}"
    )
    errors = list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(yaml.safe_load(EXAMPLES[heading])))
    assert errors == [], [e.message for e in errors]


@pytest.mark.parametrize("heading", sorted(RUNNABLE))
def test_a_readme_pipeline_runs(tmp_path: Path, heading: str) -> None:
    project = Project(make_repo(tmp_path / "readme", {**FILES, "mlpipe.yaml": EXAMPLES[heading]}))

    project.run("ci-run", env={"CI": "true"}).assert_success()

    record = project.record()
    assert {s["status"] for s in record["steps"].values()} == {"ran"}
    assert record["order"] == [
        "train[lr=0.1,C=1.0]",
        "train[lr=0.1,C=10.0]",
        "train[lr=0.01,C=1.0]",
        "train[lr=0.01,C=10.0]",
        "compare",
    ]
    assert record["steps"]["train[lr=0.1,C=10.0]"]["metrics"] == {"metrics": {"acc": 1.0}}
    log = (project.root / record["steps"]["compare"]["log"]).read_text()
    assert "model lr=0.1 C=10.0" in log
