"""The executor contract: every backend of `executors.base.Executor` passes the same tests.

Each test drives the protocol directly (StepRequest -> RunningStep -> StepOutcome) against the host executor and
the docker executor (podman's Docker API, the `engine` fixture, on its busybox test image). A new executor is
added as one more `Backend` in `backend` below and must pass every test here unchanged.

The step sees its code directory (read-only), one input directory (read-only) and one writable output
directory; on the host these are the paths themselves, in a container the mounts `run/` gives a step with
`image:`. Every wait is bounded: `finish` fails a test whose step does not end.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlpipe.executors.base import ContainerSpec, Executor, RunningStep, StepOutcome, StepPaths, StepRequest
from mlpipe.executors.docker import DockerExecutor
from mlpipe.executors.host import HostExecutor

IMAGE = "mlpipe-test/busybox:1"
WAIT_S = 60.0
"""The longest any step here may take to end, once it should: a step still running then fails the test."""
GRACE_S = 0.5


@dataclass
class Lines:
    """What `on_line` received, and an event for the first line holding `ready`."""

    seen: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def __call__(self, step: str, line: str) -> None:
        self.seen.append(line)
        if "ready" in line:
            self.ready.set()


@dataclass
class Backend:
    """One executor and how a step request is built for it: the one place a backend is constructed."""

    name: str
    executor: Executor
    workdir: Path
    make_container: Callable[[], ContainerSpec | None]
    """The step's container before it is placed (None: the host); `Executor.place` mounts its paths."""
    """(code, input, outputs) -> the container spec, None on the host."""
    read_only_code: bool
    """Whether the step is refused a write to its code and input directories (see the host's note below)."""

    def request(
        self,
        command: str,
        *,
        env: dict[str, str] | None = None,
        timeout_s: float | None = None,
        on_line: Lines | None = None,
        code: Path | None = None,
    ) -> StepRequest:
        code = code if code is not None else self.workdir / "code"
        here = StepPaths(
            code=code, outputs_dir=self.workdir / "outputs", inputs={"input": self.workdir / "input"}
        )
        placed = self.executor.place(here, self.make_container())  # where the step sees them (the protocol)
        container, seen = placed.container, placed.paths
        paths = {"INPUT": str(seen.inputs["input"]), "OUT": str(seen.outputs_dir)}
        base = {"PATH": os.environ["PATH"]} if container is None else {}
        return StepRequest(
            step="s",
            command=command,
            cwd=code,
            env={**base, **paths, **(env or {})},
            log_path=self.workdir / "logs" / "s.log",
            on_line=on_line or Lines(),
            timeout_s=timeout_s,
            kill_grace_s=GRACE_S,
            container=container,
        )

    def log(self) -> list[str]:
        return (self.workdir / "logs" / "s.log").read_bytes().decode().splitlines()


def _read_only_tree(top: Path, files: dict[str, str]) -> Path:
    """A directory of read-only files in read-only directories, as run/ gives a step its code copy."""
    for rel, text in files.items():
        path = top / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o444)
    for dirpath, _dirs, _files in os.walk(top, topdown=False):
        os.chmod(dirpath, 0o555)
    return top


