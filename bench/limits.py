"""Lower bounds, run as a child process: a stat walk or a sha256 of every file under some directories, or the
download of every step result in a registry.

    python3 limits.py walk|sha256 REPORT_FILE DIR...
    python3 limits.py fetch REPORT_FILE DEST REGISTRY_URL REPO_PREFIX

Writes the seconds spent after interpreter start-up to REPORT_FILE.

`fetch` is the floor of a fresh CI runner's pull: plain HTTP GETs (urllib, 8 threads, as many as mlpipe's pull
uses) of the manifest of every `result-*` tag in every repository at or under REPO_PREFIX (mlpipe keeps one
per branch) and of every blob it names, each streamed to a file under
DEST/blobs, then `tar -x` of every tar layer into DEST/files (GNU tar, `-z` for gzip). No digest checks, no
store, no checkout: what any tool has to do to get the same bytes onto the same disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TAR_LAYERS = {
    "application/vnd.mlpipe.objects.v1.tar": "-xf",
    "application/vnd.oci.image.layer.v1.tar+gzip": "-xzf",
}


def files(tops: list[str]) -> Iterator[str]:
    for top in tops:
        for dirpath, _dirnames, filenames in os.walk(top):
            for name in filenames:
                yield os.path.join(dirpath, name)


def walk(tops: list[str]) -> None:
    for path in files(tops):
        os.lstat(path)


def sha256(tops: list[str]) -> None:
    for path in files(tops):
        with open(path, "rb", buffering=0) as f:
            hashlib.file_digest(f, "sha256")


def get(url: str, accept: str | None = None) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=60) as response:
        return bytes(response.read())


def fetch(args: list[str]) -> None:
    dest, registry, prefix = Path(args[0]), args[1].rstrip("/"), args[2]
    blobs, files = dest / "blobs", dest / "files"
    blobs.mkdir(parents=True)
    files.mkdir()
    catalog = json.loads(get(f"{registry}/v2/_catalog?n=1000"))["repositories"] or []
    wanted: dict[tuple[str, str], str] = {}  # (repo, digest) -> media type
    for repo in (r for r in catalog if r == prefix or r.startswith(prefix + "/")):
        tags = json.loads(get(f"{registry}/v2/{repo}/tags/list"))["tags"] or []
        for tag in (t for t in tags if t.startswith("result-")):
            manifest = json.loads(get(f"{registry}/v2/{repo}/manifests/{tag}", MANIFEST))
            for descriptor in [manifest["config"], *manifest.get("layers", [])]:
                wanted[repo, descriptor["digest"]] = descriptor["mediaType"]

    def download(blob: tuple[str, str]) -> None:
        repo, digest = blob
        request = urllib.request.Request(f"{registry}/v2/{repo}/blobs/{digest}")
        with urllib.request.urlopen(request, timeout=60) as response, open(blobs / digest, "wb") as out:
            while block := response.read(1 << 20):
                out.write(block)

    with ThreadPoolExecutor(8) as pool:
        for _ in pool.map(download, wanted):
            pass
    for (_repo, digest), media_type in wanted.items():
        if media_type in TAR_LAYERS:
            subprocess.run(["tar", TAR_LAYERS[media_type], str(blobs / digest), "-C", str(files)], check=True)


def main() -> None:
    start = time.perf_counter()
    mode, report, *tops = sys.argv[1:]
    {"walk": walk, "sha256": sha256, "fetch": fetch}[mode](tops)
    with open(report, "w") as f:
        f.write(repr(time.perf_counter() - start))


if __name__ == "__main__":
    main()
