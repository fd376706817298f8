"""The changed files of a code dir between two snapshot trees, and each one's first changed line: git is the
oracle (`git diff --name-status` for the files, the first hunk of `git diff -U0` for the line)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from mlpipe.git.snapshot import take_snapshot
from mlpipe.git.treediff import MAX_TEXT_BYTES, CodeDiff, first_changed_line
from mlpipe_testing import git, make_repo, write_files

LINES = "".join(f"line {i}\n" for i in range(1, 11))


def git_changes(root: Path, old: str, new: str, prefix: str) -> list[tuple[str, str]]:
    out = git(root, "diff", "--no-renames", "--name-status", "-z", old, new)
    fields = [f for f in out.split("\0") if f]
    kinds = {"A": "added", "D": "removed", "M": "modified", "T": "modified"}
    return [(kinds[fields[i]], f"{prefix}/{fields[i + 1]}") for i in range(0, len(fields), 2)]


def git_first_line(root: Path, old: str, new: str, path: str) -> int:
    out = git(root, "diff", "-U0", "--no-color", f"{old}:{path}", f"{new}:{path}")
    match = re.search(r"^@@ -\S+ \+(\d+)", out, re.MULTILINE)
    assert match, out
    return int(match[1])


def trees(root: Path, code: str) -> tuple[str, str]:
    return tuple(git(root, "rev-parse", f"{rev}:{code}").strip() for rev in ("HEAD~1", "HEAD"))  # type: ignore[return-value]


def differ(root: Path, *, workspace: str = "", listing=lambda _tree: None) -> CodeDiff:
    return CodeDiff(
        repo_root=root, workspace=workspace, listing=listing, pool=root / ".mlpipe/snapshots/blobs"
    )


def test_changed_files_by_repository_path_and_first_changed_lines_match_git(tmp_path: Path) -> None:
    files = {
        "ml/train/a.py": LINES,
        "ml/train/b.py": LINES,
        "ml/train/gone.py": "x\n",
        "ml/train/deep/c.py": LINES,
        "ml/train/same.py": "same\n",
        "ml/mlpipe.yaml": "name: x\n",
    }
    root = make_repo(tmp_path / "repo", files)
    write_files(
        root,
        {
            "ml/train/a.py": LINES.replace("line 7\n", "line seven\n"),
            "ml/train/b.py": "new first line\n" + LINES,
            "ml/train/deep/c.py": LINES + "line 11\n",
            "ml/train/new.py": "hello\n",
        },
    )
    os.remove(root / "ml/train/gone.py")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "change")
    old, new = trees(root, "ml/train")

    found = differ(root, workspace="ml")("train", old, new)

    assert found is not None
    assert [(c, p) for c, p, _ in found] == git_changes(root, old, new, "ml/train")
    lines = {p: line for _, p, line in found}
    for name in ("a.py", "b.py", "deep/c.py"):
        assert lines[f"ml/train/{name}"] == git_first_line(root, old, new, name)
    assert (lines["ml/train/a.py"], lines["ml/train/b.py"], lines["ml/train/deep/c.py"]) == (7, 1, 11)
    assert (lines["ml/train/new.py"], lines["ml/train/gone.py"]) == (1, None)


def test_a_dirty_tree_is_read_from_the_saved_listing_and_the_working_file(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"code/a.py": LINES})
    old = git(root, "rev-parse", "HEAD:code").strip()
    write_files(root, {"code/a.py": LINES.replace("line 4\n", "line four\n")})  # not committed: not in git
    snap = take_snapshot(root / "code")
    saved = {snap.tree: [[f.path, f.mode, f.blob] for f in snap.files]}

    found = differ(root, listing=saved.get)("code", old, snap.tree)

    assert found == [("modified", "code/a.py", 4)]


def test_a_tree_neither_git_nor_the_store_has_is_unknown(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"code/a.py": LINES})
    new = git(root, "rev-parse", "HEAD:code").strip()
    assert differ(root)("code", "1" * 40, new) is None
    asked: list[str] = []
    listing = lambda tree: asked.append(tree)
    assert (
        differ(root, listing=listing)("code", "../../../etc/passwd", new) is None
    )  # from a registry's record
    assert asked == []
    assert (
        CodeDiff(repo_root=None, workspace="", listing=lambda _t: None, pool=tmp_path)("code", new, new)
        is None
    )


def test_binary_and_large_files_are_at_their_first_line(tmp_path: Path) -> None:
    big = "".join(f"{i}\n" for i in range(MAX_TEXT_BYTES // 4))
    root = make_repo(tmp_path / "repo", {"code/model.bin": b"\0\1\2" + b"x\n" * 10, "code/big.txt": big})
    write_files(root, {"code/model.bin": b"\0\1\2" + b"x\n" * 5 + b"y\n", "code/big.txt": big + "more\n"})
    git(root, "commit", "-qam", "change")
    old, new = trees(root, "code")
    assert differ(root)("code", old, new) == [
        ("modified", "code/big.txt", 1),
        ("modified", "code/model.bin", 1),
    ]


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        (b"a\nb\nc\n", b"a\nB\nc\n", 2),
        (b"a\nb\nc\n", b"z\na\nb\nc\n", 1),
        (b"a\nb\nc\n", b"a\nb\nc\nd\n", 4),
        (b"a\nb\nc\n", b"a\nb\n", 2),  # lines removed at the end: the last line left
        (b"a\nb\nc\n", b"", 1),
        (b"a\nb\nc", b"a\nb\nc\n", 3),  # a newline added at the end of the last line
        (b"a\r\nb\r\n", b"a\r\nB\r\n", 2),
        (b"a\nb\n", b"a\n\0b\n", 1),  # binary
    ],
)
def test_first_changed_line(old: bytes, new: bytes, line: int) -> None:
    assert first_changed_line(old, new) == line


def test_a_damaged_listing_opens_nothing_outside_the_repository(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"code/a.py": LINES})
    old = git(root, "rev-parse", "HEAD:code").strip()
    lines_blob = git(root, "rev-parse", "HEAD:code/a.py").strip()
    (tmp_path / "outside.py").write_text(LINES.replace("line 2\n", "line two\n"))
    outside_blob = git(root, "hash-object", str(tmp_path / "outside.py")).strip()
    saved = {
        old: [["../../outside.py", 0o100644, lines_blob], ["a.py", 0o100644, lines_blob]],
        "f" * 40: [["../../outside.py", 0o100644, outside_blob], ["a.py", 0o100644, "../../../etc/passwd"]],
    }
    found = differ(root, listing=saved.get)("code", old, "f" * 40)
    # Neither new file is read (the outside one would say line 2): each notice would sit on line 1.
    assert found == [("modified", "code/../../outside.py", 1), ("modified", "code/a.py", 1)]
