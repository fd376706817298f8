"""Peak RSS and CPU time of mlpipe's data-size-bound operations at two data sizes, for one or more runners.

    python bench/memory.py --files 20000 100000 --reps 3 --runner new=runner --runner old=/tmp/old/runner

Each case runs in a fresh interpreter (`python -c`, with the runner's directory first on PYTHONPATH), so its peak
RSS (os.wait4) is the operation's plus the interpreter's. The runners take turns in each repetition, the order
reversed every other one (A B, B A, ...: none always runs right after the other's writes), and the medians are
printed. The data is N files of a few bytes in directories of 500 under a temporary directory, removed at the
end (100,000 files take about 400 MB of disk blocks).

Cases:
  hash new      a data directory no stat cache knows: FileHasher(StatCache).digest + save (a first run)
  one changed   one file of it rewritten since it was cached: the tree misses, every other file is a stat hit
  unchanged     nothing changed: the tree signature hits (the no-op's input check)
  ingest        LocalStore.publish of a result with a directory output of N files (storing a step's output)
  materialize   LocalStore.lookup + materialize of it (the read-only farm a step reading it gets), built anew
  checkout      LocalStore.lookup + checkout of that stored output into the workspace
  oci push      OciCache.push of that stored result into a new repository of a registry started here
                (Debian's docker-registry on 127.0.0.1, as tests/services/registry.py starts it)
  oci pull      OciCache.fetch of that pushed result into an empty local store (every object downloaded)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

SETUP = """
import os, sys, json
from pathlib import Path
from mlpipe.digest import FileHasher, Manifest
from mlpipe.statcache import StatCache
ws, state, host, repo = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
def hasher():
    return FileHasher(StatCache(state / 'statcache.json', ws, exclude=state))
def store():
    from mlpipe.cache.local import LocalStore
    return LocalStore(state / 'cache', hasher=FileHasher())
"""

CASES = {
    "hash new": "h = hasher(); print(h.digest(ws / 'data')); h.save()",
    "one changed": "h = hasher(); print(h.digest(ws / 'data')); h.save()",
    "unchanged": "h = hasher(); print(h.digest(ws / 'data')); h.save()",
    "ingest": (
        "from mlpipe.core.results import StepResult; r = StepResult(fingerprint='a' * 64, parts={}, outputs={});"
        " print(store().publish(r, {'o': ws / 'staged'}).result.output_digests()['o'])"
    ),
    "materialize": "s = store(); m = s.lookup('a' * 64).outputs['o']; print(s.materialize(m, 'out').name)",
    "checkout": "s = store(); m = s.lookup('a' * 64).outputs['o']; s.checkout(m, ws / 'out'); print(m.digest)",
    "oci push": (
        "from mlpipe.cache.oci import OciCache; from mlpipe.cache.registry import RegistryClient; s = store();"
        " print(OciCache(RegistryClient(host), s).push(repo, s.lookup('a' * 64), {}))"
    ),
    "oci pull": (
        "from mlpipe.cache.oci import OciCache; from mlpipe.cache.registry import RegistryClient;"
        " from mlpipe.cache.local import LocalStore;"
        " r = OciCache(RegistryClient(host), LocalStore(state / 'pulled')).fetch(repo, 'a' * 64);"
        " print(r.outputs['o'].digest)"
    ),
}
OCI_CASES = {"oci push", "oci pull"}


def make_files(top: Path, count: int, salt: str = "") -> None:
    for i in range(count):
        part = top / f"{i // 500:04d}"
        if i % 500 == 0:
            part.mkdir(parents=True, exist_ok=True)
        (part / f"f{i:06d}.txt").write_text(f"{salt}{i}\n")


def before(case: str, ws: Path, state: Path, count: int, rep: int) -> None:
    """Bring the workspace to the state the case starts from (untimed); each runner has its own `state`."""
    state.mkdir(exist_ok=True)
    if case == "hash new":
        for path in state.glob("statcache*"):
            path.unlink()
    elif case == "one changed":
        time.sleep(0.02)  # past the racy window of the last save
        (ws / "data" / "0000" / "f000000.txt").write_text(f"changed {rep} {time.time_ns()}\n")
    elif case == "ingest":
        shutil.rmtree(ws / "staged", ignore_errors=True)
        _rmtree(state / "cache")
        make_files(ws / "staged", count, salt="out")
    elif case == "materialize":
        _rmtree(state / "cache" / "materialized")
    elif case == "checkout":
        shutil.rmtree(ws / "out", ignore_errors=True)
    elif case == "oci pull":
        _rmtree(state / "pulled")


def _rmtree(path: Path) -> None:
    """A store's directories may be read-only (its files are left alone: a farm's are the objects' links)."""
    if path.exists():
        subprocess.run(["find", path, "-type", "d", "-exec", "chmod", "u+w", "{}", "+"], check=True)
        shutil.rmtree(path)


def measure(runner: str, case: str, ws: Path, state: Path, host: str, repo: str) -> tuple[float, float, str]:
    """(peak RSS MiB, CPU seconds, what it printed) of the case in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": runner}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", SETUP + CASES[case], str(ws), str(state), host, repo], env=env, stdout=out
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit(f"{case} with {runner} exited {proc.returncode}")
        out.seek(0)
        printed = out.read().decode().strip()
    return usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, printed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--runner", action="append", default=[], help="NAME=DIR (the folder holding mlpipe/)")
    parser.add_argument("--case", action="append", choices=list(CASES), help="default: every case")
    args = parser.parse_args()
    runners = dict(r.split("=", 1) for r in args.runner) or {
        "this": str(Path(__file__).parents[1] / "runner")
    }
    cases = args.case or list(CASES)
    print("| files | case | runner | peak RSS (median) | CPU (median) |")
    print("|---|---|---|---|---|")
    with contextlib.ExitStack() as stack:
        host = stack.enter_context(_registry()) if OCI_CASES & set(cases) else ""
        for count in args.files:
            _one_size(count, cases, runners, args.reps, host)


@contextlib.contextmanager
def _registry() -> Iterator[str]:
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from services.registry import Registry

    with tempfile.TemporaryDirectory(prefix="mlpipe-memory-registry-") as temp:
        registry = Registry(Path(temp))
        registry.start()
        try:
            yield registry.host
        finally:
            registry.stop()


def _one_size(count: int, cases: list[str], runners: dict[str, str], reps: int, host: str) -> None:
    with tempfile.TemporaryDirectory(prefix="mlpipe-memory-") as temp:
        ws = Path(temp)
        make_files(ws / "data", count)
        for case in cases:
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
            for rep in range(reps):
                printed_by: set[str] = set()
                order = list(runners.items())
                for name, runner in order if rep % 2 == 0 else order[::-1]:  # ABBA: neither always second
                    state = ws / f".mlpipe-{name}"
                    before(case, ws, state, count, rep)
                    repo = f"memory/{name.lower()}-{count}-{rep}"  # a push is cold: a new repository each
                    rss, cpu, printed = measure(runner, case, ws, state, host, repo)
                    samples[name].append((rss, cpu))
                    printed_by.add(printed)
                if len(printed_by) > 1 and case != "one changed":  # that one changes the data per runner
                    raise SystemExit(f"{case}: the runners disagree: {sorted(printed_by)}")
            for name, got in samples.items():
                rss = statistics.median(s[0] for s in got)
                cpu = statistics.median(s[1] for s in got)
                print(f"| {count:,} | {case} | {name} | {rss:.1f} MiB | {cpu * 1000:.0f} ms |", flush=True)
        _rmtree(ws)


if __name__ == "__main__":
    main()
