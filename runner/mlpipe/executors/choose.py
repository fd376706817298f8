"""Which executor runs a step: the host's, or, for a step with `image:`, the container engine's."""

from __future__ import annotations

from mlpipe.events import Sink
from mlpipe.executors.base import Executor


def container_executor(sink: Sink) -> Executor:
    """The executor of steps with `image:`. Its module is loaded here, when the first such step starts (the
    docker SDK only when it talks to the engine): run/ never imports it. `sink` hears what it cleans up."""
    from mlpipe.executors.docker import DockerExecutor

    return DockerExecutor(sink)
