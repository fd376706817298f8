"""The runner's GPUs: discovered with nvidia-smi (or restricted by MLPIPE_GPUS) and handed out in disjoint sets.

A host step gets its set through `CUDA_VISIBLE_DEVICES`, a container step the same devices in the engine's
`device_requests`. Steps that need more GPUs than are free wait; one that needs more than the runner has at
all fails at plan time (`check_fits`).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from mlpipe.errors import MlpipeError
from mlpipe.frozen import frozen

QUERY = ["--query-gpu=index,name,memory.total,driver_version", "--format=csv,noheader"]


class GpuError(MlpipeError):
    """GPUs cannot be discovered, or a step needs more than the runner has."""


@frozen(kw_only=True)
class Gpu:
    index: str
    """As nvidia-smi numbers it: what CUDA_VISIBLE_DEVICES and device_requests take."""
    name: str
    memory_mib: int | None = None
    driver: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "memory_mib": self.memory_mib, "driver": self.driver}

    def __str__(self) -> str:
        memory = f" {self.memory_mib} MiB" if self.memory_mib else ""
        return f"GPU {self.index}: {self.name}{memory}"


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """`nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader` output."""
    gpus = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 4 or not fields[0].isdigit():
            continue
        index, name, memory, driver = fields
        size = memory.split()[0] if memory else ""
        gpus.append(
            Gpu(index=index, name=name, memory_mib=int(size) if size.isdigit() else None, driver=driver)
        )
    return gpus


def discover(env: Mapping[str, str]) -> list[Gpu]:
    """This runner's GPUs; `MLPIPE_GPUS=0,2` keeps only those (empty: none), also where nvidia-smi is missing.
    `env`: the command's settings' environment (its PATH finds nvidia-smi)."""
    smi = shutil.which("nvidia-smi", path=env.get("PATH"))
    found: list[Gpu] = []
    if smi is not None:
        try:
            done = subprocess.run(
                [smi, *QUERY], capture_output=True, text=True, timeout=60, check=False, env=dict(env)
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise GpuError(f"nvidia-smi could not list the GPUs: {error}") from None
        if done.returncode != 0:
            raise GpuError(
                f"nvidia-smi exited {done.returncode}: {done.stderr.strip() or done.stdout.strip()}"
            )
        found = parse_nvidia_smi(done.stdout)
    wanted = env.get("MLPIPE_GPUS")
    if wanted is None:
        return found
    indices = [i.strip() for i in wanted.split(",") if i.strip()]
    if smi is None:
        return [Gpu(index=i, name="unknown") for i in indices]
    by_index = {g.index: g for g in found}
    unknown = [i for i in indices if i not in by_index]
    if unknown:
        have = ", ".join(by_index) or "none"
        raise GpuError(
            f"MLPIPE_GPUS names GPU {', '.join(unknown)}, which nvidia-smi does not list (it lists {have})"
        )
    return [by_index[i] for i in indices]


def why_no_gpus(env: Mapping[str, str]) -> str:
    if env.get("MLPIPE_GPUS", None) is not None and not env["MLPIPE_GPUS"].strip():
        return "MLPIPE_GPUS is empty"
    if shutil.which("nvidia-smi", path=env.get("PATH")) is None:
        return "no nvidia-smi on PATH"
    return "nvidia-smi found no GPU"


def check_fits(
    needs: Mapping[str, int], gpus: Sequence[Gpu], *, why_none: str = "nvidia-smi found no GPU"
) -> None:
    """Every step's `resources.gpus` fits on this runner at all (else it would wait forever).

    `why_none`: why the runner has no GPU, when it has none (`why_no_gpus`)."""
    too_many = {name: n for name, n in needs.items() if n > len(gpus)}
    if not too_many:
        return
    have = f"{len(gpus)} ({'; '.join(map(str, gpus))})" if gpus else f"none ({why_none})"
    steps = "; ".join(f"step {name!r} needs {n} GPU{'s' if n != 1 else ''}" for name, n in too_many.items())
    raise GpuError(
        f"{steps}, and this runner has {have}; run it on a runner with more GPUs, or lower its resources.gpus"
    )


class GpuPool:
    """Disjoint sets of GPUs for steps running at once (thread-safe)."""

    def __init__(self, gpus: Sequence[Gpu]) -> None:
        self._free = list(gpus)
        self._lock = threading.Lock()

    def available(self) -> int:
        with self._lock:
            return len(self._free)

    def take(self, count: int) -> tuple[Gpu, ...] | None:
        """`count` free GPUs (lowest indices first), or None when fewer are free."""
        with self._lock:
            if count > len(self._free):
                return None
            taken, self._free = self._free[:count], self._free[count:]
            return tuple(taken)

    def give_back(self, gpus: Sequence[Gpu]) -> None:
        with self._lock:
            self._free = sorted([*self._free, *gpus], key=lambda g: (len(g.index), g.index))
