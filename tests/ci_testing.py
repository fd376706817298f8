"""Whether this test run is CI's, and the one way a test says a service or tool it needs is missing: under
CI=true that fails the run loudly (no integration test may skip there); on a laptop without it, the test skips."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

# Read at import (collection) time, before the autouse fixture clears CI from each test's environment.
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(why: str) -> NoReturn:
    """Under CI=true: fail the run, loudly. On a laptop without the service: skip."""
    pytest.fail(f"CI=true and {why}", pytrace=False) if IN_CI else pytest.skip(why)
