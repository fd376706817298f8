"""A fresh runner's plan reads each reused step's record from the registry without waiting for its layers: they
arrive on background threads, and the runner waits for them (verified) before it uses the result."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid

from test_oci_cache import FILES

from mlpipe.cache.named import EMPTY_DIGEST
from registry_testing import cache_env
from services.proxy import Fault, Proxy

BIG = "sha256:" + hashlib.sha256(FILES["data/big.bin"]).hexdigest()


def test_the_next_steps_record_is_read_while_a_layer_is_still_downloading(
    project_factory, registry, tmp_path
):
    repo = f"t/{uuid.uuid4().hex[:12]}"
    seed = project_factory(FILES, name="seed")
    seed.run("ci-run", env=cache_env(registry.host, repo, tmp_path)).assert_success()
    fresh = project_factory(FILES, name="fresh")
    with Proxy(registry.port) as proxy:
        # a's big file stalls halfway for 3 s, then the connection closes and the download is retried.
        stalled = Fault(
            0, 1, lambda method, path: method == "GET" and path.endswith(BIG), action="stall", stall_s=3
        )
        proxy.faults.append(stalled)
        out = fresh.run("ci-run", env=cache_env(proxy.host, repo, tmp_path)).assert_success()
        requests = list(proxy.requests)
    record, first = fresh.record(), seed.record()
    assert {name: step["status"] for name, step in record["steps"].items()} == {"a": "reused", "b": "reused"}
    assert {n: s["outputs"] for n, s in record["steps"].items()} == {
        n: s["outputs"] for n, s in first["steps"].items()
    }
    fresh.run("pull", "a", "--to", str(tmp_path / "pulled")).assert_success()  # from the local store now
    assert (tmp_path / "pulled/out/big.bin").read_bytes() == FILES["data/big.bin"]
    big = [i for i, (method, path) in enumerate(requests) if method == "GET" and path.endswith(BIG)]
    b_record = next(
        i
        for i, (method, path) in enumerate(requests)
        if path.endswith(f"/manifests/result-{record['steps']['b']['fingerprint']}")
    )
    assert stalled.times == 0 and len(big) == 2, requests  # stalled once, downloaded again
    # b's record was asked for before a's layer had come (which took the stall and a retry), not after it.
    assert b_record < big[1], "\n".join(f"{m} {p}" for m, p in requests)
    assert "warning" not in out.stderr
    # The run record is pushed without asking whether its config (unique to the run) is there: the one HEAD
    # left asks for the empty layer.
    heads = [path for method, path in requests if method == "HEAD"]
    assert heads == [f"/v2/{repo}/blobs/{EMPTY_DIGEST}"], requests


FRESH_STORE = """
import sys, threading
from pathlib import Path
from mlpipe.cache.local import LocalStore
from mlpipe.cache.tiered import RemoteSettings, TieredStore
root = Path(sys.argv[1])
if sys.argv[2] == "warm":
    (root / "results").mkdir(parents=True)
settings = RemoteSettings(host="127.0.0.1:9", repo="t/x")
TieredStore(LocalStore(root), settings=settings, workspace_root=root, run_context=lambda: None)
for thread in threading.enumerate():
    if thread.name == "mlpipe-import":
        thread.join(60)
print("requests" in sys.modules)
"""


def test_an_empty_store_imports_the_http_client_at_once_a_warm_one_never(tmp_path):
    """A fresh runner will ask the registry for every step: its client's imports start when the store opens,
    beside the hashing that comes first. A warm no-op asks nothing and imports nothing."""
    for state, expected in (("fresh", "True"), ("warm", "False")):
        done = subprocess.run(
            [sys.executable, "-c", FRESH_STORE, str(tmp_path / state), state],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == expected, (state, done.stdout)
