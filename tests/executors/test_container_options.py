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


def test_build_builds_the_image_once_per_context_tree(engine, project_factory):
    project = project_factory(
        {
            "img/Dockerfile": f"FROM {IMAGE}\nCOPY hello.txt /hello.txt\n",
            "img/hello.txt": "hello from the build\n",
            "src/x": "",
            "mlpipe.yaml": "name: c\nsteps:\n  s:\n    build: img\n    code: src\n    run: cat /hello.txt\n",
        }
    )
    tree = project.git("rev-parse", "HEAD:img").strip()
    tag = f"mlpipe-build/s:{tree[:12]}"

    out = project.run("ci-run").assert_success().output

    assert "hello from the build" in out
    step = project.record()["steps"]["s"]
    built = engine.image_id(tag)
    assert (step["image"]["ref"], step["image"]["id"], step["parts"]["image"]) == (tag, built, built)

    project.run("ci-run").assert_success()
    assert project.record()["steps"]["s"]["status"] == "reused"
    assert engine.image_id(tag) == built

    (project.root / "img/hello.txt").write_text("changed\n")
    out = project.run("ci-run").assert_success().output

    assert "changed" in out
    step = project.record()["steps"]["s"]
    assert step["status"] == "ran"
    assert step["image"]["ref"] != tag and step["parts"]["image"] != built


def test_a_failed_build_names_the_context(engine, project_factory):
    project = project_factory(
        {
            "img/Dockerfile": f"FROM {IMAGE}\nCOPY missing.txt /x\n",
            "mlpipe.yaml": "name: c\nsteps:\n  s: {build: img, run: 'true'}\n",
        }
    )
    result = project.run("ci-run")
    assert result.code != 0
    assert "building the image from 'img' failed" in result.output, result.output
