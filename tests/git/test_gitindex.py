"""The index reader and tree hashing agree with git itself, on real repositories (git is the oracle)."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from mlpipe.git.index import MODE_TREE, read_index, tree_id
from mlpipe_testing import git, make_repo

FILES = {
    "a.txt": "a\n",
    "dir/b.py": "b\n",
    "dir/sub/c.bin": b"\x00\x01",
    "dir-x/d": "d\n",
    "dir.x": "e\n",
    "long/" + "n" * 250 + ".txt": "a long name\n",
    "ünïcode/名前.txt": "u\n",
}


@pytest.mark.parametrize("version", ["2", "3", "4"])
def test_read_index_matches_git_ls_files(tmp_path: Path, version: str) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    git(repo, "update-index", f"--index-version={version}")
    git(repo, "update-index", "--skip-worktree", "a.txt")  # v3+ extended flags; left out like git status does
    entries = read_index((repo / ".git/index").read_bytes())
    listed = subprocess.run(
        ["git", "ls-files", "-s", "-z"], cwd=repo, capture_output=True, check=True
    ).stdout.split(b"\0")
    expected = {}
    for line in filter(None, listed):
        meta, name = line.split(b"\t", 1)
        mode, sha, _stage = meta.split()
        expected[name] = (int(mode, 8), sha)
    del expected[b"a.txt"]
    assert {name: (e.mode, e.sha) for name, e in entries.items()} == expected
    st = (repo / "dir/b.py").stat()
    entry = entries[b"dir/b.py"]
    assert entry.size == st.st_size
    assert entry.ino == st.st_ino & 0xFFFFFFFF
    assert entry.mtime == divmod(st.st_mtime_ns, 1_000_000_000)


def test_tree_id_matches_git_mktree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"x": "x\n"})
    blob = git(repo, "rev-parse", "HEAD:x").strip()
    sub = git(repo, "rev-parse", "HEAD^{tree}").strip()
    # names that sort differently as files and as trees: "a-" < "a/" < "a0"
    entries = [
        (b"a", MODE_TREE, sub),
        (b"a-", 0o100644, blob),
        (b"a0", 0o100755, blob),
        (b"l", 0o120000, blob),
    ]
    text = "".join(
        f"{mode:06o} {'tree' if mode == MODE_TREE else 'blob'} {sha}\t{name.decode()}\n"
        for name, mode, sha in entries
    )
    expected = subprocess.run(
        ["git", "mktree"], cwd=repo, input=text, capture_output=True, text=True, check=True
    )
    assert tree_id(entries) == expected.stdout.strip()
    assert tree_id([]) == "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def test_a_truncated_index_is_an_error_not_garbage(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    data = (repo / ".git/index").read_bytes()
    with pytest.raises((ValueError, IndexError, struct.error)):
        read_index(data[:100])
    with pytest.raises(ValueError):
        read_index(b"NOPE" + data[4:])
