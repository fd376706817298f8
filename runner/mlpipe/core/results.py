"""A stored, complete step result as data: what `plan` compares against and every store keeps. Parsed from
what a store or a registry holds with every field checked (records.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlpipe import records
from mlpipe.digest import Manifest

RESULT_FORMAT = "mlpipe.result/1"


@dataclass(frozen=True, kw_only=True)
class StepResult:
    """A stored, complete step result: what a later run reuses instead of running the step."""

    fingerprint: str
    parts: Mapping[str, Any]
    outputs: Mapping[str, Manifest]
    metrics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """Output name -> metric name -> value, for `kind: metrics` outputs."""
    provenance: Mapping[str, Any] = field(default_factory=dict)
    """run_id, pipeline, step, commit, ref, dirty, created_at, duration_s of the run that produced it."""

    def output_digests(self) -> dict[str, str]:
        return {name: m.digest for name, m in self.outputs.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": RESULT_FORMAT,
            "fingerprint": self.fingerprint,
            "parts": dict(self.parts),
            "outputs": {name: m.to_json() for name, m in self.outputs.items()},
            "metrics": {name: dict(values) for name, values in self.metrics.items()},
            "provenance": dict(self.provenance),
        }

    @staticmethod
    def from_json(data: Any) -> StepResult:
        """A result record as stored, from a registry or a store several clones may share: every field is
        checked (records.py) before it can build a path, a link or a print; records.BadRecord (a
        ValueError) otherwise. Provenance fields that fail their check are dropped: they only inform."""
        data = records.obj(data, "result")
        if data.get("format") != RESULT_FORMAT:
            raise records.BadRecord(
                "result.format", f"expected {RESULT_FORMAT!r}, found {records.shown(data.get('format'))}"
            )
        fingerprint = records.sha256(records.field(data, "fingerprint", "result"), "result.fingerprint")
        parts = records.parts(records.field(data, "parts", "result"), "result.parts")
        outputs = records.obj(records.field(data, "outputs", "result"), "result.outputs")
        return StepResult(
            fingerprint=fingerprint,
            parts=parts,
            outputs={
                records.output_name(name, "result.outputs"): Manifest.from_json(m, f"result.outputs.{name}")
                for name, m in outputs.items()
            },
            metrics=records.metrics(data.get("metrics", {}), "result.metrics"),
            provenance=records.provenance(data.get("provenance")),
        )
