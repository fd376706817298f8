"""treepaths: names a tree may hold and links that stay inside it, checked against the kernel where it can say."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlpipe.treepaths import UnsafeTree, check_in_order, check_name, check_tree


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/abs",
        "a//b",
        "./a",
        "a/..",
        "../x",
        "a\nb",
        "tab\there",
        "bell\x07",
        "del\x7f",
        "x" * 256,
        "bad\udcff",
    ],
)
def test_names_that_cannot_be_stored(path: str) -> None:
    with pytest.raises(UnsafeTree):
        check_name(path)


@pytest.mark.parametrize("path", ["a", "a/b.txt", "ünï/cödé", "with space", "x" * 255, "a/.hidden"])
def test_plain_names(path: str) -> None:
    check_name(path)


ESCAPING = [
    {"l": "/etc/passwd"},
    {"l": ".."},
    {"l": "../x"},
    {"d/l": "../.."},
    {"d/l": "../../etc"},
    # a chain: each link on its own stays inside, together they climb out
    {"a/up": "..", "a/b/f": None, "a/b/up2": "../up/..", "x": None},
    {"d/e/l1": "../l2", "d/l2": "../l3", "l3": "..", "d/e/f": None},
    # `..` after a link to a subdirectory climbs from where the link points, not from the link
    {"deep/a/b/f": None, "s": "deep/a/b", "esc": "s/../../../.."},
    {"loop1": "loop2", "loop2": "loop1"},
    {"self": "self"},
]

INSIDE = [
    {"f": None, "l": "f"},
    {"d/f": None, "d/l": "../d/f"},
    {"d/f": None, "l": "d/./f"},
    {"deep/a/b/f": None, "s": "deep/a/b", "ok": "s/../../.."},  # resolves to the top itself
    {"dangling": "no/such/../../.."},  # the kernel stops at the first missing name
    {"f": None, "through_file": "f/../.."},  # a file is not a directory: resolution stops
    {"a/f": None, "a/l": ".", "b": "a/l/l/l/f"},
]


@pytest.mark.parametrize("files", ESCAPING)
def test_links_that_leave_the_tree_are_refused(files: dict[str, str | None]) -> None:
    with pytest.raises(UnsafeTree):
        check_tree(files)


@pytest.mark.parametrize("files", INSIDE)
def test_links_that_stay_inside_pass(files: dict[str, str | None], tmp_path: Path) -> None:
    check_tree(files)
    # The kernel agrees: nothing a link resolves to lies outside the tree.
    top = tmp_path / "outer" / "inner" / "tree"
    _build(top, files)
    for path, target in files.items():
        if target is None:
            continue
        resolved = os.path.realpath(top / path)
        if os.path.lexists(resolved) and os.path.exists(top / path):
            assert Path(resolved).is_relative_to(top.resolve()), (path, resolved)


@pytest.mark.parametrize("files", ESCAPING[:8])
def test_the_kernel_sees_the_escapes_too(files: dict[str, str | None], tmp_path: Path) -> None:
    outside = tmp_path / "outer"
    top = outside / "inner" / "tree"
    _build(top, files)
    for name in ("x", "etc"):  # what the escaping links point at exists, so the kernel resolves them
        (top.parent / name).write_text("")
    escapes = [
        p
        for p, t in files.items()
        if t is not None
        and os.path.exists(top / p)
        and not Path(os.path.realpath(top / p)).is_relative_to(top.resolve())
    ]
    assert escapes


def test_files_under_a_file_or_a_link_are_refused() -> None:
    with pytest.raises(UnsafeTree, match="which is a file"):
        check_tree({"a": None, "a/b": None})
    with pytest.raises(UnsafeTree, match="which is a link"):
        check_tree({"a": "d", "d/x": None, "a/b": None})


def _build(top: Path, files: dict[str, str | None]) -> None:
    top.mkdir(parents=True)
    for path, target in sorted(files.items()):
        dest = top / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        if target is None:
            dest.write_text(path)
        else:
            os.symlink(target, dest)


def walk_order(paths: list[str]) -> list[str]:
    return sorted(paths, key=lambda p: p.split("/"))


@pytest.mark.parametrize(
    "paths",
    [
        ["a", "a-b", "a/c"],  # a file, then a file under it
        ["d/x", "d/x/y"],
        ["d/x", "d/x", "e"],
        ["ok", "bad\nname"],
        ["a/b", "a-b", "a.c", "b/c/d", "b/c/e", "b/cc"],  # a sound tree
    ],
)
def test_a_tree_in_walk_order_is_judged_in_one_pass_as_check_tree_judges_it(paths: list[str]) -> None:
    ordered = walk_order(paths)
    try:
        check_tree(dict.fromkeys(paths))
        expected = None
    except UnsafeTree as error:
        expected = str(error)
    if len(set(paths)) < len(paths):  # a dict holds a path once: records.manifest tells a path twice first
        expected = f"{ordered[1]!r} is listed twice"
    try:
        assert check_in_order((p, False) for p in ordered) is True
        got = None
    except UnsafeTree as error:
        got = str(error)
    assert got == expected


def test_paths_out_of_walk_order_are_left_to_check_tree() -> None:
    assert check_in_order([("a-b", False), ("a/c", False)]) is False  # "a/c" walks before "a-b"
    assert check_in_order([("b", False), ("a", False)]) is False
    with pytest.raises(UnsafeTree, match="'a/c' lies under 'a', which is a link"):
        check_in_order([("a", True), ("a/c", False)])
