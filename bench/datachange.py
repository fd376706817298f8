"""Interleaved A/B of one data change between two source trees of mlpipe (issue 18).

    python3 bench/datachange.py --work bench/work/dc --a /tmp/base --b . [--pairs 7] [--case run|digest]

Each repetition replaces one data file of the clone at WORK/mlpipe (scenario.change_data, a new revision each
time) and then times either a whole `mlpipe ci-run` (`run`) or, in a fresh process, only the data input's
digest as a run takes it (`digest`: FileHasher with the workspace's stat cache, after the imports); `noop`
times `mlpipe ci-run` with nothing changed. Each
version runs from its own `runner/` through a launcher that puts it first on sys.path; the order alternates
(A B, B A, ...). Prints wall and CPU (user + system of the process tree, os.wait4) medians, and the median of
the paired differences.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenario
from timing import LAUNCHER

DIGEST = (
    "import sys, time, os; sys.path.insert(0, {src!r})\n"
    "from pathlib import Path\n"
    "from mlpipe.digest import FileHasher\n"
    "from mlpipe.statcache import StatCache\n"
    "root = Path.cwd()\n"
    "hasher = FileHasher(StatCache(root / '.mlpipe' / 'statcache.json', root, exclude=root / '.mlpipe'))\n"
    "t, c = time.perf_counter(), time.process_time()\n"
    "hasher.digest(root / 'data')\n"
    "print(round(1000 * (time.perf_counter() - t), 1), round(1000 * (time.process_time() - c), 1))\n"
    "hasher.save()\n"
)


def timed(argv: Sequence[str], cwd: Path) -> tuple[float, float, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONDONTWRITEBYTECODE", "PYTHONPATH"}}
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read() if proc.stdout else b""
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv[-1]} failed:\n{out.decode(errors='replace')[-3000:]}")
    return wall * 1000, (usage.ru_utime + usage.ru_stime) * 1000, out.decode(errors="replace")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--a", type=Path, required=True, help="source tree A (holding runner/)")
    parser.add_argument("--b", type=Path, required=True, help="source tree B (holding runner/)")
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--case", choices=["run", "digest", "noop"], default="run")
    parser.add_argument("--preset", default="large")
    parser.add_argument("--revision", type=int, default=int(time.time()) % 100000 * 100)
    args = parser.parse_args(argv)
    clone = (args.work / "mlpipe").resolve()
    preset = scenario.PRESETS[args.preset]
    template = LAUNCHER if args.case == "run" else DIGEST
    tail = [] if args.case == "digest" else ["ci-run"]
    commands = {
        label: [sys.executable, "-c", template.format(src=str((tree / "runner").resolve())), *tail]
        for label, tree in (("A", args.a), ("B", args.b))
    }
    results: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    inner: dict[str, list[str]] = {"A": [], "B": []}
    revision = args.revision
    for pair in range(args.pairs):
        for label in "AB" if pair % 2 == 0 else "BA":
            revision += 1
            if args.case != "noop":
                scenario.change_data(clone, preset, revision)
            os.sync()
            wall, cpu, out = timed(commands[label], clone)
            results[label].append((wall, cpu))
            if args.case == "digest":
                inner[label].append(out.strip().splitlines()[-1])
            print(
                f"pair {pair} {label}: wall {wall:.0f} ms, CPU {cpu:.0f} ms {inner[label][-1:] or ''}",
                flush=True,
            )
    for label in ("A", "B"):
        walls, cpus = zip(*results[label], strict=True)
        print(
            f"{label}: wall median {statistics.median(walls):.0f} ms, CPU median {statistics.median(cpus):.0f} ms"
        )
        if inner[label]:
            pairs = [tuple(map(float, line.split())) for line in inner[label]]
            print(
                f"   in-process digest: wall median {statistics.median(p[0] for p in pairs):.1f} ms, "
                f"CPU median {statistics.median(p[1] for p in pairs):.1f} ms"
            )
    dwall = [b[0] - a[0] for a, b in zip(results["A"], results["B"], strict=True)]
    dcpu = [b[1] - a[1] for a, b in zip(results["A"], results["B"], strict=True)]
    print(
        f"B - A paired: wall median {statistics.median(dwall):+.0f} ms, CPU median {statistics.median(dcpu):+.0f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
