"""The fault suite's tally, printed as a table at the end of the run (see fault_tally.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import fault_tally


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not fault_tally.rows():
        return
    terminalreporter.section("mlpipe fault suite")
    terminalreporter.write_line(fault_tally.markdown())
    target = os.environ.get("MLPIPE_FAULT_TALLY")
    if target:
        Path(target).write_text(json.dumps(fault_tally.rows(), indent=2) + "\n")
