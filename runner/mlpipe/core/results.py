"""A stored, complete step result as data: what `plan` compares against and every store keeps. Parsed from
what a store or a registry holds with every field checked (records.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Any

from mlpipe import records
from mlpipe.digest import Manifest
from mlpipe.frozen import frozen
from mlpipe.jsonstream import Scanner

RESULT_FORMAT = "mlpipe.result/1"


@frozen(kw_only=True)
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
        _format(data.get("format"))
        outputs = records.obj(records.field(data, "outputs", "result"), "result.outputs")
        return StepResult._checked(
            data,
            {
                records.output_name(name, "result.outputs"): Manifest.from_json(m, f"result.outputs.{name}")
                for name, m in outputs.items()
            },
        )

    @staticmethod
    def read(scanner: Scanner, where: str = "result") -> StepResult:
        """A result record as `from_json` takes it, read from `scanner`: each output's manifest an entry at a time
        (Manifest.read), so a record of 100,000 files is never held as JSON, parsed or not."""
        data: dict[str, Any] = {}
        outputs: dict[str, Manifest] | None = None
        for key in scanner.members(where):
            if key != "outputs":
                data[key] = scanner.value()
                if key == "format":  # before the outputs (keys are sorted): another format is read no further
                    _format(data[key])
                elif key == "fingerprint":
                    records.sha256(data[key], "result.fingerprint")
                continue
            outputs = {}
            for name in scanner.members(f"{where}.outputs"):
                records.output_name(name, f"{where}.outputs")
                outputs[name] = Manifest.read(scanner, f"{where}.outputs.{name}")
        return StepResult._checked(data, outputs)

    @staticmethod
    def _checked(data: dict[str, Any], outputs: dict[str, Manifest] | None) -> StepResult:
        """The result of a record whose outputs are read and checked: its other fields checked."""
        _format(data.get("format"))
        fingerprint = records.sha256(records.field(data, "fingerprint", "result"), "result.fingerprint")
        parts = records.parts(records.field(data, "parts", "result"), "result.parts")
        if outputs is None:
            raise records.BadRecord("result", "no 'outputs'")
        return StepResult(
            fingerprint=fingerprint,
            parts=parts,
            outputs=outputs,
            metrics=records.metrics(data.get("metrics", {}), "result.metrics"),
            provenance=records.provenance(data.get("provenance")),
        )


def _format(value: Any) -> None:
    if value != RESULT_FORMAT:
        raise records.BadRecord("result.format", f"expected {RESULT_FORMAT!r}, found {records.shown(value)}")
