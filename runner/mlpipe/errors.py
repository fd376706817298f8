"""Errors a user can act on. `cli/main.py` is the only place that catches them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from mlpipe.frozen import frozen

T = TypeVar("T")


class MlpipeError(Exception):
    """An error the user can fix; printed without a traceback."""

    exit_code = 1


class UsageError(MlpipeError):
    """A command was called wrongly (bad option value, unknown run id, ...)."""

    exit_code = 2


@frozen(kw_only=True)
class Problem:
    """One thing wrong with a pipeline file, located at the node that is wrong."""

    file: str
    line: int
    col: int
    key: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        """One printable line, whatever the file held: a key path is made of the file's own key names, and
        a newline, an escape sequence or a lone surrogate in one would break or forge the lines around it."""
        where = f"{self.file}:{self.line}:{self.col}"
        key = f" {self.key}:" if self.key else ""
        fix = f"; {self.fix}" if self.fix else ""
        line = f"{where}:{key} {self.message}{fix}"
        # Each character as a Python literal writes it: `\\n`, `\\x1b`, `\\ud800`.
        return line if line.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)


class ContainerError(MlpipeError):
    """The container engine cannot be reached, or a step's image cannot be found or pulled."""


class SpecError(MlpipeError):
    """The pipeline file is wrong; carries every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class GitError(MlpipeError):
    """A git command failed or the repository is not in a usable state."""


class CacheError(MlpipeError):
    """The result store cannot be used."""


class PipelineFailed(MlpipeError):
    """At least one selected step failed or was cancelled."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class BrokenInvariant(AssertionError):
    """mlpipe broke one of its own rules (a bug, never a user's mistake): the CLI shows the traceback and asks
    for a report. Raised by `present`, not by `assert`, so `python -O` keeps the check."""


def present(value: T | None, why: str) -> T:
    """`value`, which mlpipe's own logic guarantees is set here; BrokenInvariant(why) when it is not."""
    if value is None:
        raise BrokenInvariant(why)
    return value
