"""Files a container step writes belong to the user who ran mlpipe, not to root.

The tests run as root, where root-owned outputs would pass unnoticed, so mlpipe runs here as `nobody`
(setpriv) against the rootful engine: a container left to run as root would write root-owned files.
"""

from __future__ import annotations

import os

from mlpipe_testing import make_repo
from nonroot_testing import NOBODY, as_nobody, needs_root, python_for_nobody
from services.docker_proxy import DockerProxy


@needs_root
def test_outputs_are_owned_by_the_invoking_user(engine, shared_dir):
    project = make_repo(
        shared_dir / "project",
        {
            ".gitignore": ".mlpipe/\n",
            "mlpipe.yaml": "name: own\nsteps:\n  s:\n    image: mlpipe-test/busybox:1\n"
            "    run: |\n      id -u > ${{ outputs.o }}/uid\n      head -1 mlpipe.yaml > ${{ outputs.o }}/code\n"
            "      mkdir ${{ outputs.o }}/sub && echo x > ${{ outputs.o }}/sub/f\n"
            "    outputs: {o: {}}\n",
        },
    )
    home = shared_dir / "home"
    home.mkdir()
    for path in [shared_dir, *shared_dir.rglob("*")]:
        os.lchown(path, NOBODY, NOBODY)
    with DockerProxy(shared_dir / "engine.sock", engine.socket) as proxy:
        (shared_dir / "engine.sock").chmod(0o666)
        env = {
            **os.environ,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "DOCKER_HOST": proxy.docker_host,
            "CI": "true",
        }
        python = python_for_nobody(env, project)
        ran = as_nobody([*python, "-m", "mlpipe", "ci-run"], env, project)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        pulled = as_nobody([*python, "-m", "mlpipe", "pull", "s", "--to", "got"], env, project)
        assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert (project / "got/o/uid").read_text() == f"{NOBODY}\n"
    assert (project / "got/o/code").read_text() == "name: own\n"  # the step saw its code snapshot
    owned_by_others = [
        f"{p.relative_to(project)} (uid {p.lstat().st_uid})"
        for p in project.rglob("*")
        if p.lstat().st_uid != NOBODY and ".git" not in p.parts
    ]
    assert owned_by_others == []
    assert not any((project / ".mlpipe/tmp").glob("*/*"))  # staging was cleaned up: nobody could delete it
