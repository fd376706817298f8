"""Why a step runs again: what differs from its nearest earlier fingerprint, and where in the repository.

Pure: the earlier fingerprint comes in as data (`Earlier`, found by run/earlier.py: the base commit's run, the
step's latest stored result, or its newest recorded run) and the changed files of its code as `FileChange`s
(git/treediff.py diffs the two snapshot trees); sentences and a `Spot` for the annotation come out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from mlpipe.core import fingerprint as fp
from mlpipe.core.results import StepResult
from mlpipe.frozen import frozen
from mlpipe.spec.model import DataInput, ExternalInput, Pipeline, RepoInput, Step, StepInput
from mlpipe.text import printable

SHOWN_FILES = 5
"""Changed files a reason names; the rest are counted."""
SHOWN_CHARS = 80
"""Of a value or a name in a reason: an earlier fingerprint may come from anyone who could write the registry."""

Source = Literal["base", "latest", "run"]


@frozen(kw_only=True, eq=False, repr=False)
class Earlier:
    """A step's nearest earlier fingerprint: what a rerun is explained against."""

    parts: Mapping[str, Any]
    source: Source = "latest"
    """`base`: the base commit's run (a pull request's base, `--since`); `latest`: the step's latest stored
    result here; `run`: the newest recorded run that has the step (here or in the registry)."""
    run_id: str = ""
    commit: str = ""
    dirty: bool = False

    @staticmethod
    def of_result(result: StepResult) -> Earlier:
        prov = result.provenance
        return Earlier(
            parts=result.parts,
            source="latest",
            run_id=str(prov.get("run_id") or ""),
            commit=str(prov.get("commit") or ""),
            dirty=bool(prov.get("dirty")),
        )

    def label(self) -> str:
        """`vs base run R at C`: said after the changes, except against the step's latest result here."""
        run = f"run {self.run_id}" if self.run_id else "a run"
        at = f" at {self.commit[:10]}" if self.commit else ""
        dirty = " (dirty)" if self.dirty else ""
        return f"vs {'base ' if self.source == 'base' else ''}{run}{at}{dirty}"


@frozen(kw_only=True, eq=False, repr=False)
class FileChange:
    """A file of a step's code that changed since the stored result."""

    change: str
    """added, removed or modified."""
    path: str
    """Repository path."""
    line: int | None = None
    """The first changed line of the new file (1 for an added or binary file); None when removed or not read."""


@frozen(kw_only=True)
class Spot:
    """Where a step's change is: a line of a repository file, or (`path` None) of the pipeline file."""

    path: str | None
    line: int


CodeChanges = Callable[[str, str, str], list[FileChange] | None]
"""`(code dir, old tree, new tree)`: the changed files by repository path, or None when the old tree is unknown."""


@frozen(kw_only=True, eq=False, repr=False)
class Why:
    """Why a step runs: its reasons, and where the first change is."""

    reasons: tuple[str, ...]
    spot: Spot | None = None
    """Where the first change is, for the notice annotation; None: at the step's line."""


def what_changed(
    pipeline: Pipeline,
    step: Step,
    earlier: Earlier | None,
    new: fp.Fingerprint | None,
    code_changes: Sequence[FileChange] | None,
) -> Why:
    """What differs between the step's earlier fingerprint and its new one, first change first; `code_changes`:
    the changed files of its code, when the caller could list them."""
    if earlier is None:
        return Why(reasons=("no stored result for this step yet",))
    if new is None:
        raise ValueError("a step compared with an earlier fingerprint needs its own")
    reasons: list[str] = []
    spots: list[Spot] = []
    for part, item, old, current in fp.changes(earlier.parts, new.parts):
        if part == "code" and isinstance(old, str) and isinstance(current, str):
            files = list(code_changes or ())
            reasons.append(describe_code(old, current, files))
            spots += [Spot(path=f.path, line=f.line) for f in files or () if f.line is not None][:1]
        else:
            reasons.append(_describe(pipeline, step, part, item, old, current))
            spot = _pipeline_spot(pipeline, step, part, item)
            spots += [spot] if spot else []
    if not reasons:
        return Why(reasons=("stored result is gone (deleted or corrupt)",))
    if earlier.source != "latest":
        reasons.append(earlier.label())
    return Why(reasons=tuple(reasons), spot=spots[0] if spots else None)


def describe_code(old: str, new: str, files: list[FileChange] | None) -> str:
    """`code changed: train/train.sh modified, ...`, or the two trees when the files are not known."""
    if not files:
        return printable(f"code changed (tree {old[:10]} -> {new[:10]})")
    shown = ", ".join(f"{printable(f.path)} {f.change}" for f in files[:SHOWN_FILES])
    more = f" and {len(files) - SHOWN_FILES} more" if len(files) > SHOWN_FILES else ""
    return f"code changed: {shown}{more}"


def _describe(pipeline: Pipeline, step: Step, part: str, item: str, old: Any, new: Any) -> str:
    """Inputs name what they read and both digests; the rest as `fingerprint.describe_change` says it, each
    value and name cut short."""
    name = _cut(item)
    if part in {"inputs", "upstream"} and old is not None and new is not None:
        label = "input" if part == "inputs" else "upstream output"
        read = _input_source(step, item) if part == "inputs" else ""
        shown = f" ({printable(read)})" if read else ""
        return f"{label} {printable(name)}{shown} changed: {_short(old)} -> {_short(new)}"
    if part == "params" and old is not None and new is not None:
        return printable(f"param {name}: {_cut(repr(old))} -> {_cut(repr(new))}")
    return printable(fp.describe_change(part, name, _scalar(old), _scalar(new)))


def _input_source(step: Step, name: str) -> str:
    """What an input reads, as the pipeline file says it: a workspace path or an upstream output."""
    found = step.inputs.get(name)
    if isinstance(found, RepoInput | ExternalInput | DataInput):
        return found.path
    if isinstance(found, StepInput):
        return f"{found.step}.{found.output}"
    return ""  # a URL may hold credentials; an OCI input's digest is the one shown


def _cut(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _scalar(value: Any) -> Any:
    """A number, a boolean or None as it is; anything else as text cut short."""
    return value if value is None or isinstance(value, bool | int | float) else _cut(str(value))


def _short(digest: Any) -> str:
    text = str(digest)
    algorithm, _, hex_part = text.partition(":")
    return printable(f"{algorithm}:{hex_part[:12]}" if hex_part else text[:20])


def _pipeline_spot(pipeline: Pipeline, step: Step, part: str, item: str) -> Spot | None:
    """A changed param at its line in the pipeline file (a matrix value, at its step's), an input at its own."""
    if part == "params":
        param = pipeline.params.get(item)
        if param is not None and item not in step.matrix:
            return Spot(path=None, line=param.loc.line)
        return Spot(path=None, line=step.loc.line)
    if part == "inputs" and item in step.inputs:
        return Spot(path=None, line=step.inputs[item].loc.line)
    return None
