"""Where an output may be checked out: the rules of spec/outpaths.py on real links, followed as the kernel does."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpipe.spec.outpaths import FIX, destination_problem


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / ".git/hooks").mkdir(parents=True)
    (root / "models").mkdir()
    return root


def test_plain_paths_and_links_that_stay_in_the_work_tree_are_fine(ws: Path) -> None:
    (ws / "out").symlink_to("models")
    (ws / "chain").symlink_to("out")
    (ws / "models/last").symlink_to("../models")

    for rel in ("model.bin", "models/model.bin", "out/model.bin", "chain/x/y", "models/last/z", "new/dir"):
        assert destination_problem(ws, rel) is None, rel


@pytest.mark.parametrize(
    ("rel", "reserved"),
    [(".git", ".git"), (".git/hooks/pre-commit", ".git"), ("vendor/lib/.git/config", ".git"),
     (".GIT/config", ".git"), (".mlpipe/cache/objects/x", ".mlpipe"), ("sub/.Mlpipe", ".mlpipe")],
)  # fmt: skip
def test_git_and_state_directories_are_refused_in_any_part(ws: Path, rel: str, reserved: str) -> None:
    what = "git's own data" if reserved == ".git" else "mlpipe's runs and store"

    assert destination_problem(ws, rel) == (f"path {rel!r} is inside {reserved}/, {what}", FIX)


def test_the_workspace_root_itself_is_refused(ws: Path) -> None:
    assert destination_problem(ws, ".") == (
        "an output cannot replace the workspace root",
        "name a file or directory inside the workspace",
    )


@pytest.mark.parametrize(
    ("links", "rel", "shown", "where"),
    [
        ({"out": "/"}, "out/x", "'out' -> '/'", "outside the workspace"),
        ({"out": "../.."}, "out/x", "'out' -> '../..'", "outside the workspace"),
        ({"out": "models/../.."}, "out/x", "'out' -> 'models/../..'", "outside the workspace"),
        # a chain: each hop inside, the end outside
        ({"a": "b", "b": "models/c", "models/c": "../../.."}, "a/x", "'a' -> 'b'", "outside the workspace"),
        # the last part itself: a checkout would hash (read) through it before replacing it
        ({"model.bin": "/etc/passwd"}, "model.bin", "'model.bin' -> '/etc/passwd'", "outside the workspace"),
        ({"h": ".git/hooks"}, "h/pre-commit", "'h' -> '.git/hooks'", "into .git/"),
        ({"models/s": "../.mlpipe"}, "models/s/x", "'models/s' -> '../.mlpipe'", "into .mlpipe/"),
    ],
)
def test_links_that_lead_out_or_into_reserved_directories_are_refused(
    ws: Path, links: dict[str, str], rel: str, shown: str, where: str
) -> None:
    for name, target in links.items():
        (ws / name).symlink_to(target)
    link = shown.split(" -> ")[0].strip("'")

    assert destination_problem(ws, rel) == (
        f"path {rel!r} goes through the symbolic link {shown}, which leads {where}",
        f"remove the link {link!r} or make it a directory, or choose another path",
    )


def test_a_link_loop_is_refused_not_followed_forever(ws: Path) -> None:
    (ws / "a").symlink_to("b")
    (ws / "b").symlink_to("a")

    assert destination_problem(ws, "a/x") == (
        "path 'a/x' goes through the symbolic link 'a' -> 'b', which loops",
        "remove the link 'a' or make it a directory, or choose another path",
    )


def test_a_dangling_link_is_judged_by_where_it_points(ws: Path, tmp_path: Path) -> None:
    (ws / "out").symlink_to(tmp_path / "not-yet")
    (ws / "later").symlink_to("models/not-yet")

    assert destination_problem(ws, "later/x") is None
    assert destination_problem(ws, "out/x") == (
        (
            f"path 'out/x' goes through the symbolic link 'out' -> '{tmp_path / 'not-yet'}', which leads outside "
            "the workspace"
        ),
        "remove the link 'out' or make it a directory, or choose another path",
    )


def test_a_workspace_reached_through_a_link_is_compared_resolved(ws: Path, tmp_path: Path) -> None:
    (tmp_path / "alias").symlink_to(ws)
    (ws / "out").symlink_to("models")

    assert destination_problem(tmp_path / "alias", "out/model.bin") is None
