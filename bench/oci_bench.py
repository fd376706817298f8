"""Push and pull of one large step output through the OCI cache, against raw blob transfers of the same bytes.

Starts a local `docker-registry` on 127.0.0.1, generates an output of FILES files totalling MB megabytes,
and times: push cold (empty registry), push warm (same content under a new fingerprint: only the config is
new), pull cold (empty local store), and one raw blob PUT and GET of the same number of bytes with plain
requests. Peak memory is this process's max RSS.

    .venv/bin/python bench/oci_bench.py --mb 1024 --files 20000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "runner"))

from mlpipe.cache.base import StepResult
from mlpipe.cache.local import LocalStore
from mlpipe.cache.oci import OciCache
from mlpipe.cache.registry import RegistryClient
from services.registry import Registry


def generate(out: Path, total: int, files: int) -> None:
    """Mostly small files plus a few large ones, as model outputs are (shards, checkpoints)."""
    large = max(1, total // 2 // (64 << 20))
    small_bytes = total - large * (64 << 20) if total > large * (64 << 20) else total // 2
    small_size = max(1, small_bytes // max(1, files - large))
    for i in range(files - large):
        d = out / f"part{i // 1000:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:06d}.bin").write_bytes(os.urandom(small_size))
    big_size = (total - small_size * (files - large)) // large
    for i in range(large):
        with open(out / f"shard{i}.bin", "wb") as f:
            left = big_size
            while left > 0:
                n = min(left, 8 << 20)
                f.write(os.urandom(n))
                left -= n


def timed(label: str, results: dict[str, float], fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = fn()
    results[label] = round(time.perf_counter() - start, 3)
    print(f"{label}: {results[label]:.2f}s", file=sys.stderr)
    return value


def raw_transfer(client: RegistryClient, repo: str, path: Path, results: dict[str, float]) -> None:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    digest = "sha256:" + h.hexdigest()
    size = path.stat().st_size
    timed("raw_upload", results, lambda: client.upload_blob(repo, digest, size, lambda: open(path, "rb")))  # noqa: SIM115
    with open(os.devnull, "wb") as sink:
        timed("raw_download", results, lambda: client.download_blob(repo, digest, sink))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--json", type=Path, default=None, help="Write the figures here too.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlpipe-oci-bench-") as tmp_name:
        tmp = Path(tmp_name)
        registry = Registry(tmp / "registry")
        registry.start()
        try:
            out = tmp / "out"
            generate(out, args.mb << 20, args.files)
            results: dict[str, float] = {}
            a = LocalStore(tmp / "store-a")
            bare = StepResult(fingerprint="a" * 64, parts={}, outputs={}, provenance={"run_id": "bench"})
            result = timed("ingest", results, lambda: a.publish(bare, {"out": out}).result)
            client = RegistryClient(registry.host)
            oci = OciCache(client, a)
            timed("push_cold", results, lambda: oci.push("bench/cache", result, {}))
            again = StepResult(
                fingerprint="b" * 64, parts={}, outputs=result.outputs, provenance={"run_id": "b"}
            )
            a.commit_result(again)
            timed("push_warm_unchanged", results, lambda: oci.push("bench/cache", again, {}))
            b = LocalStore(tmp / "store-b")
            timed("pull_cold", results, lambda: OciCache(client, b).fetch("bench/cache", "a" * 64))
            timed("pull_warm_local_hit", results, lambda: b.lookup("a" * 64))
            # The same bytes as one file, for the raw baseline.
            joined = tmp / "joined.bin"
            with open(joined, "wb") as f:
                for entry in result.outputs["out"].entries:
                    with open(a.object_path(entry), "rb") as src:
                        while block := src.read(1 << 20):
                            f.write(block)
            raw_transfer(client, "bench/raw", joined, results)
            results["push_vs_raw"] = round(results["push_cold"] / results["raw_upload"], 2)
            results["pull_vs_raw"] = round(results["pull_cold"] / results["raw_download"], 2)
            results["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
            results["mb"], results["files"] = args.mb, args.files
            print(json.dumps(results, indent=1))
            if args.json:
                args.json.write_text(json.dumps(results, indent=1) + "\n")
        finally:
            registry.stop()


if __name__ == "__main__":
    main()
