"""Reading ignore files as git's dir.c does (the matching itself is checked against git in integration)."""

from __future__ import annotations

import pytest

from mlpipe.git.ignore import as_dulwich_patterns, is_excluded, parse_patterns, trim_trailing_spaces


@pytest.mark.parametrize(
    ("line", "trimmed"),
    [
        (b"a  ", b"a"),
        (b"a\\ ", b"a\\ "),
        (b"a\\  ", b"a\\ "),
        (b"a\\\\ ", b"a\\\\"),  # an escaped backslash does not protect the space after it
        (b"a\\", b"a\\"),
        (b"\t", b"\t"),  # only spaces are trimmed
    ],
)
def test_trim_trailing_spaces(line: bytes, trimmed: bytes) -> None:
    assert trim_trailing_spaces(line) == trimmed


def excluded(data: bytes, path: bytes, is_dir: bool = False) -> bool:
    return is_excluded(((0, parse_patterns(data)),), path, is_dir)


def test_bom_cr_comments_and_escapes() -> None:
    rules = b"\xef\xbb\xbfbom\r\n# comment\n\\#hash\n\\!bang\nspace\\ \nlast"
    assert excluded(rules, b"bom")
    assert not excluded(rules, b"# comment")
    assert excluded(rules, b"#hash") and excluded(rules, b"!bang") and excluded(rules, b"space ")
    assert excluded(rules, b"last")  # no newline at the end of the file


def test_last_match_wins_and_directory_only() -> None:
    rules = b"*.log\n!keep.log\nbuild/\n"
    assert excluded(rules, b"a/x.log") and not excluded(rules, b"a/keep.log")
    assert excluded(rules, b"build", is_dir=True) and not excluded(rules, b"build")


def test_deeper_rule_file_decides() -> None:
    stack = ((0, parse_patterns(b"*.csv\n")), (4, parse_patterns(b"!keep.csv\n")))
    assert not is_excluded(stack, b"sub/keep.csv", False)
    assert is_excluded(stack, b"sub/other.csv", False)


@pytest.mark.parametrize("line", [b"a//", b"**//", b"x\\", b"\\/a/b", b"[a-b]\\/", b"!", b"/"])
def test_patterns_git_can_never_match_are_dropped(line: bytes) -> None:
    assert as_dulwich_patterns(line) == []
