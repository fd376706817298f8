"""Lower bounds, run as a child process: a stat walk or a sha256 of every file under some directories.

    python3 limits.py walk|sha256 REPORT_FILE DIR...

Writes the seconds spent after interpreter start-up to REPORT_FILE.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Iterator


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


def main() -> None:
    start = time.perf_counter()
    mode, report, *tops = sys.argv[1:]
    {"walk": walk, "sha256": sha256}[mode](tops)
    with open(report, "w") as f:
        f.write(repr(time.perf_counter() - start))


if __name__ == "__main__":
    main()
