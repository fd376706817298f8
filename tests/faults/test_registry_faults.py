"""Registry faults through a proxy in front of the real registry: a blob, a config or a manifest that arrives
truncated, a connection dropped mid-body, 5xx and 429 answers, a registry that stalls.

One fault is retried within the run's budget (the step is reused and its output is right); a fault that lasts
makes the run go on without the registry, said exactly once (and fails it with --cache-required); a stall ends
with the budget, not with a 60 s read timeout (the subprocess timeout fails the test otherwise). The store is
whole afterwards: nothing half-downloaded is left in it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import uuid
from collections.abc import Callable

import fault_tally
import pytest
from fsck_testing import assert_store_whole

from mlpipe.cache.oci import result_tag
from mlpipe.cache.registry import RegistryClient
from mlpipe_testing import Project, make_repo
from services.proxy import Fault, Proxy

PIPELINE = """\
name: faults
steps:
  a:
    code: a
    run: sh a.sh ${{ outputs.out }}
    outputs:
      out: {}
"""
BIG = bytes(range(256)) * 8192  # 2 MiB: a raw layer of its own
FILES = {
    "mlpipe.yaml": PIPELINE,
    "a/a.sh": 'set -e\nprintf "%s\\n" one two > "$1/small.txt"\ncp "$(dirname "$0")/big.bin" "$1/big.bin"\n',
    "a/big.bin": BIG,
}
STEP_TIMEOUT = 60


class Layout:
    """Where the pushed entry's pieces are: the manifest's tag, the config, the tar layer, the raw layer."""

    def __init__(self, host: str, repo: str, fingerprint: str) -> None:
        client = RegistryClient(host)
        self.repo = repo
        self.tag = result_tag(fingerprint)
        got = client.get_manifest(repo, self.tag)
        assert got is not None
        manifest = json.loads(got[0])
        self.config = manifest["config"]["digest"]
        self.raw = "sha256:" + hashlib.sha256(BIG).hexdigest()
        self.tar = next(d["digest"] for d in manifest["layers"] if d["digest"] != self.raw)

    def get(self, piece: str) -> Callable[[str, str], bool]:
        fragment = {
            "manifest": f"/{self.repo}/manifests/{self.tag}",
            "config": self.config,
            "tar": self.tar,
            "raw": self.raw,
        }[piece]
        return lambda method, path: method == "GET" and path.endswith(fragment)


_PUSHED: dict[str, tuple[Project, str, str, dict[str, str]]] = {}


@pytest.fixture
def pushed(project_factory, registry, tmp_path_factory):
    """Runner a pushed the step's result (once per module, by the first test, under that test's clean
    environment: every test reads the same entry); each test's runner b, a fresh clone, looks it up through a
    proxy. The layout is read again for each test: a run of b that ran the step may have pushed its own."""
    if "a" not in _PUSHED:
        a = Project(
            make_repo(tmp_path_factory.mktemp("faults") / "runner-a", {".gitignore": ".mlpipe/\n", **FILES})
        )
        repo = f"t/faults-{uuid.uuid4().hex[:12]}"
        a.run("ci-run", env={"MLPIPE_CACHE": f"oci://{registry.host}/{repo}"}).assert_success()
        step = a.record()["steps"]["a"]
        _PUSHED["a"] = (a, repo, step["fingerprint"], step["outputs"])
    a, repo, fingerprint, outputs = _PUSHED["a"]
    b = project_factory(FILES, name="runner-b")
    # A local run on main writes its own scope, which a local run on main reads.
    layout = Layout(registry.host, f"{repo}/branch-main", fingerprint)
    return a, b, repo, layout, outputs


def armed(layout: Layout, table: dict[str, tuple[str, Fault]], name: str) -> Fault:
    """A fresh copy of the table's fault (it counts down as it fires), aimed at its piece of the entry."""
    piece, fault = table[name]
    return dataclasses.replace(fault, match=layout.get(piece), headers=dict(fault.headers))


def run_b(
    b: Project,
    registry,
    fault: Fault,
    repo: str,
    *args: str,
    budget: str = "30",
    timeout: float = STEP_TIMEOUT,
):
    """`ci-run` in runner b through a proxy that injects `fault`."""
    with Proxy(registry.port) as proxy:
        proxy.faults = [fault]
        env = {"MLPIPE_CACHE": f"oci://{proxy.host}/{repo}", "MLPIPE_REGISTRY_RETRY_BUDGET_S": budget}
        return b.run("ci-run", *args, env=env, timeout=timeout)


