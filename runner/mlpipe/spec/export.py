"""A loaded pipeline as canonical JSON: every default spelled out, params resolved, keys sorted.

The result is itself a pipeline file (JSON is YAML): `mlpipe ci-run -f exported.json` runs it, with the
same fingerprints as the file it came from when it sits in the same workspace directory.
"""

from __future__ import annotations

import json
from typing import Any

from mlpipe.spec.load import FORMAT
from mlpipe.spec.model import (
    ExternalInput,
    Input,
    OciInput,
    Output,
    Pipeline,
    RepoInput,
    Step,
    StepInput,
    UrlInput,
)


def export_pipeline(pipeline: Pipeline) -> dict[str, Any]:
    """The pipeline as plain data in the pipeline file's own form (paths relative to the workspace)."""
    return {
        "format": FORMAT,
        "name": pipeline.name,
        "params": {name: param.value for name, param in pipeline.params.items()},
        "steps": _steps(pipeline),
    }


def _steps(pipeline: Pipeline) -> dict[str, Any]:
    """Steps as written: the instances of a matrix step become that step again, with its `matrix`."""
    instances: dict[str, list[Step]] = {}
    for step in pipeline.steps.values():
        if step.instance_of is not None:
            instances.setdefault(step.instance_of, []).append(step)
    names = {base: {s.name for s in group} for base, group in instances.items()}
    out: dict[str, Any] = {}
    for name, step in pipeline.steps.items():
        base = step.instance_of or name
        if base in out:
            continue
        out[base] = _step(step, names)
        if step.instance_of is not None:
            group = instances[base]
            out[base]["matrix"] = {k: list(dict.fromkeys(s.matrix[k] for s in group)) for k in step.matrix}
    return out


def export_json(pipeline: Pipeline) -> str:
    """Canonical text: sorted keys, one key a line, ending in a newline; equal pipelines give equal text.

    A matrix keeps its keys in the order written: that order names the instances (`train[lr=0.1,C=1]`).
    """
    data = export_pipeline(pipeline)
    canonical = _sorted(data)
    for name, step in data["steps"].items():
        if "matrix" in step:
            canonical["steps"][name]["matrix"] = step["matrix"]
    return json.dumps(canonical, indent=2, allow_nan=False) + "\n"


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _step(step: Step, instances: dict[str, set[str]]) -> dict[str, Any]:
    """`instances`: matrix step -> its instance names (a `needs` on all of them is written as the step)."""
    needs: list[str] = []
    for need in step.needs:
        whole = (b for b, names in instances.items() if need in names and names <= set(step.needs))
        needs.append(next(whole, need))
    needs = list(dict.fromkeys(needs))
    out: dict[str, Any] = {
        "code": step.code,
        "run": step.run,
        "inputs": {name: _input(item) for name, item in step.inputs.items()},
        "outputs": {name: _output(output) for name, output in step.outputs.items()},
        "env": dict(step.env),
        "reuse": step.reuse,
        "needs": needs,
        "resources": {"gpus": step.gpus},
        "runs-on": list(step.runs_on),
        "fan-out": step.fan_out,
        "env-passthrough": list(step.env_passthrough),
        "environment": {
            "files": list(step.environment),
            "python": step.environment_python,
            "packages": step.environment_packages,
        },
    }
    if step.image is not None:
        out["image"] = step.image
    if step.build is not None:
        out["build"] = {"context": step.build.context, "dockerfile": step.build.dockerfile}
    out |= _container_options(step)
    if step.timeout_minutes is not None:
        out["timeout-minutes"] = step.timeout_minutes
    return out


def _container_options(step: Step) -> dict[str, Any]:
    """Written only when set: they are valid only on a container step."""
    options: dict[str, Any] = {
        "shm-size": step.shm_size,
        "ulimits": {name: f"{soft}:{hard}" for name, (soft, hard) in step.ulimits.items()} or None,
        "user": step.user,
        "mounts": [str(mount) for mount in step.mounts] or None,
        "network": step.network,
    }
    return {key: value for key, value in options.items() if value is not None}


def _input(item: Input) -> Any:
    """An input as written in the pipeline file."""
    if isinstance(item, RepoInput):
        return item.path
    if isinstance(item, StepInput):
        return f"${{{{ steps.{item.step}.outputs.{item.output} }}}}"
    if isinstance(item, UrlInput):
        return {"url": item.url, "sha256": item.sha256}
    if isinstance(item, ExternalInput):
        return {"path": item.path, "external": True}
    if isinstance(item, OciInput):
        return item.ref
    return item.file


def _output(output: Output) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": output.kind, "type": output.type}
    if output.path is not None:
        out["path"] = output.path
    higher = [metric for metric, up in output.metric_directions if up]
    lower = [metric for metric, up in output.metric_directions if not up]
    if higher:
        out["higher-is-better"] = higher
    if lower:
        out["lower-is-better"] = lower
    if output.higher_is_better is not None:  # the other metrics' direction, under the key left free
        if higher:
            out["lower-is-better"] = not output.higher_is_better
        else:
            out["higher-is-better"] = output.higher_is_better
    return out
