"""Registry transfers say what they moved and how long it took: one plain, greppable line each."""

from __future__ import annotations

import re
import uuid

PIPELINE = """\
name: demo
steps:
  a:
    run: mkdir -p ${{ outputs.out }}/sub && echo one > ${{ outputs.out }}/x && echo two > ${{ outputs.out }}/sub/y
    outputs:
      out: {}
"""


def test_pushes_and_fetches_are_logged_with_files_size_and_time(project_factory, registry):
    env = {"MLPIPE_CACHE": f"oci://{registry.host}/t/{uuid.uuid4().hex[:12]}"}
    a = project_factory({"mlpipe.yaml": PIPELINE}, name="runner-a")
    b = project_factory({"mlpipe.yaml": PIPELINE}, name="runner-b")
    host_repo = env["MLPIPE_CACHE"].removeprefix("oci://") + "/branch-main"  # a local branch: its own scope

    pushed = a.run("ci-run", env=env).assert_success().stderr
    fingerprint = a.record()["steps"]["a"]["fingerprint"][:12]
    line = rf"mlpipe: cache: pushed a result {fingerprint} to {re.escape(host_repo)} \(2 files, 8 B\) in \d+\.\ds"
    assert re.search(line, pushed), pushed

    fetched = b.run("ci-run", env=env).assert_success().stderr
    assert b.record()["steps"]["a"]["status"] == "reused"
    line = rf"mlpipe: cache: fetched a result {fingerprint} from {re.escape(host_repo)} \(2 files, 8 B\) in \d+\.\ds"
    assert re.search(line, fetched), fetched

    quiet = b.run("ci-run", env=env).assert_success().stderr  # the local store has it now: no transfer
    assert "mlpipe: cache:" not in quiet, quiet