ONE_FAULT = {
    "blob-truncated": ("raw", Fault(200, 1, action="truncate")),
    "blob-connection-dropped": ("raw", Fault(200, 1, action="drop")),
    "tar-layer-connection-dropped": ("tar", Fault(200, 1, action="drop")),
    "tar-layer-truncated": ("tar", Fault(200, 1, action="truncate")),
    "config-connection-dropped": ("config", Fault(200, 1, action="drop")),
    "manifest-connection-dropped": ("manifest", Fault(200, 1, action="drop")),
    "blob-500": ("raw", Fault(500, 1)),
    "manifest-503": ("manifest", Fault(503, 2)),
    "blob-429-retry-after": ("raw", Fault(429, 1, headers={"Retry-After": "1"})),
}


@pytest.mark.parametrize("name", sorted(ONE_FAULT))
def test_one_fault_is_retried_and_the_result_reused(pushed, registry, name):
    _, b, repo, layout, outputs = pushed
    fault = armed(layout, ONE_FAULT, name)
    out = run_b(b, registry, fault, repo)
    record = b.record()
    wrong = int(record["steps"]["a"]["outputs"] != outputs)
    fault_tally.record("registry fault, once", runs_completed=int(out.code == 0), wrong_results=wrong)
    out.assert_success()
    assert fault.times == 0, "the fault never fired"
    assert record["steps"]["a"]["status"] == "reused", out.output
    assert wrong == 0
    assert "warning" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    b.run("pull", "a", "--to", str(b.root / "pulled")).assert_success()
    assert (b.root / "pulled/out/big.bin").read_bytes() == BIG
    assert_store_whole(b.root / ".mlpipe" / "cache")


LASTING = {
    "blob-connection-dropped": ("raw", Fault(200, 1000, action="drop")),
    "tar-layer-connection-dropped": ("tar", Fault(200, 1000, action="drop")),
    "manifest-connection-dropped": ("manifest", Fault(200, 1000, action="drop")),
    "blob-503": ("raw", Fault(503, 1000)),
    "manifest-429-retry-after": ("manifest", Fault(429, 1000, headers={"Retry-After": "1"})),
    "blob-stalls": ("raw", Fault(200, 1000, action="stall")),
    "manifest-stalls": ("manifest", Fault(200, 1000, action="stall")),
}
BUDGET_S = 2
MARGIN_S = 28
"""What a run may take beyond its retry budget: one that waits out a 60 s read timeout instead of its 2 s
budget runs into the subprocess timeout, and the test fails."""


@pytest.mark.parametrize("name", sorted(LASTING))
def test_a_lasting_fault_is_said_once_and_the_run_goes_on_without_the_registry(pushed, registry, name):
    _, b, repo, layout, outputs = pushed
    fault = armed(layout, LASTING, name)
    out = run_b(b, registry, fault, repo, budget=str(BUDGET_S), timeout=BUDGET_S + MARGIN_S)
    record = b.record()
    wrong = int(record["steps"]["a"]["outputs"] != outputs)
    shutil.rmtree(b.root / ".mlpipe")
    required = run_b(
        b, registry, fault, repo, "--cache-required", budget=str(BUDGET_S), timeout=BUDGET_S + MARGIN_S
    )
    fault_tally.record("registry fault, lasting", runs_completed=int(out.code == 0), wrong_results=wrong)
    out.assert_success()
    assert out.stderr.count("going on without the registry") == 1, out.stderr
    assert out.stderr.count("warning") == 1, out.stderr
    assert "Traceback" not in out.output
    assert record["steps"]["a"]["status"] == "ran"
    assert record["options"]["cache"]["unavailable"] is True
    assert wrong == 0
    required.assert_code(1)
    assert "--cache-required" in required.stderr and "Traceback" not in required.output
    assert_store_whole(b.root / ".mlpipe" / "cache")


def test_a_blob_truncated_every_time_is_a_corrupt_entry_not_a_dead_registry(pushed, registry):
    """The same short body twice is what the registry holds: the entry is refused, the registry stays in use."""
    _, b, repo, layout, outputs = pushed
    out = run_b(b, registry, Fault(200, 1000, layout.get("raw"), action="truncate"), repo)
    fault_tally.record("registry fault, lasting", runs_completed=int(out.code == 0))
    out.assert_success()
    warnings = [line for line in out.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "does not match its digest" in warnings[0], out.stderr
    assert "going on without the registry" not in out.stderr
    assert b.record()["steps"]["a"]["status"] == "ran"
    assert b.record()["steps"]["a"]["outputs"] == outputs
    assert_store_whole(b.root / ".mlpipe" / "cache")
