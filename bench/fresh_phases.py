"""Time stamps of a fresh CI runner's phases, per thread: `fresh.py --phases` runs mlpipe through `launcher()`.

The launcher imports the `ci-run` command's module itself (that span is "imports"), then wraps the functions
that mark a phase (opening the session, hashing the inputs, the stat cache's writes, the plan's registry reads,
the pulls, the checkouts, the run record's push): each call leaves (thread, label, start, end, thread CPU) and,
in the main thread, the process's CPU (every thread's) at its start and end. Every thread's whole CPU time is
taken when it ends. At exit it all goes to a JSON file that `report()` turns into two tables.

Only functions called a few hundred times are wrapped (a wrapper costs ~2 us a call); per-file calls are not.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TRACER = r'''
import atexit, functools, importlib, json, resource, sys, threading, time
T0 = time.perf_counter()
CPU0 = time.process_time()
EVENTS = []
THREADS = []

def _cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime

def _ms(t):
    return round(1000 * (t - T0), 2)

def mark(label, start, cpu_start, tcpu_start):
    end, thread = time.perf_counter(), threading.current_thread()
    main = thread is threading.main_thread()
    EVENTS.append((thread.name, label, _ms(start), _ms(end), round(1000 * (time.thread_time() - tcpu_start), 2),
                   round(1000 * (_cpu() - cpu_start), 2) if main else None))

def wrap(owner, name, label):
    original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
    @functools.wraps(original)
    def traced(*args, **kwargs):
        start, cpu, tcpu = time.perf_counter(), _cpu() if threading.current_thread() is threading.main_thread() else 0.0, time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            mark(label, start, cpu, tcpu)
    setattr(owner, name, traced)

_run = threading.Thread.run
def _thread_run(self):
    start, tcpu = time.perf_counter(), time.thread_time()
    try:
        _run(self)
    finally:
        THREADS.append((self.name, _ms(start), _ms(time.perf_counter()), round(1000 * (time.thread_time() - tcpu), 2)))
threading.Thread.run = _thread_run

def _dump():
    EVENTS.append(("MainThread", "(main returned)", _ms(time.perf_counter()), _ms(time.perf_counter()), 0, 0))
    json.dump({"cpu_at_start_ms": round(1000 * CPU0, 2), "cpu_at_exit_ms": round(1000 * _cpu(), 2),
               "events": EVENTS, "threads": THREADS}, open(OUT, "w"))
atexit.register(_dump)

PATCHES = [
    ("mlpipe.api.ci_run", None, "open_source", "open session (pipeline, settings, store)"),
    ("mlpipe.api.ci_run", None, "start_run", "locks"),
    ("mlpipe.api.ci_run", None, "prepare_steps", "prepare (snapshots, hashing, plan)"),
    ("mlpipe.run.prepare", "Snapshotter", "snapshot", "code snapshot"),
    ("mlpipe.run.prepare", None, "make_plan", "plan (registry reads)"),
    ("mlpipe.run.prepare", None, "git_info", "git info"),
    ("mlpipe.run.prepare", None, "_code_changes", "code changes"),
    ("mlpipe.run.prepare", None, "_earlier", "earlier finder"),
    ("mlpipe.digest", "FileHasher", "digest", "hash input (walks + hashing)"),
    ("mlpipe.digest", "FileHasher", "save", "stat cache save (final)"),
    ("mlpipe.digest", None, "walk_signature", "walk signature"),
    ("mlpipe.digest", None, "_signed_walk", "signature walk (lines kept)"),
    ("mlpipe.digest", "_Hashing", "_hash_round", "hash round (walk waits)"),
    ("mlpipe.digest", "_Entries", "_entries", "hash batch"),
    ("mlpipe.digest", "_EntryJson", "_entries", "hash batch"),
    ("mlpipe.statcache", "_FileTable", "save", "stat cache write (transaction)"),
    ("mlpipe.statcache", "_FileTable", "_query", "stat cache read (query)"),
    ("mlpipe.statcache", "_FileTable", "_open", "stat cache open"),
    ("mlpipe.cache.tiered", "TieredStore", "open_registry", "open registry (imports, client)"),
    ("mlpipe.cache.tiered", "TieredStore", "lookup", "runner lookup (waits for pull)"),
    ("mlpipe.cache.tiered", "TieredStore", "sync", "sync (run record push)"),
    ("mlpipe.cache.oci", "OciCache", "read_entry", "read entry (manifest, config)"),
    ("mlpipe.cache.oci", "OciCache", "pull_entry", "pull entry (layers)"),
    ("mlpipe.cache.oci", "OciCache", "push_run", "push run record"),
    ("mlpipe.cache.local", "LocalStore", "checkout", "checkout"),
    ("mlpipe.run.runner", "Runner", "run", "runner"),
    ("mlpipe.runs", "RunHistory", "write", "run record write"),
    ("requests.sessions", "Session", "request", "HTTP request"),
]

def patch(module):
    for name_, owner, name, label in PATCHES:
        if name_ == module.__name__:
            try:
                wrap(getattr(module, owner) if owner else module, name, label)
            except (AttributeError, KeyError) as error:
                print(f"phases: not traced: {name_}.{owner}.{name}: {error!r}", file=sys.stderr)

class _Finder:
    """Patches a module of PATCHES right after it is first executed (so its import stays where mlpipe does it)."""
    wanted = {p[0] for p in PATCHES}
    def find_spec(self, name, path, target=None):
        if name not in self.wanted:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        execute = spec.loader.exec_module
        def exec_module(module, execute=execute):
            execute(module)
            patch(module)
        spec.loader.exec_module = exec_module
        return spec

for _name in [n for n in sys.modules if n in _Finder.wanted]:
    patch(sys.modules[_name])
sys.meta_path.insert(0, _Finder())

sys.path.insert(0, SRC)
start, cpu, tcpu = time.perf_counter(), _cpu(), time.thread_time()
import mlpipe.cli.main, mlpipe.cli.ci_run
mark("imports (cli, ci-run command)", start, cpu, tcpu)

sys.argv[0] = "mlpipe"
from mlpipe.cli.main import main
sys.exit(main())
'''


def launcher(src: str, out: str) -> str:
    """`python -c` code: mlpipe from `src`, traced, the trace written to `out` at exit."""
    return f"SRC = {src!r}; OUT = {out!r}\n" + TRACER


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def summary(trace: dict[str, Any]) -> dict[tuple[str, str], dict[str, float]]:
    """(label, thread group) -> calls, first start, last end, summed wall, summed thread CPU, summed process CPU
    (main thread's calls only). Pool threads are grouped by their prefix (`ThreadPoolExecutor-0_1` -> `pool-0`)."""
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for thread, label, start, end, tcpu, pcpu in trace["events"]:
        key = (label, _group(thread))
        row = rows.setdefault(
            key, {"calls": 0, "first": start, "last": end, "wall": 0.0, "tcpu": 0.0, "pcpu": 0.0}
        )
        row["calls"] += 1
        row["first"] = min(row["first"], start)
        row["last"] = max(row["last"], end)
        row["wall"] += end - start
        row["tcpu"] += tcpu
        row["pcpu"] += pcpu or 0.0
    return rows


def _group(thread: str) -> str:
    if thread.startswith("ThreadPoolExecutor-"):
        return "pool-" + thread.split("-", 1)[1].split("_", 1)[0]
    return thread.rsplit("_", 1)[0] if "_" in thread else thread


def report(traces: Sequence[dict[str, Any]], walls: Sequence[float], cpus: Sequence[float]) -> str:
    """Medians over the traced runs: one row per (phase, thread group), in order of first start, then the
    threads' own CPU."""
    merged: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for trace in traces:
        for key, row in summary(trace).items():
            for field, value in row.items():
                merged[key][field].append(value)
    med = {k: {f: statistics.median(v) for f, v in fields.items()} for k, fields in merged.items()}
    lines = [
        (
            f"process: wall {statistics.median(walls) * 1000:.0f} ms, CPU {statistics.median(cpus) * 1000:.0f} ms "
            f"(whole command, medians of {len(walls)}); CPU before the launcher's first line "
            f"{statistics.median(t['cpu_at_start_ms'] for t in traces):.0f} ms, at exit "
            f"{statistics.median(t['cpu_at_exit_ms'] for t in traces):.0f} ms"
        ),
        "",
        "| phase | thread | calls | from ms | to ms | wall ms (summed) | thread CPU ms | process CPU ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (label, thread), row in sorted(med.items(), key=lambda kv: (kv[1]["first"], kv[0])):
        pcpu = f"{row['pcpu']:.0f}" if thread == "MainThread" else ""
        lines.append(
            f"| {label} | {thread} | {row['calls']:.0f} | {row['first']:.0f} | {row['last']:.0f} | "
            f"{row['wall']:.0f} | {row['tcpu']:.0f} | {pcpu} |"
        )
    threads: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for trace in traces:
        per: dict[str, list[float]] = defaultdict(lambda: [0, 1e12, 0.0, 0.0])
        for name, start, end, tcpu in trace["threads"]:
            acc = per[_group(name)]
            acc[0] += 1
            acc[1] = min(acc[1], start)
            acc[2] = max(acc[2], end)
            acc[3] += tcpu
        for group, (count, start, end, tcpu) in per.items():
            for field, value in (("threads", count), ("first", start), ("last", end), ("tcpu", tcpu)):
                threads[group][field].append(value)
    lines += [
        "",
        "| thread group | threads | from ms | to ms | thread CPU ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for group, fields in sorted(threads.items(), key=lambda kv: statistics.median(kv[1]["first"])):
        m = {f: statistics.median(v) for f, v in fields.items()}
        lines.append(
            f"| {group} | {m['threads']:.0f} | {m['first']:.0f} | {m['last']:.0f} | {m['tcpu']:.0f} |"
        )
    return "\n".join(lines)
