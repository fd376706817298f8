"""A fresh runner's plan reads each reused step's record from the registry without waiting for its layers: they
arrive on background threads, and the runner waits for them (verified) before it uses the result."""

from __future__ import annotations

import hashlib
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
