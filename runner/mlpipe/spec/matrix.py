"""`matrix:` on a step: one instance per combination of values, named `train[lr=0.1,C=1]`.

Each instance is a step of its own (fingerprinted and cached on its own); a step downstream takes one
instance, `${{ steps.train[lr=0.1,C=1].outputs.model }}`, or all, `${{ steps.train[*].outputs.metrics }}`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import replace

from mlpipe.spec.model import Param, ParamValue, Step, StepInput
from mlpipe.spec.refs import param_text, split
from mlpipe.spec.steps import Draft
from mlpipe.spec.yamlnodes import Reader, describe, join

MAX_INSTANCES = 256
MAX_INSTANCE_NAME = 200
ALL = "[*]"


def instance_name(step: str, values: Mapping[str, ParamValue]) -> str:
    return f"{step}[{','.join(f'{key}={param_text(value)}' for key, value in values.items())}]"


def make_instances(reader: Reader, drafts: Mapping[str, Draft], params: Mapping[str, Param]) -> None:
    """Check each matrix value against the param it overrides, then name every instance."""
    for draft in drafts.values():
        lists: dict[str, list[ParamValue]] = {}
        for key, items in draft.matrix.items():
            values = lists.setdefault(key, [])
            seen: dict[str, int] = {}
            for value, node in items:
                entry_key = join(draft.key, f"matrix.{key}")
                if key in params:
                    converted = _like(value, params[key].default)
                    if converted is None:
                        what = _kind(params[key].default)
                        message = f"expected {what}, like param {key!r}, found {describe(node)}"
                        reader.add(node, entry_key, message)
                        continue
                    value = converted
                text = param_text(value)
                if text in seen:
                    reader.add(
                        node, entry_key, f"duplicate value {text}", f"first listed at line {seen[text]}"
                    )
                    continue
                seen[text] = node.start_mark.line + 1
                values.append(value)
        if not lists or not all(lists.values()):
            continue
        count = 1
        for values in lists.values():
            count *= len(values)
        if count > MAX_INSTANCES:
            message = f"{count} combinations; at most {MAX_INSTANCES} instances per step"
            reader.add(next(iter(draft.matrix.values()))[0][1], join(draft.key, "matrix"), message)
            continue
        combos = (dict(zip(lists, combo, strict=True)) for combo in itertools.product(*lists.values()))
        draft.instances = {instance_name(draft.step.name, combo): combo for combo in combos}
        longest = max(draft.instances, key=lambda name: len(name.encode()), default="")
        if len(longest.encode()) > MAX_INSTANCE_NAME:
            message = f"instance name {longest[:60]}... is {len(longest.encode())} bytes long"
            fix = f"use shorter matrix keys and values: instance names (logs are files named by them) are at most {MAX_INSTANCE_NAME}"
            reader.add(next(iter(draft.matrix.values()))[0][1], join(draft.key, "matrix"), message, fix)
            draft.instances = {}


def expand(drafts: Mapping[str, Draft]) -> dict[str, Step]:
    """The pipeline's steps: each matrix step replaced, in place, by its instances."""
    instances = {name: tuple(d.instances) for name, d in drafts.items() if d.instances}
    steps: dict[str, Step] = {}
    for name, draft in drafts.items():
        step = _linked(draft.step, instances)
        if name not in instances:
            steps[name] = step
            continue
        for instance, values in draft.instances.items():
            steps[instance] = replace(step, name=instance, matrix=values, instance_of=name)
    return steps


def _linked(step: Step, instances: Mapping[str, tuple[str, ...]]) -> Step:
    """`needs: [train]` waits for every instance; a `[*]` input lists them."""
    needs = tuple(dict.fromkeys(n for need in step.needs for n in instances.get(need, (need,))))
    inputs = dict(step.inputs)
    for key, item in step.inputs.items():
        if isinstance(item, StepInput) and item.step.endswith(ALL):
            inputs[key] = replace(item, instances=instances.get(split(item.step)[0], ()))
    return replace(step, needs=needs, inputs=inputs)


def _like(value: ParamValue, default: ParamValue) -> ParamValue | None:
    """A matrix value in its param's type (an integer is taken for a number), or None."""
    if isinstance(default, bool) or isinstance(value, bool):
        return value if isinstance(default, bool) and isinstance(value, bool) else None
    if isinstance(default, float) and isinstance(value, int | float):
        return float(value)
    return value if type(value) is type(default) else None


def _kind(default: ParamValue) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[type(default)]
