"""Runs a step in a container through the Docker Engine API: Docker, or podman's compatible API service.

`DOCKER_HOST` is honoured (the docker SDK's `from_env`). Each step gets its own container, created from the
image id resolved at plan time, with the code snapshot, inputs and outputs bind-mounted; the container is a
context manager, so it is removed however the step ends (exit, timeout, Ctrl-C). The `docker` package is
imported only inside functions: `mlpipe --help` and `mlpipe plan` without images never load it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from mlpipe.errors import ContainerError, MlpipeError, present
from mlpipe.events import Sink, message, to_stderr
from mlpipe.executors.base import (
    MAX_LINE_BYTES,
    ContainerSpec,
    Mount,
    Placed,
    StepOutcome,
    StepPaths,
    StepRequest,
)
from mlpipe.executors.lines import LineSplitter
from mlpipe.executors.orphans import Owner, owner_labels, remove_orphans
from mlpipe.executors.steplog import StepLog
from mlpipe.executors.stopping import Stopper
from mlpipe.frozen import frozen

__lazy_modules__ = ["docker"]

CODE_DIR = "/mlpipe/code"
INPUTS_DIR = "/mlpipe/inputs"
OUTPUTS_DIR = "/mlpipe/outputs"
LABEL = "io.mlpipe.step"

# bash with errexit and pipefail where the image has it, as on the host; plain `sh -e` otherwise.
_SHELL = (
    # stderr joins stdout, as on the host: one stream, so a line of one is never cut by a chunk of the other
    'exec 2>&1; if command -v bash >/dev/null 2>&1; then exec bash --noprofile --norc -eo pipefail -c "$1"; fi; '
    'exec sh -e -c "$1"'
)
_DRAIN_IDLE_S = 10.0
"""After the container exits, its log stream is read to the end while lines keep coming; this long without
one, what is left is given up (an engine whose stream never ends)."""
_ENGINE_ERROR_EXIT = 125
"""What `docker run` exits with when the engine, not the command, failed."""


def container_argv(command: str) -> list[str]:
    return ["/bin/sh", "-c", _SHELL, "mlpipe-step", command]


# -- images ----------------------------------------------------------------------------------------------------
def client() -> Any:
    """A docker SDK client for `DOCKER_HOST` (or the default socket), or a ContainerError saying why not."""
    import docker

    # Named as the SDK's from_env reads it (the SDK's setting, not mlpipe's), for the message only.
    where = os.environ.get("DOCKER_HOST") or "the default socket (DOCKER_HOST is not set)"
    try:
        return docker.from_env()
    except docker.errors.DockerException as error:
        raise ContainerError(
            f"cannot reach the container engine at {where}: {error}; start Docker, or podman's API service "
            "(podman system service), and point DOCKER_HOST at it"
        ) from None


def build_image(context: Path, dockerfile: str, tag: str, *, shown: str) -> bool:
    """Build `tag` from `context` unless the engine has it already; True when it was built.

    `shown`: the context as the pipeline names it, for messages."""
    import docker

    engine = client()
    try:
        try:
            engine.images.get(tag)
            return False
        except docker.errors.ImageNotFound:
            pass
        try:
            engine.images.build(
                path=os.fspath(context), dockerfile=dockerfile, tag=tag, rm=True, forcerm=True
            )
        except docker.errors.BuildError as error:
            log = [str(item.get("stream") or item.get("error") or "").strip() for item in error.build_log]
            why = str(error.msg).strip() or "; ".join(line for line in log if line)[-500:]
            raise ContainerError(f"building the image from {shown!r} failed: {why}") from None
        except docker.errors.APIError as error:
            raise ContainerError(f"building the image from {shown!r} failed: {error.explanation}") from None
        return True
    finally:
        engine.close()


# -- the container's request -----------------------------------------------------------------------------------
@frozen(kw_only=True)
class Engine:
    """What the executor needs to know about the engine, asked once."""

    rootless: bool
    podman: bool
    own_mounts: tuple[tuple[str, str], ...] = ()
    """When mlpipe itself runs in a container: (path in here, path on the engine's host) per bind mount."""

    @staticmethod
    def inspect(engine: Any) -> Engine:
        info = engine.info()
        version = engine.version()
        components = {str(c.get("Name", "")) for c in version.get("Components") or []}
        return Engine(
            # Docker says `name=rootless`; podman says `rootless` in its host info.
            rootless="name=rootless" in (info.get("SecurityOptions") or [])
            or bool((info.get("Host") or {}).get("Security", {}).get("rootless")),
            podman=any("podman" in name.lower() for name in components),
            own_mounts=_own_mounts(engine),
        )


def _own_mounts(engine: Any) -> tuple[tuple[str, str], ...]:
    """Bind mounts of the container mlpipe runs in, if it runs in one the engine knows (found by hostname)."""
    import docker

    if not (Path("/.dockerenv").exists() or Path("/run/.containerenv").exists()):
        return ()
    try:
        attrs = engine.containers.get(socket.gethostname()).attrs
    except docker.errors.DockerException:
        return ()  # not one of this engine's containers: paths here are the engine's paths
    return tuple(
        (str(m["Destination"]), str(m["Source"]))
        for m in attrs.get("Mounts") or []
        if m.get("Destination") and m.get("Source")
    )


def host_path(path: str, own_mounts: Sequence[tuple[str, str]]) -> str:
    """A path in mlpipe's own container as the engine's host sees it (longest matching mount wins)."""
    best: tuple[str, str] | None = None
    for inside, outside in own_mounts:
        if (path == inside or path.startswith(inside.rstrip("/") + "/")) and (
            best is None or len(inside) > len(best[0])
        ):
            best = (inside, outside)
    if best is None:
        return path
    rest = path[len(best[0].rstrip("/")) :]
    return best[1].rstrip("/") + rest if rest else best[1]


PODMAN_ULIMITS = {"nofile": (1024, 4096), "nproc": (1024, 4096)}
"""podman's API applies none of containers.conf's default ulimits, and asks runc for limits above the engine's
own where those are low (runc then fails: `error setting rlimit type 6`); Docker applies its daemon's."""


def default_ulimits(engine: Engine) -> dict[str, tuple[int, int]]:
    return dict(PODMAN_ULIMITS) if engine.podman else {}


def create_args(request: StepRequest, engine: Engine) -> dict[str, Any]:
    """The keyword arguments of `containers.create` for a step: the request body the engine receives."""
    from docker.types import DeviceRequest, Ulimit
    from docker.types import Mount as DockerMount

    spec = present(request.container, "a container step without its container")
    args: dict[str, Any] = {
        "image": spec.image,
        "command": container_argv(request.command),
        "working_dir": CODE_DIR,
        "environment": dict(request.env),
        "mounts": [
            DockerMount(
                m.target, host_path(str(m.source), engine.own_mounts), type="bind", read_only=m.read_only
            )
            for m in spec.mounts
        ],
        "labels": {LABEL: request.step, **spec.labels, **owner_labels()},
        "init": True,  # signals reach the step's process: PID 1 ignores SIGINT/SIGTERM without a handler
        "detach": True,
        "tty": False,
        "stdin_open": False,
    }
    user = spec.user or (None if engine.rootless else f"{os.getuid()}:{os.getgid()}")
    if user is not None:
        args["user"] = user
    ulimits = {**default_ulimits(engine), **spec.ulimits}
    if ulimits:
        args["ulimits"] = [Ulimit(name=n, soft=s, hard=h) for n, (s, h) in sorted(ulimits.items())]
    if spec.shm_size is not None:
        args["shm_size"] = spec.shm_size
    if spec.network is not None:
        args["network_mode"] = spec.network
    if request.gpus:
        args["device_requests"] = [DeviceRequest(device_ids=list(request.gpus), capabilities=[["gpu"]])]
    return args


# -- running ---------------------------------------------------------------------------------------------------
class Container:
    """A created container that is removed on exit, whatever happened."""

    def __init__(self, engine: Any, args: Mapping[str, Any]) -> None:
        self.engine = engine
        self.args = args
        self.container: Any = None

    def __enter__(self) -> Any:
        self.container = self.engine.containers.create(**self.args)
        return self.container

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.container is None:
            return
        import docker

        with contextlib.suppress(docker.errors.NotFound):
            self.container.remove(force=True)
        self.container = None


class DockerExecutor:
    def __init__(self, sink: Sink = to_stderr) -> None:
        """`sink` hears which containers of ended mlpipe processes were removed."""
        self.sink = sink
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def connect(self) -> tuple[Any, Engine]:
        """A client of its own for one step (its log and wait streams hold connections), and the engine facts."""
        engine = client()
        with self._lock:
            if self._engine is None:
                self._engine = Engine.inspect(engine)
                report_removed_orphans(remove_orphans(engine), self.sink)
            return engine, self._engine

    def place(self, paths: StepPaths, container: ContainerSpec | None) -> Placed:
        """The code, inputs and outputs mounted at fixed places in the container (CODE_DIR, INPUTS_DIR/name,
        OUTPUTS_DIR/name), before the step's own `mounts:`."""
        if container is None:
            raise ValueError("a step without `image:` runs on the host, not in a container")
        mounts = container_mounts(paths.code, paths.inputs, paths.outputs_dir, container.mounts)
        seen = StepPaths(
            code=Path(CODE_DIR),
            outputs_dir=Path(OUTPUTS_DIR),
            inputs=container_paths(paths.inputs, INPUTS_DIR),
            outputs=container_paths(paths.outputs, OUTPUTS_DIR),
        )
        return Placed(paths=seen, container=replace(container, mounts=mounts))

    def start(self, request: StepRequest) -> ContainerStep:
        return ContainerStep(request, self)


def report_removed_orphans(removed: Sequence[tuple[Any, Owner]], sink: Sink = to_stderr) -> None:
    if removed:
        names = ", ".join(f"{c.name} (step {c.labels.get(LABEL)}, pid {owner.pid})" for c, owner in removed)
        sink(message(f"removed containers left by mlpipe processes that ended: {names}"))


class ContainerStep:
    def __init__(self, request: StepRequest, executor: DockerExecutor) -> None:
        self.request = request
        self._started = time.monotonic()
        self._exited = threading.Event()
        self._status: int | None = None
        self._stopper = Stopper(
            send=lambda sig: self._kill(sig.name),
            ended=self._exited.wait,
            timeout_s=request.timeout_s,
            grace_s=request.kill_grace_s,
        )
        self._error: str | None = None
        self._engine: Any = None
        self._box: Container | None = None
        self.container: Any = None
        self._log = StepLog(request)
        self._output: Any = None
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._waiter = threading.Thread(target=self._wait_exit, daemon=True)
        try:
            self._create(executor)
        except MlpipeError as error:
            self._error = str(error)
        except Exception as error:  # noqa: BLE001 - the engine's refusal is the step's error
            self._error = f"the container engine could not start the step: {_explain(error)}"
        if self._error is not None:
            self._remove()
            self.container = None
            return
        self._reader.start()
        self._waiter.start()

    def _create(self, executor: DockerExecutor) -> None:
        require_sources(present(self.request.container, "a container step without its container").mounts)
        self._engine, facts = executor.connect()
        self._box = Container(self._engine, create_args(self.request, facts))
        self.container = self._box.__enter__()
        # Attached before it starts, as `docker run` does: podman's followed log stream loses lines under load
        # (thousands of a 20,000-line burst) where its attach stream, like its full log, has every one.
        self._output = self.container.attach(stdout=True, stderr=True, stream=True, logs=True)
        self.container.start()

    def _pump(self) -> None:
        lines = LineSplitter(MAX_LINE_BYTES)
        try:
            for chunk in self._output:
                for raw in lines.feed(chunk):
                    self._log.line(raw)
        except Exception:  # noqa: BLE001, S110 - the stream ends when the container is removed
            pass
        for raw in lines.close():
            self._log.line(raw)

    def _drain(self) -> None:
        """Wait for the reader to reach the end of the output stream: removing the container cuts it off."""
        seen = -1
        while self._reader.is_alive() and seen != self._log.lines:
            seen = self._log.lines
            self._reader.join(timeout=_DRAIN_IDLE_S)

    def _wait_exit(self) -> None:
        try:
            self._status = int(self.container.wait(timeout=None)["StatusCode"])
        except Exception as error:  # noqa: BLE001 - reported as the step's error
            self._error = f"lost the container while waiting for it: {_explain(error)}"
        finally:
            self._exited.set()

    def wait(self) -> StepOutcome:
        if self.container is None:
            self._log.close()
            return StepOutcome(exit_code=_ENGINE_ERROR_EXIT, duration_s=0.0, error=self._error)
        self._stopper.wait()
        self._drain()
        self._remove()
        self._log.close()
        code = self._status if self._status is not None else _ENGINE_ERROR_EXIT
        return StepOutcome(
            exit_code=code,
            duration_s=time.monotonic() - self._started,
            timed_out=self._stopper.timed_out,
            cancelled=self._stopper.cancelled,
            error=self._stopper.timeout_error() or self._error,
        )

    def cancel(self) -> None:
        if self.container is not None:
            self._stopper.cancel()

    def _kill(self, sig: str) -> None:
        with contextlib.suppress(Exception):  # already gone
            self.container.kill(signal=sig)

    def _remove(self) -> None:
        if self._box is not None:
            with contextlib.suppress(Exception):
                self._box.__exit__(None, None, None)
        if self._engine is not None:
            self._engine.close()
            self._engine = None


def require_sources(mounts: Iterable[Mount]) -> None:
    """podman makes a missing bind source, empty and owned by root (Docker refuses one): refuse it first."""
    missing = [str(m.source) for m in mounts if not os.path.exists(m.source)]
    if missing:
        raise ContainerError(f"cannot bind-mount {', '.join(missing)} into the step's container: not found")


def _explain(error: BaseException) -> str:
    return str(getattr(error, "explanation", None) or error)


def container_mounts(
    code: Path, inputs: Mapping[str, Path], outputs_dir: Path, extra: Iterable[Mount] = ()
) -> tuple[Mount, ...]:
    """The code snapshot and inputs read-only, the outputs directory writable, then any extra mounts."""
    mounts = [Mount(source=code, target=CODE_DIR)]
    mounts += [Mount(source=path, target=f"{INPUTS_DIR}/{name}") for name, path in sorted(inputs.items())]
    mounts.append(Mount(source=outputs_dir, target=OUTPUTS_DIR, read_only=False))
    return (*mounts, *extra)


def container_paths(names: Iterable[str], top: str) -> dict[str, Path]:
    return {name: Path(f"{top}/{name}") for name in names}
