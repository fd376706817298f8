"""Finding a step's nearest earlier fingerprint, which `plan` and the runner name a change against: the base
commit's run (a pull request's base, `--since`), else the step's latest stored result here, else the newest
recorded run that has the step (here, then in the registry). The I/O half; core/reasons.py is the pure half.

Run records from a registry are anyone's work who could write it: a step's parts, run id and commit pass their
checks (records.py) before they are compared or printed, and one that fails is passed over.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable
from typing import Any

from mlpipe import records
from mlpipe.cache.base import ResultStore
from mlpipe.core.reasons import Earlier, Source
from mlpipe.errors import MlpipeError
from mlpipe.runs import RunRecord

HISTORY_LIMIT = 20
"""Local run records looked through for a step without a stored result."""
REGISTRY_LIMIT = 5
"""Run records fetched from the registry, once, when nothing here has the step."""


class EarlierFinder:
    """`(step) -> Earlier | None`, each answer kept: the plan and the runner ask about the same steps."""

    def __init__(
        self,
        pipeline: str,
        store: ResultStore,
        *,
        base: RunRecord | None = None,
        history: Callable[[], Iterable[RunRecord]] = lambda: (),
        remote: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        """`history`: this clone's run records, newest first; `remote`: the registry's newest run records."""
        self.pipeline = pipeline
        self.store = store
        self.base = base if base is not None and base.pipeline == pipeline else None
        self.history = history
        self.remote = remote
        self._remote_records: list[RunRecord] | None = None
        self._found: dict[str, Earlier | None] = {}

    def __call__(self, step: str) -> Earlier | None:
        if step not in self._found:
            self._found[step] = self._find(step)
        return self._found[step]

    def _find(self, step: str) -> Earlier | None:
        if self.base is not None:
            found = from_record(self.base, step, "base")
            if found is not None:
                return found
        latest = self.store.latest(self.pipeline, step)
        if latest is not None:
            return Earlier.of_result(latest)
        mine = (r for r in self.history() if r.pipeline == self.pipeline and r.status != "running")
        for record in itertools.islice(mine, HISTORY_LIMIT):
            found = from_record(record, step, "run")
            if found is not None:
                return found
        for record in self._registry():
            found = from_record(record, step, "run")
            if found is not None:
                return found
        return None

    def _registry(self) -> list[RunRecord]:
        if self._remote_records is None:
            self._remote_records = []
            if self.remote is not None:
                try:
                    fetched = self.remote()
                except (
                    MlpipeError
                ):  # naming the change is extra: an unreachable registry leaves the plain reason
                    fetched = []
                for data in fetched:
                    with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
                        record = RunRecord.from_json(data)
                        if record.pipeline == self.pipeline:
                            self._remote_records.append(record)
        return self._remote_records


def from_record(record: RunRecord, step: str, source: Source) -> Earlier | None:
    """The step's fingerprint in a run record, checked; None when the record lacks it or it fails a check."""
    found = record.steps.get(step)
    if found is None or found.parts is None:
        return None
    try:
        parts = records.parts(found.parts, f"run {record.run_id}: steps.{step}.parts")
    except records.BadRecord:
        return None
    commit = record.git.get("commit") if isinstance(record.git, dict) else None
    return Earlier(
        parts=parts,
        source=source,
        run_id=record.run_id
        if isinstance(record.run_id, str) and records.RUN_ID.fullmatch(record.run_id)
        else "",
        commit=commit if isinstance(commit, str) and records.COMMIT.fullmatch(commit) else "",
        dirty=bool(record.git.get("dirty")) if isinstance(record.git, dict) else False,
    )
