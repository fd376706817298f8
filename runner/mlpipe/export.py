"""A loaded pipeline as canonical JSON: every default spelled out, params resolved, keys sorted.

The result is itself a pipeline file (JSON is YAML): `mlpipe ci-run -f exported.json` runs it, with the
same fingerprints as the file it came from when it sits in the same workspace directory.
"""

from __future__ import annotations

import json
from typing import Any

from mlpipe.spec.load import FORMAT
from mlpipe.spec.model import Output, Pipeline, RepoInput, Step


def export_pipeline(pipeline: Pipeline) -> dict[str, Any]:
    """The pipeline as plain data in the pipeline file's own form (paths relative to the workspace)."""
    return {
        "format": FORMAT,
        "name": pipeline.name,
        "params": {name: param.value for name, param in pipeline.params.items()},
        "steps": {name: _step(step) for name, step in pipeline.steps.items()},
    }


def export_json(pipeline: Pipeline) -> str:
    """Canonical text: sorted keys, one key a line, ending in a newline; equal pipelines give equal text."""
    return json.dumps(export_pipeline(pipeline), indent=2, sort_keys=True, allow_nan=False) + "\n"


def _step(step: Step) -> dict[str, Any]:
    out: dict[str, Any] = {
        "code": step.code,
        "run": step.run,
        "inputs": {
            name: item.path
            if isinstance(item, RepoInput)
            else f"${{{{ steps.{item.step}.outputs.{item.output} }}}}"
            for name, item in step.inputs.items()
        },
        "outputs": {name: _output(output) for name, output in step.outputs.items()},
        "env": dict(step.env),
        "reuse": step.reuse,
        "needs": list(step.needs),
        "resources": {"gpus": step.gpus},
        "runs-on": list(step.runs_on),
        "env-passthrough": list(step.env_passthrough),
        "environment": {
            "files": list(step.environment),
            "python": step.environment_python,
            "packages": step.environment_packages,
        },
    }
    if step.image is not None:
        out["image"] = step.image
    if step.timeout_minutes is not None:
        out["timeout-minutes"] = step.timeout_minutes
    return out


def _output(output: Output) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": output.kind, "type": output.type}
    if output.path is not None:
        out["path"] = output.path
    return out
