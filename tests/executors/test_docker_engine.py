"""The podman service the container tests run against: it answers the Docker API and runs the test image."""

from __future__ import annotations

import threading

import docker


def test_the_engine_runs_the_test_image(engine):
    # Bounded: a socket read that waits longer than this fails the test instead of hanging it.
    client = docker.from_env(timeout=60)
    try:
        image = client.images.get("mlpipe-test/busybox:1")
        assert image.id == engine.image_id("mlpipe-test/busybox:1")
        container = client.containers.create(
            "mlpipe-test/busybox:1",
            ["sh", "-c", "echo hello from $FROM_IMAGE"],
            environment={"FROM_IMAGE": "busybox"},
            # podman's API applies no default ulimits; runc then fails to set them (rlimit 6 and 7)
            ulimits=[
                docker.types.Ulimit(name="nofile", soft=1024, hard=4096),
                docker.types.Ulimit(name="nproc", soft=1024, hard=4096),
            ],
        )
        try:
            # Attached before it starts, as the executor does: `containers.run` follows the log instead, and
            # podman's followed log of a container that exits at once can stay open forever (seen in CI).
            # The attach stream may outlive the container until it is removed, so it is read beside the wait.
            stream = container.attach(stdout=True, stderr=True, stream=True, logs=True)
            chunks: list[bytes] = []
            reader = threading.Thread(target=lambda: chunks.extend(stream), daemon=True)
            reader.start()
            container.start()
            assert container.wait(timeout=60)["StatusCode"] == 0
            reader.join(timeout=10)
        finally:
            container.remove(force=True)
        reader.join(timeout=10)
        output = b"".join(chunks)
    finally:
        client.close()
    assert output == b"hello from busybox\n"
