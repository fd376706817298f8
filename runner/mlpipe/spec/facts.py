"""What loading a pipeline depends on besides the file's text: the name messages give the file, and every question
the loader asks the disk (does the code directory exist, what does a data file record, does an output path go
through a link). The loader asks through `Facts`, which keeps each question with its answer, so that a pipeline
rebuilt from the parsed-pipeline cache is used only while every answer is still the same (`still_true`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

Answer = bool | str | list[str] | None
"""JSON-shaped, so that a stored answer compares equal to a fresh one."""


def display_path(path: Path) -> str:
    """The file as messages name it: relative to the current directory when under it, else as given."""
    try:
        return path.absolute().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def _exists(path: str) -> Answer:
    return os.path.exists(path)


def _is_dir(path: str) -> Answer:
    return os.path.isdir(path)


def _is_file(path: str) -> Answer:
    return os.path.isfile(path)


def _record(path: str) -> Answer:
    """What a data file records, as the loader uses it: its data's path and digest; else why it cannot be read."""
    from mlpipe.spec.datafiles import read_record  # only for a pipeline with a data input

    try:
        record = read_record(Path(path))
    except FileNotFoundError:
        return "missing"
    except ValueError as error:
        return f"invalid: {error}"
    return [record.path, record.digest]


def _destination(root: str, rel: str) -> Answer:
    from mlpipe.spec import outpaths  # only for a pipeline with an output path

    problem = outpaths.destination_problem(Path(root), rel)
    return None if problem is None else list(problem)


QUESTIONS: dict[str, tuple[int, Callable[..., Answer]]] = {
    "exists": (1, _exists),
    "dir": (1, _is_dir),
    "file": (1, _is_file),
    "record": (1, _record),
    "destination": (2, _destination),
}
"""Kind -> (how many path arguments, the question)."""


class Fact(NamedTuple):
    kind: str
    args: tuple[str, ...]
    answer: Answer


class Facts:
    """The loader's questions to the disk, each asked once, with their answers in the order asked."""

    def __init__(self) -> None:
        self.asked: dict[tuple[str, tuple[str, ...]], Answer] = {}

    def ask(self, kind: str, *args: str) -> Answer:
        key = (kind, args)
        if key not in self.asked:
            self.asked[key] = QUESTIONS[kind][1](*args)
        return self.asked[key]

    def exists(self, path: Path) -> bool:
        return self.ask("exists", str(path)) is True

    def is_dir(self, path: Path) -> bool:
        return self.ask("dir", str(path)) is True

    def is_file(self, path: Path) -> bool:
        return self.ask("file", str(path)) is True

    def record(self, path: Path) -> tuple[str, str]:
        """A data file's (data path, digest), as `datafiles.read_record` reads them; raises as it does."""
        answer = self.ask("record", str(path))
        if answer == "missing":
            raise FileNotFoundError(str(path))
        if isinstance(answer, list):
            return answer[0], answer[1]
        raise ValueError(str(answer).removeprefix("invalid: "))

    def destination_problem(self, root: Path, rel: str) -> tuple[str, str] | None:
        answer = self.ask("destination", str(root), rel)
        return None if not isinstance(answer, list) else (answer[0], answer[1])

    def listed(self) -> list[Fact]:
        return [Fact(kind, args, answer) for (kind, args), answer in self.asked.items()]


def still_true(facts: Sequence[Fact]) -> bool:
    """Whether the disk answers every question as it did when the pipeline was loaded."""
    return all(QUESTIONS[f.kind][1](*f.args) == f.answer for f in facts)
