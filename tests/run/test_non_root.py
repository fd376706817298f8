"""mlpipe as most people run it: an unprivileged user on a fresh workspace (the suite itself runs as root)."""

from __future__ import annotations

import json
import os

from mlpipe_testing import make_repo
from nonroot_testing import NOBODY, as_nobody, needs_root, python_for_nobody

PIPELINE = """\
name: plain
steps:
  a:
    code: a
    run: sh a.sh ${{ outputs.out }}
    outputs:
      out: {}
  b:
    code: b
    run: cat ${{ inputs.x }}/n > ${{ outputs.n }}
    inputs:
      x: ${{ steps.a.outputs.out }}
    outputs:
      n: {type: file}
"""


@needs_root
def test_an_unprivileged_user_runs_reuses_and_cleans_up_host_steps(shared_dir):
    project = make_repo(
        shared_dir / "project",
        {".gitignore": ".mlpipe/\n", "mlpipe.yaml": PIPELINE, "a/a.sh": 'echo 1 > "$1/n"\n', "b/.keep": ""},
    )
    home = shared_dir / "home"
    home.mkdir()
    for path in [shared_dir, *shared_dir.rglob("*")]:
        os.lchown(path, NOBODY, NOBODY)
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    mlpipe = [*python_for_nobody(env, project), "-m", "mlpipe"]

    first = as_nobody([*mlpipe, "ci-run", "-j", "2"], env, project)
    assert first.returncode == 0, first.stdout + first.stderr
    second = as_nobody([*mlpipe, "ci-run", "--json"], env, project)
    assert second.returncode == 0, second.stdout + second.stderr
    assert {s["status"] for s in json.loads(second.stdout)["steps"].values()} == {"reused"}
    gc = as_nobody([*mlpipe, "gc", "--keep-last", "1"], env, project)
    assert gc.returncode == 0, gc.stdout + gc.stderr

    owned_by_others = [str(p) for p in project.rglob("*") if p.lstat().st_uid != NOBODY]
    assert owned_by_others == []