@pytest.fixture(params=["host", "docker"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    _read_only_tree(tmp_path / "code", {"data.txt": "from the code\n", "sub/deep.txt": "deep\n"})
    _read_only_tree(tmp_path / "input", {"in.txt": "from the input\n"})
    (tmp_path / "outputs").mkdir()
    if request.param == "host":
        # Read-only by its mode bits only, as run/ makes a step's private code copy: root writes through them.
        yield Backend("host", HostExecutor(), tmp_path, lambda: None, os.getuid() != 0)
    else:
        engine = request.getfixturevalue("engine")
        image_id = engine.image_id(IMAGE)

        def spec() -> ContainerSpec:
            return ContainerSpec(image=image_id, image_ref=IMAGE)

        yield Backend("docker", DockerExecutor(), tmp_path, spec, True)
    for dirpath, _dirs, _files in os.walk(tmp_path):
        os.chmod(dirpath, 0o755)  # so pytest can remove it


def finish(running: RunningStep) -> StepOutcome:
    """`running.wait()`, failing the test if the step has not ended within WAIT_S."""
    got: list[StepOutcome] = []
    waiter = threading.Thread(target=lambda: got.append(running.wait()), daemon=True)
    waiter.start()
    waiter.join(WAIT_S)
    if not got:
        running.cancel()
        waiter.join(WAIT_S)
        pytest.fail(f"the step did not end within {WAIT_S:g}s")
    return got[0]


def run(backend: Backend, command: str, **kwargs: object) -> StepOutcome:
    return finish(backend.executor.start(backend.request(command, **kwargs)))  # type: ignore[arg-type]


class TestExecutorContract:
    def test_exit_code_output_lines_and_log(self, backend: Backend) -> None:
        lines = Lines()
        outcome = run(backend, "echo to stdout\necho to stderr >&2\nexit 3", on_line=lines)
        assert (outcome.exit_code, outcome.timed_out, outcome.cancelled, outcome.error) == (
            3,
            False,
            False,
            None,
        )
        assert lines.seen == ["to stdout", "to stderr"] or sorted(lines.seen) == ["to stderr", "to stdout"]
        assert sorted(backend.log()) == ["to stderr", "to stdout"]

    def test_success_is_exit_zero_and_errexit_applies(self, backend: Backend) -> None:
        assert run(backend, "true").exit_code == 0
        lines = Lines()
        outcome = run(backend, "false\necho not reached", on_line=lines)
        assert outcome.exit_code == 1
        assert lines.seen == []

    def test_the_request_env_reaches_the_step_without_mlpipe_secrets(self, backend: Backend) -> None:
        lines = Lines()
        env = {"STEP_VAR": "a value with spaces", "MLPIPE_REGISTRY_PASSWORD": "s3cret"}
        outcome = run(
            backend,
            'echo "var=$STEP_VAR"\necho "secret=${MLPIPE_REGISTRY_PASSWORD:-unset}"',
            env=env,
            on_line=lines,
        )
        assert outcome.exit_code == 0
        assert lines.seen == ["var=a value with spaces", "secret=unset"]

    def test_the_step_runs_in_its_code_dir_reads_inputs_and_writes_outputs(self, backend: Backend) -> None:
        lines = Lines()
        command = 'cat data.txt sub/deep.txt "$INPUT/in.txt"\necho made > "$OUT/made.txt"'
        outcome = run(backend, command, on_line=lines)
        assert outcome.exit_code == 0, backend.log()
        assert lines.seen == ["from the code", "deep", "from the input"]
        assert (backend.workdir / "outputs/made.txt").read_text() == "made\n"

    def test_code_and_inputs_are_read_only_to_the_step(self, backend: Backend) -> None:
        lines = Lines()
        command = (
            'for target in new.txt data.txt "$INPUT/new.txt" "$INPUT/in.txt"; do\n'
            '  (echo changed >> "$target") 2>/dev/null && echo "wrote $target" || echo "refused $target"\n'
            "done"
        )
        outcome = run(backend, command, on_line=lines)
        assert outcome.exit_code == 0, backend.log()
        wrote = [line for line in lines.seen if line.startswith("wrote")]
        if backend.read_only_code:
            assert wrote == [], lines.seen
            assert (backend.workdir / "code/data.txt").read_text() == "from the code\n"
            assert (backend.workdir / "input/in.txt").read_text() == "from the input\n"
            assert not (backend.workdir / "code/new.txt").exists()
        else:  # the host as root: mode bits do not stop root (run/ gives each step a private copy for this)
            assert len(wrote) == 4, lines.seen

    def test_a_step_that_cannot_start_is_an_outcome_with_an_error(self, backend: Backend) -> None:
        outcome = run(backend, "echo never", code=backend.workdir / "no-such-dir")
        assert outcome.exit_code != 0
        assert outcome.error and "no-such-dir" in outcome.error, outcome.error
        assert not outcome.timed_out and not outcome.cancelled

    def test_timeout_stops_the_step_and_is_recorded(self, backend: Backend) -> None:
        lines = Lines()
        outcome = run(backend, "echo ready\nsleep 600\necho not reached", timeout_s=1, on_line=lines)
        assert outcome.timed_out and not outcome.cancelled
        assert outcome.exit_code != 0
        assert outcome.error is not None and "timed out" in outcome.error
        assert lines.seen == ["ready"]

    def test_timeout_kills_a_step_that_ignores_sigint_and_sigterm(self, backend: Backend) -> None:
        lines = Lines()
        command = "trap '' INT TERM\necho ready\nsleep 600\necho not reached"
        outcome = run(backend, command, timeout_s=1, on_line=lines)
        assert outcome.timed_out
        assert outcome.exit_code != 0
        assert lines.seen == ["ready"]

    def test_cancel_escalates_sigint_sigterm_sigkill(self, backend: Backend) -> None:
        lines = Lines()
        command = (
            "trap 'echo got INT' INT\ntrap 'echo got TERM' TERM\necho ready\n"
            "i=0\nwhile [ $i -lt 6000 ]; do sleep 0.1 || true; i=$((i+1)); done\necho not reached"
        )
        running = backend.executor.start(backend.request(command, on_line=lines))
        assert lines.ready.wait(WAIT_S), backend.log()
        running.cancel()
        running.cancel()  # a second cancel changes nothing
        outcome = finish(running)
        assert outcome.cancelled and not outcome.timed_out
        assert outcome.exit_code != 0
        # bash also says "Terminated" for the sleep a signal ended; what matters is the traps, in order
        said = [line for line in lines.seen if line.startswith(("ready", "got", "not reached"))]
        assert said == ["ready", "got INT", "got TERM"], lines.seen

    def test_cancel_ends_a_step_at_sigint(self, backend: Backend) -> None:
        lines = Lines()
        running = backend.executor.start(
            backend.request("echo ready\nsleep 600\necho not reached", on_line=lines)
        )
        assert lines.ready.wait(WAIT_S), backend.log()
        running.cancel()
        outcome = finish(running)
        assert outcome.cancelled and outcome.exit_code != 0
        assert lines.seen == ["ready"]

    def test_large_output_is_streamed_whole_line_by_line(self, backend: Backend) -> None:
        lines = Lines()
        count = 20000
        command = f"seq 1 {count}\nhead -c 1048576 /dev/zero | tr '\\0' a\necho\necho end"
        outcome = run(backend, command, on_line=lines)
        assert outcome.exit_code == 0, backend.log()[-5:]
        expected = [*(str(i) for i in range(1, count + 1)), "a" * 1048576, "end"]
        assert backend.log() == lines.seen
        assert (
            lines.seen == expected
        )  # podman's followed log stream lost thousands; its attach stream loses none

    def test_a_progress_bar_redrawn_in_place_shows_while_the_step_runs(self, backend: Backend) -> None:
        lines = Lines()
        # As tqdm draws on a pipe: `\r` and the bar, no newline until it is done; the step waits for the test.
        command = (
            "printf 'ready  10%%|#    |\\r'\n"
            'i=0; while [ ! -e "$OUT/go" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n'
            "printf '\\r 100%%|#####|\\n'"
        )
        running = backend.executor.start(backend.request(command, on_line=lines))
        assert lines.ready.wait(WAIT_S), backend.log()
        (backend.workdir / "outputs" / "go").touch()
        outcome = finish(running)
        assert outcome.exit_code == 0, backend.log()
        assert lines.seen == ["ready  10%|#    |", " 100%|#####|"]
        assert backend.log() == lines.seen

    def test_non_utf8_output_is_replaced_not_fatal(self, backend: Backend) -> None:
        lines = Lines()
        outcome = run(backend, "printf 'bad \\377\\376 bytes\\n'\necho after", on_line=lines)
        assert outcome.exit_code == 0
        assert lines.seen == ["bad \ufffd\ufffd bytes", "after"]
        assert backend.log() == lines.seen

    def test_a_failing_display_loses_no_line_of_the_log(self, backend: Backend) -> None:
        class FailsOnBoom(Lines):
            def __call__(self, step: str, line: str) -> None:
                super().__call__(step, line)
                if line == "boom":
                    raise RuntimeError("the display broke")

        lines = FailsOnBoom()
        outcome = run(backend, "echo before\necho boom\nseq 1 2000\necho last", on_line=lines)
        assert outcome.exit_code == 0, backend.log()
        expected = ["before", "boom", *map(str, range(1, 2001)), "last"]
        assert backend.log() == expected
        assert lines.seen == expected
