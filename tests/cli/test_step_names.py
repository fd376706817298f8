"""`--only` and `--steps` lists: commas separate steps, except inside a sweep instance's brackets."""

from __future__ import annotations

from mlpipe.cli.options import split_names


def test_commas_inside_brackets_belong_to_the_instance() -> None:
    assert split_names("a,b") == ["a", "b"]
    assert split_names("train[lr=0.1,C=1.0],compare") == ["train[lr=0.1,C=1.0]", "compare"]
    assert split_names("train[lr=0.1,C=1.0]") == ["train[lr=0.1,C=1.0]"]
    assert split_names("a") == ["a"] and split_names("") == [""]
    # unbalanced brackets never swallow the rest: a stray ']' resets, an open '[' keeps its commas
    assert split_names("a],b") == ["a]", "b"]
    assert split_names("x[a,b") == ["x[a,b"]
