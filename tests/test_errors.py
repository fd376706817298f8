"""errors.present: mlpipe's own invariants survive `python -O` (asserts would not)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

import mlpipe
from mlpipe.errors import BrokenInvariant, present


def test_present_returns_the_value_or_raises_naming_the_rule() -> None:
    assert present(0, "zero is a value") == 0
    with pytest.raises(BrokenInvariant, match=r"^a check run updated before it was created$"):
        present(None, "a check run updated before it was created")


def test_no_assert_is_left_in_the_package() -> None:
    """Production code uses explicit errors: `python -O` strips asserts, and with them the check."""
    found = subprocess.run(
        [sys.executable, "-O", "-c", "import mlpipe.errors as e; e.present(None, 'kept under -O')"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "BrokenInvariant: kept under -O" in found.stderr
    package = pathlib.Path(mlpipe.__file__).parent
    asserts = [
        f"{path.relative_to(package)}:{n}"
        for path in package.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if line.lstrip().startswith("assert ")
    ]
    assert asserts == []
