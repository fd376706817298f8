"""A step's container options (`shm-size`, `ulimits`, `user`, `mounts`, `network`) reach the container."""

from __future__ import annotations

IMAGE = "mlpipe-test/busybox:1"


def test_container_options_reach_the_container(engine, project_factory, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    scratch.chmod(0o777)  # the step runs as uid 1234
    project = project_factory(
        {
            "data/f.txt": "mounted data\n",
            "mlpipe.yaml": (
                "name: c\n"
                "steps:\n"
                "  s:\n"
                f"    image: {IMAGE}\n"
                "    shm-size: 32m\n"
                "    ulimits: {nofile: '321:654'}\n"
                "    user: 1234\n"
                f"    mounts: ['data:/data:ro', '{scratch}:/scratch']\n"
                "    network: none\n"
                "    run: |\n"
                "      echo uid=$(id -u)\n"
                "      echo nets=$(ls /sys/class/net)\n"
                "      echo nofile=$(ulimit -Sn):$(ulimit -Hn)\n"
                "      df -k /dev/shm | tail -1 | awk '{print \"shm=\" $2}'\n"
                "      cat /data/f.txt\n"
                "      (echo x > /data/new) 2>/dev/null && echo data writable || echo data read-only\n"
                "      echo from the step > /scratch/written\n"
            ),
        }
    )
    out = project.run("ci-run").assert_success().output
    assert "uid=1234" in out, out
    assert "nets=lo\n" in out, out
    assert "nofile=321:654" in out, out
    assert "shm=32768" in out, out
    assert "mounted data" in out
    assert "data read-only" in out
    assert (scratch / "written").read_text() == "from the step\n"
    assert not (project.root / "data/new").exists()


def test_container_options_do_not_enter_the_fingerprint(engine, project_factory):
    step = f"  s:\n    image: {IMAGE}\n    code: src\n    run: echo ran\n"
    project = project_factory({"src/x": "", "mlpipe.yaml": "name: c\nsteps:\n" + step})
    project.run("ci-run").assert_success()
    (project.root / "mlpipe.yaml").write_text(
        "name: c\nsteps:\n" + step + "    network: none\n    shm-size: 8m\n"
    )

    again = project.run("ci-run").assert_success()

    assert project.record()["steps"]["s"]["status"] == "reused", again.output
