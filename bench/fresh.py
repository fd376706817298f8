"""Only the fresh CI runner case of run.py, A/B between mlpipe source trees, with an optional profile.

    python3 bench/fresh.py --preset small [--reps 7] [--source before=DIR] [--source after=DIR]
                           [--profile DIR] [--requests] [--latency-ms N] [--phases N]

Each repetition clones the scenario's origin anew (data copied in, no `.mlpipe`; untimed) and times
`mlpipe ci-run --cache oci://127.0.0.1:PORT/bench/fresh` run from each source tree in turn (alternating, so
drift hits every source alike). A source is a directory holding the `mlpipe` package (a worktree's `runner/`,
or `git archive COMMIT runner | tar -x` of an older commit); it is put first on `sys.path` by a launcher, not
through PYTHONPATH. Prints medians (wall, CPU of the command and its children) and min-max per source, and
the median of the paired differences (each later source against the first, repetition by repetition).
`--profile DIR` adds one cProfile run per source (`DIR/<name>.prof`); `--requests` prints the HTTP
requests of one run per source (start, duration, thread, method, path); `--phases N` adds N traced runs per
source and prints each phase's time stamps, wall and CPU per thread (fresh_phases.py). `--latency-ms N` puts a forwarder
in front of the registry that holds each request N ms before passing it on (a registry across a network, as
ghcr.io is from a CI runner, rather than one on loopback): what serial round trips cost shows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fresh_phases as phases
import scenario
from timing import LAUNCHER, run_once

import run as bench_run

TRACED = (
    "import sys, time, threading, atexit, json; sys.path.insert(0, {src!r}); t0 = time.perf_counter(); seen = []\n"
    "import requests\n"
    "send = requests.Session.request\n"
    "def traced(self, method, url, *a, **k):\n"
    "    start = time.perf_counter()\n"
    "    try:\n"
    "        r = send(self, method, url, *a, **k); return r\n"
    "    finally:\n"
    "        seen.append((round(1000 * (start - t0)), round(1000 * (time.perf_counter() - start)),"
    " threading.current_thread().name, method, url.split('/', 3)[-1][:110]))\n"
    "requests.Session.request = traced\n"
    "atexit.register(lambda: open({out!r}, 'w').write(json.dumps(seen)))\n"
    "from mlpipe.cli.main import main; sys.exit(main())"
)
PROFILED = (
    "import sys, cProfile; sys.path.insert(0, {src!r}); sys.argv[0] = 'mlpipe';"
    "from mlpipe.cli.main import main; cProfile.run('main()', {out!r})"
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(scenario.PRESETS), default="small")
    parser.add_argument("--work", type=Path, default=bench_run.BENCH / "work")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument(
        "--source", action="append", default=[], help="NAME=DIR (default: this tree's runner/)"
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter mlpipe runs with")
    parser.add_argument(
        "--dvc", type=Path, default=None, help="dvc executable (only to generate the scenario)"
    )
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--requests", action="store_true")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--phases",
        type=int,
        default=0,
        metavar="N",
        help="N traced runs per source: each phase's time stamps and CPU, per thread (fresh_phases.py)",
    )
    args = parser.parse_args()
    sources = dict(s.split("=", 1) for s in args.source) or {"this": str(bench_run.REPO / "runner")}
    sources = {name: str(Path(src).resolve()) for name, src in sources.items()}
    preset = scenario.PRESETS[args.preset]
    work: Path = args.work.resolve() / preset.name
    env = bench_run.child_env(bench_run.real_python("python3"))
    dvc = bench_run.ensure_dvc(args.dvc, "python3")
    origin = work / "origin"
    scenario.generate(preset, origin, dvc)
    logs = work / "fresh-logs"
    scenario.remove_tree(logs)

    def argv(src: str) -> list[str]:
        return [args.python, "-c", LAUNCHER.format(src=src), "ci-run", "--cache", cache]

    with (
        bench_run.local_registry(work / "fresh-registry") as registry,
        Delayed(registry.port, args.latency_ms) as port,
    ):
        cache = f"oci://127.0.0.1:{port}/bench/fresh"
        seed = work / "fresh-seed"
        scenario.clone(origin, seed)
        first = next(iter(sources.values()))
        run_once(argv(first), seed, env, logs / "seed.log")
        scenario.remove_tree(seed)
        clone = work / "fresh-clone"
        if args.requests:
            for name, src in sources.items():
                scenario.clone(origin, clone)
                trace = logs / f"{name}-requests.json"
                code = TRACED.format(src=src, out=str(trace))
                run_once(
                    [args.python, "-c", code, "ci-run", "--cache", cache], clone, env, logs / f"{name}.log"
                )
                seen = sorted(json.loads(trace.read_text()))
                span = max(start + took for start, took, *_ in seen) - seen[0][0]
                print(
                    f"## {name}: {len(seen)} requests in {span} ms (start ms, duration ms, thread, method, path)"
                )
                for row in seen:
                    print("   ", *row)
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            for name, src in sources.items():
                scenario.clone(origin, clone)
                out = str(args.profile.resolve() / f"{name}.prof")
                code = PROFILED.format(src=src, out=out)
                run_once(
                    [args.python, "-c", code, "ci-run", "--cache", cache], clone, env, logs / f"{name}.log"
                )
                print(f"profile of {name}: {out}")
        if args.phases:
            traced = {name: ([], [], []) for name in sources}
            for rep in range(args.phases):
                for name, src in sources.items():
                    scenario.clone(origin, clone)
                    time.sleep(0.2)
                    out = logs / f"{name}-phases-{rep}.json"
                    code = phases.launcher(src, str(out))
                    sample = run_once(
                        [args.python, "-c", code, "ci-run", "--cache", cache],
                        clone,
                        env,
                        logs / f"{name}.log",
                    )
                    traces, walls, cpus = traced[name]
                    traces.append(phases.load(out))
                    walls.append(sample.seconds)
                    cpus.append(sample.cpu_seconds)
            for name, (traces, walls, cpus) in traced.items():
                print(f"## phases of {name} (medians of {args.phases} traced runs)")
                print(phases.report(traces, walls, cpus))
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in sources}
        for _rep in range(args.reps):
            for name, src in sources.items():
                scenario.clone(origin, clone)
                time.sleep(0.2)
                sample = run_once(argv(src), clone, env, logs / f"{name}.log")
                samples[name].append((sample.seconds, sample.cpu_seconds))
        scenario.remove_tree(clone)
    for name, got in samples.items():
        if not got:
            continue
        wall = [w for w, _ in got]
        cpu = [c for _, c in got]
        print(
            f"{name:>10}: wall {1000 * statistics.median(wall):6.0f} ms ({1000 * min(wall):.0f}-{1000 * max(wall):.0f})"
            f"  cpu {1000 * statistics.median(cpu):6.0f} ms ({1000 * min(cpu):.0f}-{1000 * max(cpu):.0f})"
            f"  n={len(got)}"
        )
    names = [name for name, got in samples.items() if got]
    for other in names[1:]:
        first = names[0]
        pairs = list(zip(samples[first], samples[other], strict=False))
        if pairs:
            wall = statistics.median(b[0] - a[0] for a, b in pairs)
            cpu = statistics.median(b[1] - a[1] for a, b in pairs)
            print(
                f"{other} - {first}: median of {len(pairs)} paired differences: wall {1000 * wall:+.0f} ms, "
                f"cpu {1000 * cpu:+.0f} ms"
            )
    return 0


class Delayed:
    """A TCP forwarder on 127.0.0.1 that holds every chunk a client sends for `delay_ms` before passing it on to
    127.0.0.1:`upstream` (answers go back at once): each request costs one extra `delay_ms`, as a round trip
    across a network does. With no delay, the registry's own port."""

    def __init__(self, upstream: int, delay_ms: float) -> None:
        self.upstream, self.delay = upstream, delay_ms / 1000
        self.server: socket.socket | None = None

    def __enter__(self) -> int:
        if not self.delay:
            return self.upstream
        self.server = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()
        return int(self.server.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.close()

    def _accept(self) -> None:
        while self.server is not None:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            for source, dest, delay in ((client, upstream, self.delay), (upstream, client, 0.0)):
                threading.Thread(target=self._pipe, args=(source, dest, delay), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, dest: socket.socket, delay: float) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 16):
                if delay:
                    time.sleep(delay)
                dest.sendall(data)
        with contextlib.suppress(OSError):
            dest.shutdown(socket.SHUT_WR)


if __name__ == "__main__":
    sys.exit(main())
