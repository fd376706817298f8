"""Where a no-op `mlpipe ci-run` and `mlpipe plan` spend their time, in the clone a benchmark run left behind.

    python3 bench/profile.py --preset large [--top 25]

Prints `-X importtime` totals per top-level package and the cProfile functions with the most cumulative and
own time; writes the raw profiles and import logs to bench/work/<preset>/profile/.
"""

from __future__ import annotations

import argparse
import collections
import io
import pstats
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench

COMMANDS = {"noop-ci-run": ["ci-run"], "plan": ["plan"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="large")
    parser.add_argument("--work", type=Path, default=bench.BENCH / "work")
    parser.add_argument("--python", type=Path, default=bench.REPO / ".venv" / "bin" / "python")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    clone = args.work.resolve() / args.preset / "mlpipe"
    if not (clone / ".mlpipe").is_dir():
        parser.error(f"{clone} has no .mlpipe: run `python3 bench/run.py --preset {args.preset}` first")
    out = clone.parent / "profile"
    out.mkdir(exist_ok=True)
    env = bench.child_env(bench.real_python("python3"))
    python = str(args.python)
    for name, command in COMMANDS.items():
        imports = run([python, "-X", "importtime", "-m", "mlpipe", *command], clone, env).stderr
        (out / f"{name}.importtime.txt").write_text(imports)
        print(f"## {name}: import time by top-level package (self times summed, ms)\n")
        print(import_totals(imports, args.top))
        profile = out / f"{name}.prof"
        run([python, "-m", "cProfile", "-o", str(profile), "-m", "mlpipe", *command], clone, env)
        for order in ("cumulative", "tottime"):
            print(f"## {name}: cProfile, top {args.top} by {order}\n")
            print(top_functions(profile, order, args.top))
    print(f"raw files in {out}")
    return 0


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done


def import_totals(log: str, top: int) -> str:
    """`import time: self [us] | cumulative | name` lines, self times summed per top-level package."""
    totals: collections.Counter[str] = collections.Counter()
    for line in log.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        package = name.split(".")[0]
        totals["mlpipe." + name.split(".")[1] if package == "mlpipe" and "." in name else package] += int(
            self_us
        )
    total = sum(totals.values())
    rows = [f"total {total / 1000:.1f} ms"] + [
        f"{us / 1000:7.1f}  {pkg}" for pkg, us in totals.most_common(top)
    ]
    return "\n".join(rows) + "\n"


def top_functions(profile: Path, order: str, top: int) -> str:
    stream = io.StringIO()
    stats = pstats.Stats(str(profile), stream=stream)
    stats.strip_dirs().sort_stats(order).print_stats(top)
    text = stream.getvalue()
    return text[text.find("   ncalls") :] if "   ncalls" in text else text


if __name__ == "__main__":
    sys.exit(main())
