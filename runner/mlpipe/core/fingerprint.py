"""A step's fingerprint: sha256 over canonical JSON of everything that decides whether a result can be reused.

Pure: callers pass in the digests; nothing here reads files, the clock or the environment.
No path, run id, hostname or time enters a fingerprint, so clones at different paths share results.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlpipe.digest import bytes_sha256, canonical_json, json_digest
from mlpipe.frozen import frozen
from mlpipe.spec import refs
from mlpipe.spec.model import ParamValue, Step

SCHEMA_VERSION = 1
"""Bump when the meaning of a part changes: every old result stops matching."""


@frozen(kw_only=True)
class Fingerprint:
    """A step's reuse key and the parts it was computed over."""

    key: str
    """64 hex digits."""
    parts: dict[str, Any]
    """What the key was computed over; stored in run records so `plan` can name what changed."""


def tokenize(template: str) -> list[Any]:
    """A template with each reference replaced by a stable token naming it (values live in other parts)."""
    tokens: list[Any] = []
    for part in refs.parse(template):
        if isinstance(part, str):
            tokens.append(part)
        elif part.scope == "steps":
            tokens.append({"steps": f"{part.step}.{part.name}"})
        else:
            tokens.append({part.scope: part.name})
    return tokens


def used_params(step: Step) -> list[str]:
    names = [r.name for t in (step.run, *step.env.values()) for r in refs.refs(t) if r.scope == "params"]
    return sorted(set(names))


def used_upstream(step: Step) -> list[str]:
    """`S.O` for every `${{ steps.S.outputs.O }}` written directly in `run` or `env`."""
    names = [f"{r.step}.{r.name}" for t in (step.run, *step.env.values()) for r in refs.step_refs(t)]
    return sorted(set(names))


def compute(
    step: Step,
    *,
    params: Mapping[str, ParamValue],
    input_digests: Mapping[str, str],
    upstream_digests: Mapping[str, str],
    code_tree: str,
    environment_digests: Mapping[str, str],
    platform: str,
    image: str | None = None,
) -> Fingerprint:
    """`input_digests`: declared input name -> digest; `upstream_digests`: 'S.O' -> digest for direct refs."""
    parts: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "run": tokenize(step.run),
        # Env values may hold secrets: only their digests are kept, here and in run records.
        "env": {name: "sha256:" + bytes_sha256(canonical_json(tokenize(v))) for name, v in step.env.items()},
        "params": {name: params[name] for name in used_params(step)},
        "inputs": dict(input_digests),
        "upstream": {ref: upstream_digests[ref] for ref in used_upstream(step)},
        "outputs": {o.name: {"type": o.type, "kind": o.kind} for o in step.outputs.values()},
        "code": code_tree,
        "environment": dict(environment_digests),
        "image": image,
        "platform": platform,
    }
    if step.matrix:  # an instance of a matrix step (the part is absent otherwise: older results stay valid)
        parts["matrix"] = dict(step.matrix)
    return Fingerprint(key=json_digest(parts).removeprefix("sha256:"), parts=parts)


_LABELS = {
    "run": "command",
    "env": "env",
    "params": "param",
    "inputs": "input",
    "upstream": "upstream output",
    "outputs": "declared output",
    "environment": "environment file",
}


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, str, Any, Any]]:
    """What differs between two fingerprints' parts: (part, item, old value, new value), item '' for scalars."""
    found: list[tuple[str, str, Any, Any]] = []
    for part in sorted(set(old) | set(new), key=lambda p: list(_ORDER).index(p) if p in _ORDER else 99):
        a, b = old.get(part), new.get(part)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for item in sorted(set(a) | set(b)):
                if a.get(item) != b.get(item):
                    found.append((part, item, a.get(item), b.get(item)))
        else:
            found.append((part, "", a, b))
    return found


_ORDER = (
    "schema",
    "code",
    "params",
    "inputs",
    "upstream",
    "run",
    "env",
    "environment",
    "outputs",
    "image",
    "platform",
)


def describe_change(part: str, item: str, old: Any, new: Any) -> str:
    """One short sentence for a changed part, as `plan` prints it."""
    label = _LABELS.get(part, part)
    if part == "params":
        if old is None or new is None:
            return f"param {item} {'now used' if old is None else 'no longer used'}"
        return f"param {item}: {old!r} -> {new!r}"
    if part == "environment" and item.startswith("<") and old is not None and new is not None:
        # `environment: {python: true}`: the interpreter's version, or a digest of its packages
        return f"{item[1:-1]} changed" + ("" if str(new).startswith("sha256:") else f": {old} -> {new}")
    if part in {"inputs", "upstream", "environment", "env", "outputs"}:
        if old is None:
            return f"{label} {item} added"
        if new is None:
            return f"{label} {item} removed"
        return f"{label} {item} changed"
    if part == "run":
        return "command changed"
    if part == "code":
        return f"code changed ({str(old)[:12]} -> {str(new)[:12]})"
    if part == "schema":
        return "cache schema version changed"
    return f"{label} changed: {old} -> {new}"
