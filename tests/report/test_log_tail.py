"""The end of a failed step's log: bounded reads, printable lines, only from the workspace's log directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpipe.report.logs import LINE_CHARS, TAIL_BYTES, log_tail


def write_log(root: Path, text: bytes, name: str = "s.log") -> str:
    path = root / ".mlpipe/logs/run" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text)
    return f".mlpipe/logs/run/{name}"


def test_a_huge_log_is_read_from_its_end_only(tmp_path: Path) -> None:
    body = b"".join(b"line %d\n" % i for i in range(200_000))  # about 2 MB
    assert len(body) > 100 * TAIL_BYTES
    log = write_log(tmp_path, body + b"last words\n\n")
    assert log_tail(tmp_path, log, lines=3) == ["line 199998", "line 199999", "last words"]


def test_lines_are_made_printable_and_cut(tmp_path: Path) -> None:
    log = write_log(
        tmp_path,
        b"\x1b[1;31mred\x1b[0m \x1b]8;;http://x\x07link\x1b]8;;\x07\n"
        b"10%\r50%\r100%\n"
        b"rtl \xe2\x80\xaeevil\x00 \xff\n" + b"x" * 1000 + b"\n",
    )
    assert log_tail(tmp_path, log) == ["red link", "100%", "rtl evil \ufffd", "x" * (LINE_CHARS - 1) + "…"]


@pytest.mark.parametrize(
    "log", ["../outside.log", "/etc/passwd", ".mlpipe/logs/../../outside.log", ".mlpipe/cache/x.log", "x"]
)
def test_a_record_cannot_point_the_tail_outside_the_log_directory(tmp_path: Path, log: str) -> None:
    (tmp_path / "outside.log").write_text("secret\n")
    (tmp_path / ".mlpipe/cache").mkdir(parents=True)
    (tmp_path / ".mlpipe/cache/x.log").write_text("secret\n")
    assert log_tail(tmp_path, log) == []


def test_a_link_out_of_the_log_directory_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "outside.log").write_text("secret\n")
    (tmp_path / ".mlpipe/logs/run").mkdir(parents=True)
    (tmp_path / ".mlpipe/logs/run/s.log").symlink_to(tmp_path / "outside.log")
    assert log_tail(tmp_path, ".mlpipe/logs/run/s.log") == []
    assert log_tail(tmp_path, ".mlpipe/logs/run/gone.log") == []
