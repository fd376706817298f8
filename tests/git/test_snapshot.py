"""Snapshots against git itself: every expected tree id is computed by git from the same files."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlpipe.cli.snapshot import command as snapshot_command
from mlpipe.git.snapshot import EMPTY_TREE, Snapshot, SnapshotFile, Snapshotter, diff_files, take_snapshot
from mlpipe_testing import git, make_repo, write_files

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
    except subprocess.CalledProcessError:
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


# -- pattern cases where dulwich alone disagrees with git ----------------------------------------------------

TRICKY_PATHS = [
    "ab", "a/b", "ax/y/b", "x/ab/c", "x/a", "x/b", "b/c/d", "a\\", "a b", "a  ", "#x", "!x",
    "c/a\\", "d/e/f", "q/r/s/t",
]  # fmt: skip

TRICKY_PATTERNS = [
    "a**/b", "x/a**", "***/b", "/***/c/**", "**//", "b**//", "x\\", "**\\", "**\\/**", "/**\\/**", "\\/**",
    "x/**\\/c", "a\\ ", "a\\\\", "a \\ ", "a\\ \\ ", "\\#x", "\\!x", "!x", "q/**/t", "q/**/**/t", "d/**/",
    "[a-b]\\/", "a//", "**/e/", "\ufeffab", "a\\b",
]  # fmt: skip


@pytest.mark.parametrize("pattern", TRICKY_PATTERNS)
def test_pattern_matches_like_git(tmp_path: Path, pattern: str) -> None:
    work = tmp_path / "work"
    for rel in TRICKY_PATHS:
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(rel)
    # a BOM only counts at the very start of the file, so the BOM case is the first line
    (work / ".gitignore").write_bytes(f"{pattern}\nunrelated\n".encode())
    git(work, "init", "-q")
    expected = git(work, "ls-files", "-z", "--others", "--exclude-per-directory=.gitignore").split("\0")
    assert paths(take_snapshot(work)) == sorted(p for p in expected if p)


# -- specific cases ------------------------------------------------------------------------------------------


def index_tree(repo: Path) -> str:
    """What git writes for the work tree in place: `add -A` then `write-tree`."""
    git(repo, "add", "-A")
    return git(repo, "write-tree").strip()


def test_clean_checkout_equals_head_trees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            "src/prepare/main.py": "print(1)\n",
            "src/prepare/util/__init__.py": "",
            "src/train/train.py": "import torch\n",
            "src/train/conf/a b é.yaml": "x: 1\n",
            "README.md": "hi\n",
        },
    )
    (repo / "src/train/run.sh").write_text("#!/bin/sh\n")
    (repo / "src/train/run.sh").chmod(0o755)
    (repo / "src/train/link").symlink_to("train.py")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "more")
    # Make the index non-racy: file mtimes in the past, then let git refresh the stat data.
    for f in repo.rglob("*"):
        if ".git" not in f.parts and not f.is_symlink():
            os.utime(f, (1_600_000_000, 1_600_000_000))
    git(repo, "update-index", "--refresh")
    time.sleep(1.1)
    git(repo, "update-index", "--really-refresh")

    hashed: list[str] = []
    import mlpipe.git.snapshot as snapshot_module

    real_hash = snapshot_module.hash_file
    monkeypatch.setattr(snapshot_module, "hash_file", lambda p: hashed.append(p) or real_hash(p))
    snapshotter = Snapshotter(repo)
    for sub in ["src/prepare", "src/train", "src", ""]:
        expected = git(repo, "rev-parse", f"HEAD:{sub}").strip()
        assert snapshotter.snapshot(repo / sub).tree == expected
    assert hashed == []  # every tracked file was stat-clean: its blob id came from the index


def test_modified_tracked_file_is_rehashed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"src/train.py": "lr = 0.1\n", "src/other.py": "x\n"})
    before = take_snapshot(repo / "src")
    (repo / "src/train.py").write_text("lr = 0.2\n")  # same size, same second as the index write (racy)
    after = take_snapshot(repo / "src")
    assert after.tree != before.tree
    assert after.tree == git_tree(repo, tmp_path / "oracle", "src")
    assert diff_files(before, after) == [("modified", "train.py")]


def test_changed_after_index_write_with_same_stat_size(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "aaaa\n"})
    git(repo, "update-index", "--refresh")
    entry_mtime = (repo / "a.txt").stat().st_mtime_ns
    (repo / "a.txt").write_text("bbbb\n")
    os.utime(repo / "a.txt", ns=(entry_mtime, entry_mtime))  # size and mtime as the index recorded them
    assert take_snapshot(repo).tree == index_tree(repo)


def test_tracked_file_matched_by_ignore_rule_is_left_out(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo", {"src/model.py": "m\n", "src/secret.env": "k=v\n", "data/x.csv": "1\n"}
    )
    (repo / ".gitignore").write_text("*.env\ndata/\n")
    ignored = git(repo, "ls-files", "-z", "-ci", "--exclude-per-directory=.gitignore").split("\0")
    assert sorted(p for p in ignored if p) == ["data/x.csv", "src/secret.env"]  # git still tracks them
    snapshot = take_snapshot(repo)
    git(repo, "add", "-A")
    git(repo, "rm", "-q", "--cached", "src/secret.env", "data/x.csv")
    assert snapshot.tree == git(repo, "write-tree").strip()
    assert paths(snapshot) == [".gitignore", "src/model.py"]


def test_amlignore_replaces_gitignore_in_its_directory_only(tmp_path: Path) -> None:
    work = tmp_path / "work"
    write_files(
        work,
        {
            ".gitignore": "*.log\n",
            "src/.gitignore": "*.csv\n",
            "src/.amlignore": "*.ipynb\n",
            "src/a.csv": "1\n",
            "src/b.ipynb": "{}\n",
            "src/c.log": "root rule still applies\n",
            "src/main.py": "m\n",
            "lib/.gitignore": "*.csv\n",
            "lib/d.csv": "1\n",
            "lib/e.ipynb": "{}\n",
        },
    )
    git(work, "init", "-q")
    snapshot = take_snapshot(work)
    assert paths(snapshot) == [
        ".gitignore", "lib/.gitignore", "lib/e.ipynb", "src/.amlignore", "src/.gitignore", "src/a.csv",
        "src/main.py",
    ]  # fmt: skip
    # git, with src/.amlignore in place of src/.gitignore, keeps the same files with the same blobs
    oracle = copy_worktree(work, tmp_path / "oracle", amlignore=True)
    git(oracle, "init", "-q")
    git(oracle, "add", "-A")
    theirs = {
        line.split("\t")[1]: line.split()[1]
        for line in git(oracle, "ls-files", "-s").splitlines()
        if not line.endswith("ignore")
    }
    ours = {f.path: f.blob for f in snapshot.files if not f.path.endswith("ignore")}
    assert ours == theirs


def test_info_exclude_and_global_excludes_are_not_read(tmp_path: Path) -> None:
    work = tmp_path / "work"
    write_files(work, {"a.py": "a\n", "b.txt": "b\n", "c.md": "c\n", "d.cfg": "d\n"})
    git(work, "init", "-q")
    (work / ".git/info/exclude").write_text("*.py\n")
    home = Path(os.environ["HOME"])
    (home / "global-ignore").write_text("*.txt\n")
    git(work, "config", "--global", "core.excludesFile", str(home / "global-ignore"))
    (home / ".config/git").mkdir(parents=True, exist_ok=True)
    (home / ".config/git/ignore").write_text("*.md\n")  # the default place, used when excludesFile is unset
    assert git(work, "ls-files", "-o", "--exclude-standard").split() == ["c.md", "d.cfg"]  # git honours them
    assert paths(take_snapshot(work)) == ["a.py", "b.txt", "c.md", "d.cfg"]
    git(work, "config", "--global", "--unset", "core.excludesFile")
    assert git(work, "ls-files", "-o", "--exclude-standard").split() == ["b.txt", "d.cfg"]
    assert paths(take_snapshot(work)) == ["a.py", "b.txt", "c.md", "d.cfg"]


def test_symlinks_exec_bits_unicode_and_empty_dirs(tmp_path: Path) -> None:
    work = tmp_path / "work"
    write_files(work, {"run.sh": "#!/bin/sh\n", "dir/é 日本.txt": "x\n", "dir/ae\u0301.txt": "nfd\n"})
    (work / "run.sh").chmod(0o755)
    (work / "to-file").symlink_to("run.sh")
    (work / "to-dir").symlink_to("dir")
    (work / "dangling").symlink_to("nowhere/at/all")
    (work / "empty/nested").mkdir(parents=True)
    git(work, "init", "-q")
    snapshot = take_snapshot(work)
    assert snapshot.tree == index_tree(work)
    modes = {f.path: f.mode for f in snapshot.files}
    assert modes["run.sh"] == 0o100755 and modes["to-dir"] == modes["dangling"] == 0o120000
    assert {f.path: f.size for f in snapshot.files}["dangling"] == len("nowhere/at/all")


def test_filters_apply_as_git_applies_them(tmp_path: Path) -> None:
    work = tmp_path / "work"
    write_files(
        work,
        {
            ".gitattributes": "*.txt text eol=lf\n*.up filter=upper\n",
            "crlf.txt": b"a\r\nb\r\n",
            "shout.up": "quiet\n",
            "raw.bin": b"\x00\r\n",
        },
    )
    git(work, "init", "-q")
    git(work, "config", "filter.upper.clean", "tr a-z A-Z")
    snapshot = take_snapshot(work)
    assert snapshot.tree == index_tree(work)
    raw = git_tree(work, tmp_path / "unfiltered")  # the same bytes without the filter config
    assert snapshot.tree != raw


@pytest.mark.parametrize("scope", ["--local", "--global"])
def test_autocrlf_applies_without_attributes(tmp_path: Path, scope: str) -> None:
    work = tmp_path / "work"
    write_files(work, {"win.txt": b"a\r\nb\r\n"})
    git(work, "init", "-q")
    git(work, "config", scope, "core.autocrlf", "true")
    snapshot = take_snapshot(work)
    assert snapshot.tree == index_tree(work)
    raw = git(work, "hash-object", "--no-filters", "win.txt").strip()
    assert snapshot.files[0].blob != raw  # git converted the line endings


def test_global_attributes_file_applies(tmp_path: Path) -> None:
    work = tmp_path / "work"
    write_files(work, {"win.txt": b"a\r\nb\r\n"})
    git(work, "init", "-q")
    attributes = Path(os.environ["HOME"]) / "attrs"
    attributes.write_text("*.txt text eol=lf\n")
    git(work, "config", "--global", "core.attributesFile", str(attributes))
    assert take_snapshot(work).tree == index_tree(work)


def test_outside_git_rules_come_from_the_directory(tmp_path: Path) -> None:
    work = tmp_path / "plain"
    write_files(work, {".gitignore": "*.tmp\n", "keep.py": "k\n", "drop.tmp": "d\n", "sub/.amlignore": "x\n"})
    write_files(work, {"sub/x": "x\n", "sub/y": "y\n"})
    snapshot = take_snapshot(work)
    assert not (work / ".git").exists()
    assert paths(snapshot) == [".gitignore", "keep.py", "sub/.amlignore", "sub/y"]
    oracle = copy_worktree(work, tmp_path / "oracle", amlignore=True)
    git(oracle, "init", "-q")
    assert without_rule_files(paths(snapshot)) == without_rule_files(
        git(oracle, "ls-files", "-o", "--exclude-per-directory=.gitignore").split()
    )


def test_submodule_is_a_gitlink(tmp_path: Path) -> None:
    sub = make_repo(tmp_path / "sub", {"lib.py": "l\n"})
    repo = make_repo(tmp_path / "repo", {"main.py": "m\n"})
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), "vendor/sub")
    git(repo, "commit", "-q", "-m", "add submodule")
    snapshot = take_snapshot(repo)
    assert snapshot.tree == git(repo, "rev-parse", "HEAD^{tree}").strip()
    link = {f.path: f for f in snapshot.files}["vendor/sub"]
    assert (link.mode, link.blob) == (0o160000, git(sub, "rev-parse", "HEAD").strip())
    # moving the submodule's HEAD changes the gitlink, as `git add` would record it
    git(repo / "vendor/sub", "commit", "-q", "--allow-empty", "-m", "next")
    assert take_snapshot(repo).tree == index_tree(repo)


def test_state_dir_cache_and_git_dirs_never_in_snapshot(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "a\n"})
    write_files(repo, {".mlpipe/runs/x.json": "{}", "cache/objects/ab": "x", "src/.mlpipe/y": "y"})
    snapshot = Snapshotter(repo, exclude=[repo / "cache"]).snapshot(repo)
    assert paths(snapshot) == ["a.py"]


def test_ignored_parent_makes_an_empty_snapshot(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "a\n", ".gitignore": "vendored/\n"})
    write_files(repo, {"vendored/step/main.py": "m\n"})
    assert take_snapshot(repo / "vendored/step").tree == EMPTY_TREE


def test_ignored_data_dir_is_pruned_not_walked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "repo", {".gitignore": "/data/\n", "src/main.py": "m\n"})
    for i in range(200):
        write_files(repo, {f"data/shard{i % 10}/{i}.bin": "x"})
    scanned: list[str] = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p: scanned.append(str(p)) or real_scandir(p))
    snapshot = take_snapshot(repo)
    assert paths(snapshot) == [".gitignore", "src/main.py"]
    assert scanned == [str(repo), str(repo / "src")]


def test_diff_files_names_changes() -> None:
    old = (SnapshotFile("a.py", 0o100644, "1" * 40, 1), SnapshotFile("b.py", 0o100644, "2" * 40, 1))
    new = (SnapshotFile("b.py", 0o100755, "2" * 40, 1), SnapshotFile("c.py", 0o100644, "3" * 40, 1))
    assert diff_files(old, new) == [("removed", "a.py"), ("modified", "b.py"), ("added", "c.py")]


def test_cli_prints_tree_and_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"src/a.py": "a\n", "src/b/c.py": "c\n", "src/.gitignore": "*.pyc\n"})
    write_files(repo, {"src/a.pyc": "junk"})
    result = CliRunner().invoke(snapshot_command, [str(repo / "src"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["tree"] == git(repo, "rev-parse", "HEAD:src").strip()
    assert data["files"] == [".gitignore", "a.py", "b/c.py"]
    plain = CliRunner().invoke(snapshot_command, [str(repo / "src")])
    assert plain.output.splitlines() == [data["tree"], *data["files"]]


def forge_index_entry(repo: Path, rel: str, blob: str, *, ctime_delta: int = 0, index_age_s: int) -> None:
    """Make the index claim `rel` holds `blob`, with the file's current stat data (ctime shifted).

    `index_age_s` is how much newer the index file's mtime is than the file's: 0 makes the entry racy.
    """
    from dulwich.index import Index, index_entry_from_stat

    st = (repo / rel).stat()
    index = Index(repo / ".git/index")
    entry = index_entry_from_stat(st, blob.encode())
    if ctime_delta:
        sec, nsec = entry.ctime if isinstance(entry.ctime, tuple) else (int(entry.ctime), 0)
        entry.ctime = (sec + ctime_delta, nsec)
    index[rel.encode()] = entry
    index.write()
    os.utime(repo / ".git/index", ns=(st.st_mtime_ns + index_age_s * 10**9,) * 2)


@pytest.mark.parametrize(
    ("index_age_s", "ctime_delta", "trusted"),
    [(5, 0, True), (0, 0, False), (5, 1, False)],
    ids=["stat-clean", "racy", "ctime-differs"],
)
def test_index_blob_used_only_when_git_would_trust_it(
    tmp_path: Path, index_age_s: int, ctime_delta: int, trusted: bool
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "old!\n"})
    old_blob = git(repo, "rev-parse", "HEAD:a.txt").strip()
    (repo / "a.txt").write_text("new!\n")  # same size
    forge_index_entry(repo, "a.txt", old_blob, ctime_delta=ctime_delta, index_age_s=index_age_s)
    blob = {f.path: f.blob for f in take_snapshot(repo).files}["a.txt"]
    # git is the oracle: `add -A` keeps the index's blob exactly when it trusts the stat data
    assert take_snapshot(repo).tree == index_tree(repo)
    assert (blob == old_blob) is trusted
