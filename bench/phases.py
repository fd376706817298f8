"""Where a run's own time goes, per phase, whichever thread does it (issue 18: the work of a step happens on its
own thread, so a profile of the main thread shows only waits).

    cd CLONE && python3 /path/to/bench/phases.py /path/to/tree/runner OUT.json ci-run

Runs `mlpipe ARGS` from that `runner/` and wraps the functions named in TARGETS: each call's thread CPU time
(time.thread_time) and wall time are summed per function. At exit writes OUT.json: wall, the process's own CPU and
its children's (the steps, git), the time its imports took, and per function [CPU s, wall s, calls]. Nested
targets are counted in both (Runner._start includes private_copy and HostExecutor.start).
"""

import atexit
import collections
import functools
import importlib
import json
import resource
import sys
import threading
import time

src, out = sys.argv[1], sys.argv[2]
sys.argv = ["mlpipe", *sys.argv[3:]]
sys.path.insert(0, src)
t0 = time.perf_counter()
acc = collections.defaultdict(lambda: [0.0, 0.0, 0])
lock = threading.Lock()
marks = {}
TARGETS = [
    ("mlpipe.run.prepare", None, "_input_digests"),
    ("mlpipe.run.prepare", None, "prepare"),
    ("mlpipe.api.ci_run", None, "_run"),
    ("mlpipe.run.runner", "Runner", "_start"),
    ("mlpipe.run.runner", "Runner", "_complete"),
    ("mlpipe.run.runner", "Runner", "_finish"),
    ("mlpipe.run.runner", "Runner", "_check_inputs"),
    ("mlpipe.run.runner", "Runner", "_check_out_paths"),
    ("mlpipe.run.runner", "Runner", "_input_paths"),
    ("mlpipe.run.runner", None, "private_copy"),
    ("mlpipe.run.runner", None, "remove_tree"),
    ("mlpipe.runs", "RunHistory", "write"),
    ("mlpipe.executors.host", "HostExecutor", "start"),
    ("mlpipe.executors.host", "HostStep", "wait"),
]


def wrap(name, fn):
    @functools.wraps(fn)
    def inner(*a, **k):
        c, w = time.thread_time(), time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            dc, dw = time.thread_time() - c, time.perf_counter() - w
            with lock:
                e = acc[name]
                e[0] += dc
                e[1] += dw
                e[2] += 1

    return inner


def install():
    for mod, cls, fn in TARGETS:
        m = importlib.import_module(mod)
        owner = getattr(m, cls) if cls else m
        setattr(owner, fn, wrap(f"{mod.split('.')[-1]}.{cls + '.' if cls else ''}{fn}", getattr(owner, fn)))
    # the store's publish (ResultStore in cache/tiered or local)
    from mlpipe.cache import local

    for fn in ("publish", "materialize", "check_handed", "checkout"):
        if hasattr(local.LocalStore, fn):
            setattr(local.LocalStore, fn, wrap(f"LocalStore.{fn}", getattr(local.LocalStore, fn)))


def dump():
    self, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    data = {
        "wall": time.perf_counter() - t0,
        "self_cpu": self.ru_utime + self.ru_stime,
        "children_cpu": kids.ru_utime + kids.ru_stime,
        "imports_done": marks.get("imports"),
        "funcs": dict(acc),
    }
    with open(out, "w") as f:
        json.dump(data, f)


atexit.register(dump)
from mlpipe.cli.main import main

for name in ("mlpipe.cli.ci_run", "mlpipe.api.ci_run", "mlpipe.run.runner", "mlpipe.executors.host"):
    importlib.import_module(name)
marks["imports"] = time.perf_counter() - t0
install()
sys.exit(main())
