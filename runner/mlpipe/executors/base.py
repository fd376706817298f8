"""The executor interface: a StepRequest goes in, a StepOutcome comes out."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import Protocol

from mlpipe.frozen import frozen
from mlpipe.ownvars import step_environment


@frozen(kw_only=True)
class Mount:
    """A host path bind-mounted into a step's container."""

    source: Path
    target: str
    read_only: bool = True


@frozen(kw_only=True)
class ContainerSpec:
    """How a step runs in a container; the request's command, env and timeout still apply."""

    image: str
    """What to run: the image id resolved at plan time, so a tag moved during the run changes nothing."""
    image_ref: str
    """The image as the pipeline names it, for messages."""
    mounts: tuple[Mount, ...] = ()
    """The step's `mounts:`; once placed (`Executor.place`), its code, inputs and outputs before them."""
    shm_size: str | None = None
    ulimits: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """name -> (soft, hard)."""
    user: str | None = None
    """None: the caller's uid:gid, unless the engine is rootless."""
    network: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


MAX_LINE_BYTES = 1 << 20
"""A step's output line longer than this is passed on (and logged) in pieces: a step that prints without a
newline cannot make mlpipe hold its whole output in memory."""


@frozen(kw_only=True)
class StepRequest:
    step: str
    command: str
    """The substituted `run:` line, given to a shell."""
    cwd: Path
    env: Mapping[str, str]
    """The complete environment of the step, less mlpipe's own variables (`mlpipe.ownvars`): the runner builds
    it without them, and the request drops them again, so no executor can pass them on."""
    log_path: Path
    on_line: Callable[[str, str], None] = lambda step, line: None
    """Called with (step, line) for every line of output, as it arrives."""
    rewrites: Sequence[tuple[str, str]] = ()
    """(prefix, replacement) applied to output lines: materialized snapshot paths become repo paths."""
    timeout_s: float | None = None
    kill_grace_s: float = 10.0
    """How long a stopped step gets after SIGINT, and again after SIGTERM, before the next signal."""
    gpus: tuple[str, ...] = field(default_factory=tuple)
    """GPU indices (as nvidia-smi numbers them) the step may use; a container gets exactly these devices."""
    container: ContainerSpec | None = None
    """Set for a step with `image:`: it runs in a container (the docker executor)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", step_environment(self.env))


@frozen(kw_only=True)
class StepOutcome:
    exit_code: int
    duration_s: float
    timed_out: bool = False
    cancelled: bool = False
    error: str | None = None
    """Why the step could not be started or finished, when the exit code alone does not say."""


@frozen(kw_only=True)
class StepPaths:
    """Where a step's code (its working directory), inputs and outputs are: on this machine, or as the step
    sees them where it runs."""

    code: Path
    outputs_dir: Path
    """Holds every output: `outputs[name]` is `outputs_dir / name`."""
    inputs: Mapping[str, Path] = field(default_factory=dict)
    outputs: Mapping[str, Path] = field(default_factory=dict)


@frozen(kw_only=True)
class Placed:
    """A step's paths as it sees them, and its container with everything mounted (None: on this machine)."""

    paths: StepPaths
    container: ContainerSpec | None = None


class RunningStep(Protocol):
    def wait(self) -> StepOutcome: ...

    def cancel(self) -> None:
        """Stop the step (thread-safe, returns at once); wait() then reports cancelled."""
        ...


class Executor(Protocol):
    def place(self, paths: StepPaths, container: ContainerSpec | None) -> Placed:
        """Where the step will see its code, inputs and outputs (host paths here), with the container that
        mounts them there; the step's command and environment are written with the paths placed."""
        ...

    def start(self, request: StepRequest) -> RunningStep: ...
