"""The podman service the container tests run against: it answers the Docker API and runs the test image."""

from __future__ import annotations

import docker


def test_the_engine_runs_the_test_image(engine):
    client = docker.from_env()
    try:
        image = client.images.get("mlpipe-test/busybox:1")
        assert image.id == engine.image_id("mlpipe-test/busybox:1")
        output = client.containers.run(
            "mlpipe-test/busybox:1",
            ["sh", "-c", "echo hello from $FROM_IMAGE"],
            environment={"FROM_IMAGE": "busybox"},
            # podman's API applies no default ulimits; runc then fails to set them (rlimit 6 and 7)
            ulimits=[
                docker.types.Ulimit(name="nofile", soft=1024, hard=4096),
                docker.types.Ulimit(name="nproc", soft=1024, hard=4096),
            ],
            remove=True,
        )
    finally:
        client.close()
    assert output == b"hello from busybox\n"
