"""`pull`: check a step's stored outputs out into the workspace, as `dvc pull` does."""

from __future__ import annotations

from pathlib import Path

from mlpipe.core.results import StepResult
from mlpipe.errors import UsageError
from mlpipe.frozen import frozen
from mlpipe.git.commands import find_repo, run_git
from mlpipe.git.provenance import parse_status
from mlpipe.run.prepare import Selected, prepare, workspace_path
from mlpipe.run.session import Session
from mlpipe.text import did_you_mean


@frozen(kw_only=True)
class Pulled:
    step: str
    current: bool
    """The result matches the current code, params and inputs (else it is the step's most recent one)."""
    run_id: str | None
    outputs: dict[str, str]
    """Output name -> where it was written."""
    dirtying: tuple[str, ...] = ()
    """Of what was written into the workspace, the paths git does not ignore: the next run is dirty."""


def pull(session: Session, target: str, to: Path | None = None) -> Pulled:
    pipeline = session.pipeline
    step_name, _, output_name = target.partition(".")
    if step_name not in pipeline.steps:
        fix = did_you_mean(step_name, pipeline.steps)
        raise UsageError(f"no step {step_name!r} in {pipeline.file.name}" + (f"; {fix}" if fix else ""))
    step = pipeline.steps[step_name]
    if output_name and output_name not in step.outputs:
        fix = did_you_mean(output_name, step.outputs)
        raise UsageError(f"step {step_name!r} has no output {output_name!r}" + (f"; {fix}" if fix else ""))
    prepared = prepare(
        pipeline,
        session.workspace,
        session.store,
        Selected(only=(step_name,)),
        hasher=session.hasher,
        environ=session.settings.environ,
        to_run=False,
    )
    planned = prepared.plan.steps[step_name]
    result: StepResult | None = planned.result
    current = result is not None
    if result is None:
        result = session.store.latest(pipeline.name, step_name)
    if result is None:
        raise UsageError(
            f"step {step_name!r} has no stored result; run `mlpipe ci-run --only {step_name}` first"
        )
    written: dict[str, str] = {}
    dests: list[Path] = []
    for name in [output_name] if output_name else list(step.outputs):
        output = step.outputs[name]
        if to is not None:
            dest = to / name
        elif output.path is not None:
            dest = pipeline.root / output.path
        else:
            dest = pipeline.root / name
        session.store.checkout(result.outputs[name], dest)
        written[name] = workspace_path(pipeline.root, dest.resolve())
        dests.append(dest)
    return Pulled(
        step=step_name,
        current=current,
        run_id=result.provenance.get("run_id"),
        outputs=written,
        dirtying=_not_ignored(pipeline.root, dests),
    )


def _not_ignored(root: Path, paths: list[Path]) -> tuple[str, ...]:
    """Which of `paths` `git status` now lists (untracked and not ignored, or changed): each makes the next
    run's tree dirty. Paths outside the repository, or no repository at all: none."""
    repo = find_repo(root)
    if repo is None:
        return ()
    inside = [str(p.resolve()) for p in paths if p.resolve().is_relative_to(repo.root)]
    if not inside:
        return ()
    status = run_git(
        ["--no-optional-locks", "status", "--porcelain=v2", "-z", "--untracked-files=all", "--", *inside],
        repo.root,
    )
    return parse_status(status)[2]
