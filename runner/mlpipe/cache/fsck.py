"""`fsck` of a local store (layout in cache/local.py): is every stored thing what its name says?

Problems (the store is not whole): an object whose content does not hash to its name or whose mode does not
match its `.x` suffix or is writable; a result entry that does not parse, is filed under another fingerprint or
names an object that is not stored; a materialized tree whose files are not the objects its manifest names;
a temp file (in tmp/ or objects/*/) while no run uses the store. Warnings: a `latest/` pointer to a result
that is not stored (gc removed it; `plan` then compares with nothing), a materialized tree no result names.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlpipe.cache.local import FARM_STAT_SUFFIX, read_result
from mlpipe.digest import Manifest, file_sha256
from mlpipe.records import load_json

HEX64 = re.compile(r"[0-9a-f]{64}")
OBJECT_NAME = re.compile(r"[0-9a-f]{62}(\.x)?")


@dataclass(kw_only=True)
class FsckReport:
    objects: int = 0
    results: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def whole(self) -> bool:
        return not self.problems


def check_store(root: Path, *, idle: bool) -> FsckReport:
    """Check the store at `root`; temp files count as strays only when `idle` (no run uses the store)."""
    report = FsckReport()
    inodes = _check_objects(root, report, idle=idle)
    manifests = _check_results(root, report)
    _check_latest(root, manifests, report)
    _check_trees(root, report)
    _check_materialized(root, manifests, inodes, report)
    if idle:
        for path in _listdir(root / "tmp"):
            report.problems.append(
                f"stray temp {_rel(root, path)}: left by a run that ended (mlpipe gc removes it)"
            )
    return report


def _rel(root: Path, path: Path) -> str:
    return str(path.relative_to(root))


def _listdir(directory: Path) -> list[Path]:
    try:
        return sorted(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _check_objects(root: Path, report: FsckReport, *, idle: bool) -> dict[tuple[int, int], str]:
    """Hash every object; return (device, inode) -> object name, to recognize materialized hard links."""
    inodes: dict[tuple[int, int], str] = {}
    for directory in _listdir(root / "objects"):
        if not (len(directory.name) == 2 and directory.is_dir()):
            report.problems.append(f"unexpected {_rel(root, directory)} in objects/")
            continue
        for path in _listdir(directory):
            rel = _rel(root, path)
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                if idle:
                    report.problems.append(f"stray temp {rel}: left by a write that never finished")
                continue
            if not OBJECT_NAME.fullmatch(path.name):
                report.problems.append(f"unexpected file {rel}: not an object name")
                continue
            report.objects += 1
            problem = _check_object(path, directory.name + path.name[:62], path.name.endswith(".x"))
            if problem:
                report.problems.append(f"bad object {rel}: {problem}")
            else:
                st = path.stat()
                inodes[(st.st_dev, st.st_ino)] = directory.name + path.name
    return inodes


def _check_object(path: Path, sha256: str, executable: bool) -> str:
    st = path.lstat()
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o222:
        return f"writable (mode {mode:04o}); objects are read-only"
    if executable != bool(mode & stat.S_IXUSR):
        want = "an executable (mode 0555)" if executable else "not executable (mode 0444)"
        return f"mode {mode:04o}, but its name says {want}"
    try:
        actual = file_sha256(path)
    except OSError as error:
        return f"unreadable: {error.strerror}"
    if actual != sha256:
        return f"content hashes to {actual}, not to its name"
    return ""


def _check_results(root: Path, report: FsckReport) -> dict[str, Manifest]:
    """Parse every result and check its objects are stored; return output digest -> manifest."""
    manifests: dict[str, Manifest] = {}
    for path in _files(root / "results"):
        rel = _rel(root, path)
        fingerprint = path.name.removesuffix(".json")
        if (
            not (path.name.endswith(".json") and HEX64.fullmatch(fingerprint))
            or path.parent.name != fingerprint[:2]
        ):
            report.problems.append(f"unexpected file {rel}: not a result entry")
            continue
        report.results += 1
        try:
            result = read_result(path, rel)
            outputs = {name: (m, m.digest) for name, m in result.outputs.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            report.problems.append(f"bad result {rel}: does not parse: {error!r}")
            continue
        if result.fingerprint != fingerprint:
            report.problems.append(f"bad result {rel}: it is the entry of {result.fingerprint!r}")
        for name, (manifest, digest) in outputs.items():
            manifests[digest.removeprefix("sha256:")] = manifest
            for entry in manifest.entries:
                if not HEX64.fullmatch(str(entry.sha256)):
                    report.problems.append(
                        f"bad result {rel}: output {name!r} file {entry.path!r} has digest {entry.sha256!r}"
                    )
                    continue
                suffix = ".x" if entry.executable else ""
                obj = root / "objects" / entry.sha256[:2] / (entry.sha256[2:] + suffix)
                if not obj.is_file():
                    report.problems.append(
                        f"missing object {_rel(root, obj)} of result {rel} (output {name!r}, file {entry.path!r})"
                    )
    return manifests


def _files(top: Path) -> Iterator[Path]:
    for directory in _listdir(top):
        yield from _listdir(directory) if directory.is_dir() else [directory]


def _check_latest(root: Path, manifests: dict[str, Manifest], report: FsckReport) -> None:
    for path in _files(root / "latest"):
        rel = _rel(root, path)
        try:
            fingerprint = load_json(path.read_bytes(), rel)["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            report.problems.append(f"bad pointer {rel}: does not parse: {error!r}")
            continue
        target = root / "results" / str(fingerprint)[:2] / f"{fingerprint}.json"
        if not target.is_file():
            report.warnings.append(
                f"{rel} points to result {fingerprint}, which is not stored (removed by gc?)"
            )


def _check_trees(root: Path, report: FsckReport) -> None:
    for path in _files(root / "trees"):
        try:
            load_json(path.read_bytes(), _rel(root, path))["files"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            report.problems.append(f"bad listing {_rel(root, path)}: does not parse: {error!r}")


def _check_materialized(
    root: Path, manifests: dict[str, Manifest], inodes: dict[tuple[int, int], str], report: FsckReport
) -> None:
    for top in _listdir(root / "materialized"):
        if top.name.endswith(FARM_STAT_SUFFIX):
            continue  # a farm's stat record, beside it (cache/local.py)
        rel = _rel(root, top)
        digest = top.name.split("-", 1)[0]
        if top.is_symlink():  # an alias: the same file under another output name
            target = Path(os.readlink(top))
            if not (top.exists() and target.parent.parent == top.parent and target.parent.name == digest):
                report.problems.append(
                    f"bad alias {rel}: points to {target}, not into materialized/{digest}/"
                )
            continue
        manifest = manifests.get(digest)
        if manifest is None:
            report.warnings.append(
                f"{rel} is materialized but no stored result names it (mlpipe gc removes it)"
            )
            continue
        problem = _check_tree(root, top, manifest, inodes)
        if problem:
            report.problems.append(f"bad materialized tree {rel}: {problem}")


def _check_tree(root: Path, top: Path, manifest: Manifest, inodes: dict[tuple[int, int], str]) -> str:
    if manifest.type == "file":
        found = _listdir(top)
        if len(found) != 1:
            return f"holds {len(found)} files, expected 1"
        base, expected = found[0], {""}
    else:
        base = top / "d"
        expected = {e.path for e in manifest.entries}
    present = set(_walk(base)) if manifest.type == "dir" else {""}
    if present != expected:
        extra, missing = sorted(present - expected), sorted(expected - present)
        return f"files differ from its manifest (extra {extra[:3]}, missing {missing[:3]})"
    for entry in manifest.entries:
        path = base / entry.path if entry.path else base
        name = entry.sha256 + (".x" if entry.executable else "")
        if entry.kind == "link":
            obj = root / "objects" / entry.sha256[:2] / entry.sha256[2:]
            if not path.is_symlink() or not obj.is_file() or os.readlink(path).encode() != obj.read_bytes():
                return f"{entry.path or path.name!r} is not the link its manifest names"
            continue
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode):
            return f"{entry.path or path.name!r} is not a regular file"
        if inodes.get((st.st_dev, st.st_ino)) != name and file_sha256(path) != entry.sha256:
            return f"{entry.path or path.name!r} is neither its object nor of the same content"
    return ""


def _walk(base: Path) -> Iterator[str]:
    for directory, dirs, files in os.walk(base):
        rel = os.path.relpath(directory, base)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        for name in files:
            yield prefix + name
        for name in dirs:  # links to directories are listed among dirs; os.walk does not follow them
            if os.path.islink(os.path.join(directory, name)):
                yield prefix + name
