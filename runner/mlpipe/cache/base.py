"""What every result store does: look up by fingerprint, publish from staged outputs, materialize outputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlpipe.cache import records
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
        checked (cache/records.py) before it can build a path, a link or a print; records.BadRecord (a
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


@dataclass(frozen=True, kw_only=True)
class Published:
    result: StepResult
    """The entry now stored under the fingerprint (an earlier one wins over ours)."""
    already_stored: bool
    nondeterministic: bool
    """An entry existed with the same fingerprint but other output digests."""


class ResultStore(Protocol):
    def lookup(self, fingerprint: str) -> StepResult | None: ...

    def publish(self, result: StepResult, staged: Mapping[str, Path]) -> Published:
        """Store the staged outputs' content, then the result entry, atomically and last."""
        ...

    def materialize(self, manifest: Manifest, name: str) -> Path:
        """A read-only path holding the output's content, shared by every reader."""
        ...

    def checkout(self, manifest: Manifest, dest: Path) -> None:
        """A writable copy of the output at `dest`, replacing what was there."""
        ...

    def latest(self, pipeline: str, step: str) -> StepResult | None:
        """The most recently produced or reused result of this step, for `plan` to compare against."""
        ...

    def set_latest(self, pipeline: str, step: str, fingerprint: str) -> None: ...
