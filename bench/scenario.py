"""The benchmark scenario: a git repo with 10 steps, 200 source files and a git-ignored data directory, plus
the same pipeline three ways: `mlpipe.yaml`, `dvc.yaml` (data tracked with `dvc add`) and `bare.sh`.

Everything is generated from a fixed seed, so two runs of a preset build byte-identical scenarios.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

STEPS = tuple(f"s{i:02d}" for i in range(1, 11))
FAN_IN = {"s04": "s01", "s07": "s04", "s10": "s07"}
"""Extra edges on top of the chain s01 -> s02 -> ... -> s10."""
MODULES_PER_STEP = 19
"""Helper modules per step dir, next to step.py: 20 source files per step."""
DATA = "data"
CHANGED_CODE_FILE = "steps/s05/mod01.py"
TEMPLATES = Path(__file__).resolve().parent / "templates"

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@dataclass(frozen=True, kw_only=True)
class Preset:
    name: str
    files: int
    files_per_dir: int
    min_size: int = 25_000
    max_size: int = 75_000
    seed: int = 20240101


PRESETS = {
    "small": Preset(name="small", files=1_000, files_per_dir=100),  # ~50 MB
    "large": Preset(name="large", files=20_000, files_per_dir=200),  # ~1 GB
}


def upstream(step: str) -> list[str]:
    index = STEPS.index(step)
    ups = [STEPS[index - 1]] if index else []
    return ups + ([FAN_IN[step]] if step in FAN_IN else [])


# -- the pipeline, three ways --------------------------------------------------------------------------------
def mlpipe_yaml() -> str:
    lines = ["name: bench", "steps:"]
    for step in STEPS:
        ins = upstream(step)
        args = " ".join(f"${{{{ inputs.{u} }}}}" for u in ins)
        data = " --data ${{ inputs.data }}" if step == "s01" else ""
        lines += [
            f"  {step}:",
            f"    code: steps/{step}",
            f"    run: python3 step.py --out ${{{{ outputs.result }}}}{data} {args}".rstrip(),
            "    inputs:",
        ]
        lines += [f"      data: {DATA}"] if step == "s01" else []
        lines += [f"      {u}: ${{{{ steps.{u}.outputs.result }}}}" for u in ins]
        lines += ["    outputs:", f"      result: {{type: file, path: out/{step}.json}}"]
    return "\n".join(lines) + "\n"


def step_command(step: str) -> str:
    """The command as DVC and the bare script run it, from the repository root."""
    data = f" --data {DATA}" if step == "s01" else ""
    args = "".join(f" out/{u}.json" for u in upstream(step))
    return f"python3 steps/{step}/step.py --out out/{step}.json{data}{args}"


def dvc_yaml() -> str:
    lines = ["stages:"]
    for step in STEPS:
        deps = (
            [f"steps/{step}"] + ([DATA] if step == "s01" else []) + [f"out/{u}.json" for u in upstream(step)]
        )
        lines += [f"  {step}:", f"    cmd: {step_command(step)}", "    deps:"]
        lines += [f"      - {d}" for d in deps]
        lines += ["    outs:", f"      - out/{step}.json"]
    return "\n".join(lines) + "\n"


def bare_script() -> str:
    return "set -e\nmkdir -p out\n" + "".join(step_command(s) + "\n" for s in STEPS)


def helper_module(step: str, number: int) -> str:
    constant = int(hashlib.sha256(f"{step}/{number}".encode()).hexdigest()[:8], 16)
    return (
        f'"""Helper {number} of step {step}."""\n\n'
        f"CONSTANT = {constant}\n\n\n"
        f"def helper_{number:02d}(x: int) -> int:\n"
        f"    return (x * CONSTANT + {number}) % 1_000_003\n"
    )


# -- generation ----------------------------------------------------------------------------------------------
def data_files(preset: Preset) -> list[str]:
    return [f"d{i // preset.files_per_dir:03d}/f{i:05d}.bin" for i in range(preset.files)]


def write_data(top: Path, preset: Preset) -> int:
    rng = random.Random(preset.seed)
    total = 0
    for rel in data_files(preset):
        path = top / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        size = rng.randint(preset.min_size, preset.max_size)
        path.write_bytes(rng.randbytes(size))
        total += size
    return total


def write_sources(root: Path) -> None:
    step_py = (TEMPLATES / "step.py").read_text()
    for step in STEPS:
        code = root / "steps" / step
        code.mkdir(parents=True)
        (code / "step.py").write_text(step_py)
        for number in range(1, MODULES_PER_STEP + 1):
            (code / f"mod{number:02d}.py").write_text(helper_module(step, number))
    (root / "mlpipe.yaml").write_text(mlpipe_yaml())
    (root / "dvc.yaml").write_text(dvc_yaml())
    (root / "bare.sh").write_text(bare_script())
    (root / ".gitignore").write_text(f"/{DATA}/\n/out/\n.mlpipe/\n")


def generate(preset: Preset, origin: Path, dvc: str) -> bool:
    """Builds the origin repo (code, pipelines, data, data.dvc committed); False when it was already there."""
    marker = origin / ".bench-scenario.json"
    identity = json.dumps({"preset": asdict(preset), "templates": _templates_digest(), "dvc": dvc})
    if marker.is_file() and marker.read_text() == identity:
        return False
    if origin.exists():
        remove_tree(origin)
    origin.mkdir(parents=True)
    write_sources(origin)
    write_data(origin / DATA, preset)
    git(origin, "init", "-q", "-b", "main")
    git(origin, "add", ".")
    git(origin, "commit", "-q", "-m", "scenario")
    run([dvc, "init", "-q"], origin)
    run([dvc, "config", "core.analytics", "false"], origin)
    run([dvc, "add", "-q", DATA], origin)
    git(origin, "add", "-A", ".dvc", ".dvcignore", f"{DATA}.dvc", ".gitignore")
    git(origin, "commit", "-q", "-m", "dvc init; dvc add data")
    # Clones start with empty DVC caches; the origin only serves `git clone` and the data files.
    remove_tree(origin / ".dvc" / "cache")
    remove_tree(origin / ".dvc" / "tmp")
    marker.write_text(identity)
    return True


def _templates_digest() -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    for path in sorted(TEMPLATES.iterdir()):
        h.update(path.read_bytes())
    return h.hexdigest()


def clone(origin: Path, dest: Path) -> None:
    """A fresh clone with a copy of the origin's data.

    Copies, not hard links: linking or unlinking a file changes its inode's ctime, which would make one
    clone's setup invalidate another tool's stat cache (mlpipe's and DVC's both key on ctime or inode).
    """
    if dest.exists():
        remove_tree(dest)
    git(origin.parent, "clone", "-q", str(origin), str(dest))
    for dirpath, _dirnames, filenames in os.walk(origin / DATA):
        target = dest / os.path.relpath(dirpath, origin)
        target.mkdir(exist_ok=True)
        for name in filenames:
            shutil.copyfile(os.path.join(dirpath, name), target / name)
    os.sync()  # write the copies back now, not while the next command is being timed


# -- changes -------------------------------------------------------------------------------------------------
def change_code(root: Path, revision: int) -> None:
    """Edits one source file of s05 and commits it, as a CI run would see it."""
    with open(root / CHANGED_CODE_FILE, "a") as f:
        f.write(f"# revision {revision}\n")
    git(root, "commit", "-q", "-am", f"s05 revision {revision}")


def change_data(root: Path, preset: Preset, revision: int) -> str:
    """Replaces one data file with new bytes of the same size (written aside, then renamed over it)."""
    rng = random.Random(preset.seed * 1000 + revision)
    rel = rng.choice(data_files(preset))
    path = root / DATA / rel
    size = path.stat().st_size
    temp = path.with_name(path.name + ".new")
    temp.write_bytes(rng.randbytes(size))
    os.replace(temp, path)
    return rel


# -- helpers -------------------------------------------------------------------------------------------------
def run(argv: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None) -> None:
    full_env = {**os.environ, **GIT_ENV, **(env or {})}
    done = subprocess.run(argv, cwd=cwd, env=full_env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed in {cwd} ({done.returncode}):\n{done.stdout}{done.stderr}"
        )


def git(cwd: Path, *args: str) -> None:
    run(["git", *args], cwd)


def remove_tree(path: Path) -> None:
    """rmtree that also removes read-only dirs (mlpipe's snapshots and store, DVC's cache)."""
    if not os.path.lexists(path):
        return
    for dirpath, _dirnames, _filenames in os.walk(path):
        os.chmod(dirpath, 0o755)
    shutil.rmtree(path)
