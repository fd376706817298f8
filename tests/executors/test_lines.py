"""The line splitter: what a step's output becomes in its log and live display (newlines, redraws, long lines)."""

from __future__ import annotations

from mlpipe.executors.lines import LineSplitter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def split(chunks: list[bytes], *, max_bytes: int = 1 << 20, clock: Clock | None = None) -> list[bytes]:
    lines = LineSplitter(max_bytes, redraw_every_s=10.0, clock=clock or Clock())
    out = [line for chunk in chunks for line in lines.feed(chunk)]
    return out + lines.close()


def test_newlines_and_crlf_end_lines_and_an_unfinished_last_line_is_kept() -> None:
    assert split([b"a\nb\r\nc"]) == [b"a", b"b", b"c"]
    assert split([b"a\n", b"\n", b"b\n"]) == [b"a", b"", b"b"]


def test_a_crlf_cut_between_two_reads_is_one_line_end() -> None:
    assert split([b"one\r", b"\ntwo\r", b"\n"]) == [b"one", b"two"]
    assert split([b"last\r"]) == [b"last"]


def test_the_first_redraw_shows_at_once_and_later_ones_at_most_every_interval() -> None:
    clock = Clock()
    lines = LineSplitter(1 << 20, redraw_every_s=10.0, clock=clock)
    assert lines.feed(b"  0%|\r") == [b"  0%|"]
    assert lines.feed(b" 10%|\r 20%|\r") == []
    clock.now += 5
    assert lines.feed(b" 30%|\r") == []
    clock.now += 5
    assert lines.feed(b" 40%|\r") == [b" 40%|"]
    clock.now += 1
    assert lines.feed(b"100%|\n") == [b"100%|"]


def test_a_crlf_cut_between_reads_after_a_held_back_redraw_makes_that_redraw_the_line() -> None:
    clock = Clock()
    lines = LineSplitter(1 << 20, redraw_every_s=10.0, clock=clock)
    assert lines.feed(b"1/3\r2/3\r3/3\r") == [b"1/3"]
    assert lines.feed(b"\nnext\n") == [b"3/3", b"next"]


def test_a_redraw_the_interval_held_back_is_passed_on_when_the_stream_ends() -> None:
    clock = Clock()
    lines = LineSplitter(1 << 20, redraw_every_s=10.0, clock=clock)
    assert lines.feed(b"step 1\rstep 2\rstep 3\r") == [b"step 1"]
    assert lines.close() == [b"step 3"]


def test_text_after_the_last_redraw_is_what_is_left_not_the_redraw() -> None:
    assert split([b"10%\r20%\rdone"]) == [b"10%", b"done"]


def test_a_carriage_return_at_a_line_start_draws_nothing() -> None:
    assert split([b"\r\rtext\n"]) == [b"text"]


def test_a_long_line_is_passed_on_in_pieces_and_one_of_exactly_the_limit_stays_whole() -> None:
    assert split([b"abcdefgh", b"ij\n"], max_bytes=4) == [b"abcd", b"efgh", b"ij"]
    assert split([b"abcd\n"], max_bytes=4) == [b"abcd"]
    assert split([b"ab", b"cd", b"\nx\n"], max_bytes=4) == [b"abcd", b"x"]


def test_a_newline_cut_between_reads_of_a_long_line_adds_no_empty_line() -> None:
    assert split([b"abcdefgh", b"\n"], max_bytes=4) == [b"abcd", b"efgh"]
