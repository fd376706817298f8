"""Snapshots against git itself: every expected tree id is computed by git from the same files."""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import pytest

from conftest import git
from mlpipe.snapshot import (
    EMPTY_TREE,
    Snapshot,
    Snapshotter,
    take_snapshot,
)

# -- oracles -------------------------------------------------------------------------------------------------


def copy_worktree(src: Path, dst: Path, *, amlignore: bool = False) -> Path:
    """A copy of the work tree without `.git`; with `amlignore`, each .amlignore becomes the .gitignore."""
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    if amlignore:
        for aml in sorted(dst.rglob(".amlignore")):
            aml.replace(aml.with_name(".gitignore"))
    return dst


def git_tree(worktree: Path, scratch: Path, subdir: str = "", *, amlignore: bool = False) -> str:
    """The tree id git writes for `subdir` of a copy of `worktree` under the same ignore rules."""
    copy = copy_worktree(worktree, scratch, amlignore=amlignore)
    git(copy, "init", "-q")
    git(copy, "add", "-A")
    tree = git(copy, "write-tree").strip()
    if not subdir:
        return tree
    try:
        return git(copy, "rev-parse", f"{tree}:{subdir}").strip()
    except Exception:
        return EMPTY_TREE  # git drops an all-ignored or empty directory


def git_files(worktree: Path, scratch: Path, *, amlignore: bool = False) -> list[str]:
    """Untracked files git would add, per `ls-files --others` with only the per-directory rule files."""
    copy = copy_worktree(worktree, scratch, amlignore=amlignore)
    git(copy, "init", "-q")
    out = git(copy, "ls-files", "-z", "--others", "--exclude-per-directory=.gitignore")
    return sorted(p for p in out.split("\0") if p)


def paths(snapshot: Snapshot) -> list[str]:
    return [f.path for f in snapshot.files]


# -- generated trees -----------------------------------------------------------------------------------------

NAMES = [
    "a", "b", "build", "data", "deep", "logs", "keep", "x.py", "y.txt", "z.log", "a.log",
    "foo bar", "trail ", "#hash", "!bang", "é.py", "日本.txt", "Makefile", "[ab]", "x.pyc", "\\back",
]  # fmt: skip

PATTERNS = [
    "*.log", "/build", "build/", "!keep.log", "!a.log", "data/**", "!data/keep", "**/deep", "a/**/b",
    "\\#hash", "\\!bang", "trail\\ ", "trail", "foo\\ bar", "foo bar   ", "*.py", "!x.py", "deep/", "/a/b/",
    "[ab]", "\\[ab]", "?.txt", "**/*.txt", "*.txt   ", "x.p[yz]", "logs/*", "!logs/y.txt", "!deep/", "a/",
    "*", "!*/", "!*.py", "b/**/", "**/b/*.log", "# comment", "", "/*.log", "é.py", "日本*", "!/a",
    "a/**", "!b", "data/", "!data/", "**", "\\\\back", "*.pyc", "deep/**/x.py", "\\ ", "/keep/",
]  # fmt: skip


def generate_tree(root: Path, rng: random.Random, *, amlignore: bool = False) -> None:
    """A random tree with nested rule files, symlinks, exec bits and empty dirs."""

    def fill(directory: Path, depth: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name in rng.sample(NAMES, rng.randint(2, 6)):
            path = directory / name
            roll = rng.random()
            if depth < 3 and roll < 0.3:
                fill(path, depth + 1)
            elif roll < 0.36:
                path.symlink_to(rng.choice(["x.py", "../a", "missing", "data"]))
            elif roll < 0.4:
                path.mkdir()  # stays empty
            else:
                path.write_bytes(f"{name} {rng.random()}\n".encode())
                if rng.random() < 0.2:
                    path.chmod(0o755)
        for rule_file in (".gitignore", ".amlignore") if amlignore else (".gitignore",):
            if rng.random() < 0.6:
                lines = rng.sample(PATTERNS, rng.randint(1, 5))
                (directory / rule_file).write_text("\n".join(lines) + rng.choice(["\n", "", "\r\n"]))

    fill(root, 0)


@pytest.mark.parametrize("seed", range(40))
def test_generated_tree_matches_git(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    work = tmp_path / "work"
    generate_tree(work, rng)
    git(work, "init", "-q", "-b", "main")

    assert paths(take_snapshot(work)) == git_files(work, tmp_path / "files")
    untracked = take_snapshot(work)
    assert untracked.tree == git_tree(work, tmp_path / "oracle")

    git(work, "add", "-A")
    git(work, "commit", "-q", "--allow-empty", "-m", "generated")
    time.sleep(0)  # the index is racy now: every entry must be rehashed, and still agree
    committed = take_snapshot(work)
    assert committed.tree == untracked.tree == git(work, "rev-parse", "HEAD^{tree}").strip()

    subdirs = sorted({f.path.split("/")[0] for f in committed.files if "/" in f.path})
    snapshotter = Snapshotter(work)
    for sub in subdirs:
        expected = git(work, "rev-parse", f"HEAD:{sub}").strip()
        assert snapshotter.snapshot(work / sub).tree == expected, sub


def without_rule_files(names: list[str]) -> list[str]:
    return sorted(p for p in names if p.rsplit("/", 1)[-1] not in {".gitignore", ".amlignore"})


@pytest.mark.parametrize("seed", range(20))
def test_generated_amlignore_replaces_gitignore(tmp_path: Path, seed: int) -> None:
    rng = random.Random(1000 + seed)
    work = tmp_path / "work"
    generate_tree(work, rng, amlignore=True)
    git(work, "init", "-q", "-b", "main")
    snapshot = take_snapshot(work)
    # The oracle: each .amlignore renamed over its directory's .gitignore, read by git.
    expected = git_files(work, tmp_path / "files", amlignore=True)
    assert without_rule_files(paths(snapshot)) == without_rule_files(expected)
